"""ASR benchmark: vidtrans's faster-whisper engine vs plain faster-whisper (and openai-whisper).

Runs every system on the same clips (../shared/eval ASR clips from its
manifest plus pyannote's bundled two-speaker sample), one child process per
system so each one's peak RSS is its own, and prints WER/CER, speed
(audio seconds per wall second) and peak RSS side by side.

    .venv/bin/python bench/asr.py                       # base model, all clips
    .venv/bin/python bench/asr.py --model tiny.en --lang en
    .venv/bin/python bench/asr.py --variants            # + VAD-filter / no-guard variants

Text normalisation: openai-whisper's EnglishTextNormalizer for English
(lower case, punctuation stripped, spelling standardised, spoken numbers and
digits both mapped to digits so "eighteen thirteen" == "1813"), its
BasicTextNormalizer for other languages (archaic "feed'st"/"mak'st" are joined
first, since the English normaliser would read "'st" as "saint"); Japanese and Chinese are scored by
character error rate.  Falls back to a lower-case/strip-punctuation
normaliser when openai-whisper is not installed.

Speed is measured per clip with the model already loaded (load time is
reported separately).  The systems run in ``--rounds`` alternating rounds
(A B C, A B, ...; openai-whisper only in the first unless
``--openai-rounds``) and per clip the fastest round counts, which damps
noise from other processes on a shared machine; ``--repeat N`` also repeats
each clip inside one process.  Both faster-whisper systems use the same
model directory, device, compute type (int8 on CPU), thread count, beam size
(5) and word timestamps; plain faster-whisper decodes files with its own
PyAV decoder, vidtrans with ffmpeg.  openai-whisper runs (fp32, PyTorch) only
where ``vidtrans.transcribe.openai_whisper`` can convert the packaged
CTranslate2 model to a whisper checkpoint.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import re
import resource
import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_EVAL = Path(os.environ.get("VIDTRANS_SHARED_EVAL", ROOT.parent / "shared" / "eval"))
CER_LANGS = {"ja", "zh"}
_ARCHAIC_ST = re.compile(r"(\w)['’]st\b")


# --------------------------------------------------------------------------- data
def pyannote_sample() -> dict | None:
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "sample"
    if not (d / "sample.wav").exists():
        return None
    words = []
    for line in (d / "sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=5)  # STM: file channel speaker start end text
        if len(parts) == 6 and not line.startswith(";;"):
            words.append(parts[5])
    return {"id": "pyannote_sample", "path": str(d / "sample.wav"), "language": "en", "reference": " ".join(words)}


def clips(languages: set[str] | None) -> list[dict]:
    out = []
    man = SHARED_EVAL / "manifest.json"
    if man.exists():
        for e in json.loads(man.read_text())["asr"]:
            ref = e["reference"]
            if "sonnet" in e["file"]:  # reference starts with the printed sonnet number the reader says aloud
                ref = re.sub(r"^\s*1\s*\n", "one\n", ref)
            out.append({"id": Path(e["file"]).stem, "path": str(SHARED_EVAL / e["file"]), "language": e["language"], "reference": ref})
    else:
        print(f"note: {man} not found; using only the pyannote sample", file=sys.stderr)
    s = pyannote_sample()
    if s:
        out.append(s)
    return [c for c in out if not languages or c["language"] in languages]


# --------------------------------------------------------------------------- scoring
def _normalizers():
    try:
        from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer

        return EnglishTextNormalizer(), BasicTextNormalizer()
    except Exception:  # openai-whisper missing: simple fallback
        def basic(s: str) -> str:
            s = unicodedata.normalize("NFKC", s).lower()
            s = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in s)
            return " ".join(s.split())

        return basic, basic


def score(hyp: str, ref: str, language: str, norms) -> tuple[str, float, int]:
    """(metric, error rate, reference length) after normalisation."""
    import jiwer

    eng, basic = norms
    n = eng if language == "en" else basic
    if language == "en":  # Whisper's normaliser reads archaic "feed'st" as "feed saint"
        hyp, ref = (_ARCHAIC_ST.sub(r"\1st", x) for x in (hyp, ref))
    h, r = n(hyp), n(ref)
    if language in CER_LANGS:
        h, r = h.replace(" ", ""), r.replace(" ", "")
        return "cer", jiwer.cer(r, h) if h else 1.0, len(r)
    if not h:
        return "wer", 1.0, len(r.split())
    return "wer", jiwer.wer(r, h), len(r.split())


# --------------------------------------------------------------------------- systems (run in children)
def _threads() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:
        pass


def _best_of(repeat: int, fn):
    """Run *fn* *repeat* times; return (fastest wall seconds, that run's result)."""
    best = None
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        if best is None or dt < best[0]:
            best = (dt, out)
    return best


def run_vidtrans(model: str, items: list[dict], repeat: int, extra: dict, vad: bool, threads: int) -> dict:
    from vidtrans.transcribe import TranscribeOptions, transcribe
    from vidtrans.transcribe.local import get_model

    opts = TranscribeOptions(model=model, vad_filter=vad, cpu_threads=threads, extra=extra)
    t0 = time.perf_counter()
    _, _, choice = get_model(opts)
    load = time.perf_counter() - t0
    res = []
    for c in items:
        best, tr = _best_of(repeat, lambda: transcribe(c["path"], opts))
        res.append({"id": c["id"], "text": tr.text, "language": tr.language, "seconds": best, "duration": tr.duration})
    return {"load": load, "threads": choice.cpu_threads, "clips": res}


def run_plain(model: str, items: list[dict], repeat: int, threads: int) -> dict:
    from faster_whisper import WhisperModel

    from vidtrans.models import resolve_model
    from vidtrans.transcribe.local import choose_device

    choice = choose_device("auto", "default", threads)
    t0 = time.perf_counter()
    m = WhisperModel(str(resolve_model(model)), device=choice.device, compute_type=choice.compute_type, cpu_threads=choice.cpu_threads)
    load = time.perf_counter() - t0
    def once(path):
        segs, info = m.transcribe(path, beam_size=5, word_timestamps=True)
        return " ".join(s.text.strip() for s in segs), info  # joining drains the lazy generator

    res = []
    for c in items:
        best, (text, info) = _best_of(repeat, lambda: once(c["path"]))
        res.append({"id": c["id"], "text": text, "language": info.language, "seconds": best, "duration": info.duration})
    return {"load": load, "threads": choice.cpu_threads, "clips": res}


def run_openai(model: str, items: list[dict], repeat: int, threads: int) -> dict:
    """openai-whisper through vidtrans's converter engine, when another module provides it."""
    from vidtrans.transcribe import TranscribeOptions, transcribe

    import torch

    from vidtrans.transcribe.local import physical_cores

    threads = threads or physical_cores()
    torch.set_num_threads(threads)
    opts = TranscribeOptions(engine="openai-whisper", model=model, cpu_threads=threads)
    res = []
    t0 = time.perf_counter()
    load = None
    for c in items:
        best, text, lang = None, "", None
        for _ in range(repeat):
            t = time.perf_counter()
            tr = transcribe(c["path"], opts)
            dt = time.perf_counter() - t
            if load is None:
                load = time.perf_counter() - t0
            if best is None or dt < best:
                best, text, lang = dt, tr.text, tr.language
        res.append({"id": c["id"], "text": text, "language": lang, "seconds": best, "duration": tr.duration})
    return {"load": load or 0.0, "threads": threads, "clips": res}


def _child(fn_name: str, args: tuple, q) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    _threads()
    try:
        out = globals()[fn_name](*args)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        q.put(out)
    except Exception as exc:  # reported as "not run" with the reason
        q.put({"error": f"{type(exc).__name__}: {exc}"})


def run_child(fn_name: str, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn_name, args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def openai_whisper_available() -> str | None:
    """None when the openai-whisper engine can run here, else the reason it cannot."""
    if importlib.util.find_spec("whisper") is None:
        return "openai-whisper is not installed"
    if not (ROOT / "vidtrans" / "transcribe" / "openai_whisper.py").exists():
        return "openai-whisper downloads its weights at run time (offline here) and no CT2->PyTorch converter (vidtrans/transcribe/openai_whisper.py) exists yet"
    from vidtrans.transcribe import ENGINES  # that module converts the packaged CT2 model to a whisper checkpoint

    if "openai-whisper" not in ENGINES:
        return "vidtrans/transcribe/openai_whisper.py exists but 'openai-whisper' is not registered in ENGINES"
    return None


# --------------------------------------------------------------------------- report
def summarize(name: str, out: dict, items: list[dict], norms) -> dict:
    by_id = {c["id"]: c for c in items}
    rows = []
    err_w = ref_w = 0.0
    for r in out["clips"]:
        c = by_id[r["id"]]
        metric, e, n = score(r["text"], c["reference"], c["language"], norms)
        rows.append({**r, "metric": metric, "error": e, "ref_len": n, "ref_language": c["language"]})
    en = [r for r in rows if r["ref_language"] == "en" and r["metric"] == "wer" and r["id"] != "pyannote_sample"]
    if en:
        err_w = sum(r["error"] * r["ref_len"] for r in en)
        ref_w = sum(r["ref_len"] for r in en)
    audio = sum(r["duration"] for r in rows)
    wall = sum(r["seconds"] for r in rows)
    return {
        "name": name, "rows": rows, "en_wer": err_w / ref_w if ref_w else None,
        "sample_wer": next((r["error"] for r in rows if r["id"] == "pyannote_sample"), None),
        "speed": audio / wall if wall else None, "audio": audio, "wall": wall,
        "load": out["load"], "rss": out["peak_rss_mb"], "threads": out.get("threads"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="base")
    ap.add_argument("--lang", action="append", help="only clips in this language (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per clip inside one process; the fastest counts")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds over all systems; the fastest per clip counts")
    ap.add_argument("--openai-rounds", action="store_true", help="run openai-whisper in every round (slow on CPU), not only the first")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for every system (0 = physical cores)")
    ap.add_argument("--variants", action="store_true", help="also run vidtrans with vad_filter=True and with the guards off")
    ap.add_argument("--no-openai", action="store_true", help="skip openai-whisper even when it can run")
    ap.add_argument("--batched", type=int, default=0, metavar="N",
                    help="also run vidtrans with batched decoding (faster-whisper's BatchedInferencePipeline), batch size N")
    ap.add_argument("--json", type=Path, help="also write all results here")
    a = ap.parse_args(argv)

    items = clips(set(a.lang) if a.lang else None)
    if not items:
        print("no clips to run", file=sys.stderr)
        return 1
    norms = _normalizers()
    print(f"{len(items)} clips, {sum(1 for c in items if c['language'] == 'en')} English; model={a.model}; "
          f"threads={a.threads or 'physical cores'}; repeat={a.repeat}; rounds={a.rounds}", flush=True)

    systems: list[tuple[str, str, tuple]] = [
        ("vidtrans", "run_vidtrans", (a.model, items, a.repeat, {}, False, a.threads)),
        ("faster-whisper", "run_plain", (a.model, items, a.repeat, a.threads)),
    ]
    if a.variants:
        systems += [
            ("vidtrans+vad_filter", "run_vidtrans", (a.model, items, a.repeat, {}, True, a.threads)),
            ("vidtrans-no-guards", "run_vidtrans",
             (a.model, items, a.repeat, {"vad_gate": False, "hallucination_silence_threshold": None}, False, a.threads)),
        ]
    if a.batched:
        systems.append((f"vidtrans-batched{a.batched}", "run_vidtrans", (a.model, items, a.repeat, {"batch_size": a.batched}, False, a.threads)))
    reason = "disabled with --no-openai" if a.no_openai else openai_whisper_available()
    if reason is None:
        systems.append(("openai-whisper", "run_openai", (a.model, items, a.repeat, a.threads)))

    # rounds alternate the systems (A B C, A B ...) so load from other processes hits all alike;
    # per clip the fastest round counts, peak RSS is the largest seen
    merged: dict[str, dict] = {}
    for rnd in range(a.rounds):
        for name, fn, args in systems:
            if rnd and name == "openai-whisper" and not a.openai_rounds:
                continue
            t = time.perf_counter()
            out = run_child(fn, *args)
            if "error" in out:
                print(f"{name}: not run ({out['error']})", flush=True)
                continue
            print(f"{name} (round {rnd + 1}): done in {time.perf_counter() - t:.0f} s", flush=True)
            m = merged.get(name)
            if m is None:
                merged[name] = out
                continue
            m["peak_rss_mb"] = max(m["peak_rss_mb"], out["peak_rss_mb"])
            m["load"] = min(m["load"], out["load"])
            for old, new in zip(m["clips"], out["clips"]):
                if new["seconds"] < old["seconds"]:
                    old["seconds"] = new["seconds"]
    results = [summarize(name, out, items, norms) for name, out in merged.items()]

    # per-clip table
    names = [r["name"] for r in results]
    print()
    print(f"{'clip':48s} {'lang':4s} {'metric':6s} " + " ".join(f"{n[:20]:>20s}" for n in names))
    for i, c in enumerate(items):
        cells = []
        for r in results:
            row = r["rows"][i]
            cells.append(f"{row['error'] * 100:6.1f}% {row['duration'] / row['seconds']:5.1f}x")
        print(f"{c['id'][:48]:48s} {c['language']:4s} {results[0]['rows'][i]['metric'] if results else '':6s} "
              + " ".join(f"{x:>20s}" for x in cells))
    print()
    print("EN WER = word-weighted WER over the English read-speech clips (pyannote sample excluded; it is "
          "conversational telephone speech and shown as 'sample WER')")
    print(f"{'system':22s} {'EN WER':>8s} {'sample WER':>10s} {'speed (audio s / wall s)':>25s} {'load s':>7s} {'peak RSS MB':>12s} {'threads':>8s}")
    for r in results:
        wer = f"{r['en_wer'] * 100:.2f}%" if r["en_wer"] is not None else "n/a"
        sw = f"{r['sample_wer'] * 100:.2f}%" if r["sample_wer"] is not None else "n/a"
        print(f"{r['name']:22s} {wer:>8s} {sw:>10s} {r['speed']:25.2f} {r['load']:7.2f} {r['rss']:12.0f} {r['threads']!s:>8s}")
    if reason is not None:
        print(f"{'openai-whisper':22s} not run: {reason}")
    base = {r["name"]: r for r in results}
    if "vidtrans" in base and "faster-whisper" in base:
        v, p = base["vidtrans"], base["faster-whisper"]
        print(f"\nvidtrans speed / plain faster-whisper = {v['speed'] / p['speed']:.2f} (target >= 1.0)")
        if v["en_wer"] is not None:
            print(f"vidtrans English read-speech WER = {v['en_wer'] * 100:.2f}% (target <= 5% for base on read speech)")
    print(f"bench process peak RSS (children): {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
