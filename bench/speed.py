"""End-to-end speed as users feel it: whole processes timed from outside, alternating, same audio.

Systems (each a fresh process, started and timed by this script; peak RSS and
CPU seconds from ``wait4``):

``vidtrans``          ``python -m vidtrans.cli run FILE`` with defaults (speakers on)
``vidtrans-nodiar``   the same with ``--no-diarize``
``vidtrans-batched``  ``--no-diarize --batch-size 8`` (batched decoding over VAD chunks on CPU too)
``vidtrans-workers``  ``--no-diarize --decode-workers 2`` (pieces cut at pauses, two one-thread decoders)
``vidtrans-ct2enc``   ``--no-diarize --encoder-runtime ctranslate2`` (faster-whisper's own int8 encoder
                      instead of the OpenVINO one: what the encoder alone changes, same run)
``SYSTEM@PRECISION``  a vidtrans system above with ``--encoder-precision PRECISION`` (f32 or bf16)
``faster-whisper``    plain faster-whisper: ``WhisperModel(dir, device="cpu", compute_type="int8")``
                      then ``transcribe(FILE, beam_size=5, word_timestamps=True)``, text written out
``openai-whisper``    plain openai-whisper on the same weights (the packaged CTranslate2 model
                      converted once by ``vidtrans.transcribe.openai_whisper``), beam 5, word
                      timestamps, fp32 on CPU

Audio: real speech only.  Besides single clips, files of several minutes are
made once with ffmpeg by concatenating ``../shared/eval`` clips (all English
read-speech clips; pyannote's two-speaker sample tiled), each with its
reference text, and ``ami_meetings``: the nine 30 s AMI meeting excerpts of
``diar/`` joined (4.5 minutes of real meetings, 2-4 speakers each, nothing
tiled).  That one has no text reference, so its WER column is the distance
from plain faster-whisper's text of the same round (marked ``*``).

Every round runs every system once per file, the order rotating between
rounds; per file the median over rounds is reported, and the ratio to plain
faster-whisper is the median of the per-round ratios (pairs measured
back to back), which damps the noise of a shared machine.  WER uses the
normalisers of ``bench/asr.py``.

    .venv/bin/python bench/speed.py                       # 3 rounds, all files, no openai-whisper
    .venv/bin/python bench/speed.py --rounds 2 --openai   # + openai-whisper (first round only)
    .venv/bin/python bench/speed.py --files en_concat --systems vidtrans,faster-whisper
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

import asr  # noqa: E402  (bench/asr.py: clips, references, normalisers)

SYSTEMS = ("vidtrans", "vidtrans-nodiar", "vidtrans-batched", "vidtrans-workers", "faster-whisper", "openai-whisper")

_PLAIN_FW = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8")
segments, info = model.transcribe(sys.argv[2], beam_size=5, word_timestamps=True)
text = " ".join(s.text.strip() for s in segments)
open(sys.argv[3], "w").write(text)
"""

_PLAIN_OW = """
import sys, torch, whisper
model = whisper.load_model(sys.argv[1], device="cpu")
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
if ckpt.get("alignment_heads"):
    model.set_alignment_heads(ckpt["alignment_heads"])
result = model.transcribe(sys.argv[2], beam_size=5, best_of=5, word_timestamps=True, fp16=False)
open(sys.argv[3], "w").write(result["text"])
"""


# --------------------------------------------------------------------------- audio
def _ffmpeg_concat(inputs: list[str], out: Path) -> Path:
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for p in inputs:
        args += ["-i", p]
    streams = "".join(f"[{i}:a]aresample=16000,aformat=channel_layouts=mono[a{i}];" for i in range(len(inputs)))
    concat = "".join(f"[a{i}]" for i in range(len(inputs)))
    tmp = out.with_suffix(".tmp.flac")
    args += ["-filter_complex", f"{streams}{concat}concat=n={len(inputs)}:v=0:a=1[out]", "-map", "[out]", "-c:a", "flac", str(tmp)]
    subprocess.run(args, check=True)
    os.replace(tmp, out)
    return out


def make_files(workdir: Path) -> list[dict]:
    """The benchmark files: (id, path, language, reference) with several-minute concatenations."""
    clips = {c["id"]: c for c in asr.clips({"en"})}
    out = []
    sonnet = clips.get("en_librivox_shakespeare_sonnet001")
    if sonnet:
        out.append({**sonnet, "id": "sonnet_53s"})
    read = [c for c in clips.values() if c["id"] != "pyannote_sample"]
    if read:
        order = sorted(read, key=lambda c: c["id"])
        p = _ffmpeg_concat([c["path"] for c in order], workdir / "en_concat.flac")
        out.append({"id": "en_concat", "path": str(p), "language": "en", "reference": " ".join(c["reference"] for c in order)})
    sample = clips.get("pyannote_sample")
    if sample:  # one minute of two-speaker telephone speech: the short end of the 1-5 minute target
        p = _ffmpeg_concat([sample["path"]] * 2, workdir / "pyannote_x2.flac")
        out.append({"id": "pyannote_x2", "path": str(p), "language": "en", "reference": " ".join([sample["reference"]] * 2)})
    if sample:
        p = _ffmpeg_concat([sample["path"]] * 6, workdir / "pyannote_x6.flac")
        out.append({"id": "pyannote_x6", "path": str(p), "language": "en", "reference": " ".join([sample["reference"]] * 6)})
    if read and sample:
        mix = [c["path"] for c in sorted(read, key=lambda c: c["id"])] + [sample["path"]] * 4 + [read[0]["path"]]
        p = _ffmpeg_concat(mix, workdir / "mixed_4min.flac")
        ref = " ".join([c["reference"] for c in sorted(read, key=lambda c: c["id"])] + [sample["reference"]] * 4 + [read[0]["reference"]])
        out.append({"id": "mixed_4min", "path": str(p), "language": "en", "reference": ref})
    ami = sorted((asr.SHARED_EVAL / "diar").glob("ami_*.flac"))
    if ami:  # real meetings, 2-4 speakers each, none tiled; no text reference (scored against plain fw)
        p = _ffmpeg_concat([str(x) for x in ami], workdir / "ami_meetings.flac")
        out.append({"id": "ami_meetings", "path": str(p), "language": "en", "reference": None})
    for f in out:
        f["duration"] = _duration(f["path"])
    return out


def _duration(path: str) -> float:
    from vidtrans.audio import probe

    return float(probe(path).duration or 0.0)


# --------------------------------------------------------------------------- one process
def command(system: str, path: str, workdir: Path, text_out: Path) -> tuple[list[str], Path | None]:
    py = sys.executable
    system, _, precision = system.partition("@")  # e.g. vidtrans-nodiar@bf16: --encoder-precision bf16
    if system in ("vidtrans", "vidtrans-nodiar", "vidtrans-batched", "vidtrans-workers", "vidtrans-ct2enc"):
        out_dir = workdir / f"out-{system}{'-' + precision if precision else ''}"
        cmd = [py, "-m", "vidtrans.cli", "-q", "run", path, "--out", str(out_dir)]
        if precision:
            cmd += ["--encoder-precision", precision]
        if system != "vidtrans":
            cmd.append("--no-diarize")
        if system == "vidtrans-batched":
            cmd += ["--batch-size", "8"]
        if system == "vidtrans-workers":
            cmd += ["--decode-workers", "2"]
        if system == "vidtrans-ct2enc":
            cmd += ["--encoder-runtime", "ctranslate2"]
        return cmd, out_dir / (Path(path).stem + ".json")
    if system == "faster-whisper":
        from vidtrans.models import resolve_model

        return [py, "-c", _PLAIN_FW, str(resolve_model("base")), path, str(text_out)], None
    if system == "openai-whisper":
        from vidtrans.transcribe.openai_whisper import converted_checkpoint

        return [py, "-c", _PLAIN_OW, str(converted_checkpoint("base")), path, str(text_out)], None
    raise SystemExit(f"unknown system {system}")


def run_once(system: str, f: dict, workdir: Path) -> dict:
    text_out = workdir / f"{system}.txt"
    text_out.unlink(missing_ok=True)
    cmd, json_out = command(system, f["path"], workdir, text_out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(workdir))
    err = proc.stderr.read() if proc.stderr else b""
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": err.decode("utf-8", "replace")[-800:]}
    if json_out is not None:
        data = json.loads(json_out.read_text())
        t = data.get("transcript", data)
        text = " ".join(s["text"].strip() for s in t["segments"])
        timings = t.get("meta", {}).get("timings", {})
    else:
        text, timings = text_out.read_text(), {}
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024, "text": text, "timings": timings}


def _pct(wer: float | None, against_fw: bool) -> str:
    if wer is None:
        return "-"
    return f"{wer * 100:.2f}%" + ("*" if against_fw else "")


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--systems", default="vidtrans,vidtrans-nodiar,faster-whisper")
    ap.add_argument("--openai", action="store_true", help="also openai-whisper (first round only: it is slow on CPU)")
    ap.add_argument("--files", help="comma-separated file ids (default: all)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vidtrans-bench-speed")
    ap.add_argument("--json", type=Path, help="write all measurements here")
    a = ap.parse_args(argv)

    systems = [s for s in a.systems.split(",") if s]
    if a.openai and "openai-whisper" not in systems:
        systems.append("openai-whisper")
    files = make_files(a.workdir)
    if a.files:
        keep = set(a.files.split(","))
        files = [f for f in files if f["id"] in keep]
    norms = asr._normalizers()
    cores = os.cpu_count()
    load = os.getloadavg()
    print(f"{len(files)} files, systems {systems}, {a.rounds} rounds, {cores} CPUs, load average {load[0]:.1f} at start",
          flush=True)

    results: dict[tuple[str, str], list[dict]] = {}
    for rnd in range(a.rounds):
        for f in files:
            order = systems[rnd % len(systems):] + systems[: rnd % len(systems)]  # rotate the order per round
            for system in order:
                if system == "openai-whisper" and rnd:
                    continue
                r = run_once(system, f, a.workdir)
                if "error" in r:
                    print(f"  {system} on {f['id']}: FAILED {r['error']}", flush=True)
                    continue
                r["round"] = rnd
                r["load"] = os.getloadavg()[0]
                results.setdefault((f["id"], system), []).append(r)
                print(f"  round {rnd + 1} {f['id']:12s} {system:16s} {r['wall']:7.1f} s wall {r['cpu']:7.1f} s cpu "
                      f"{r['rss_mb']:6.0f} MB  load {r['load']:.1f}", flush=True)

    rows = []
    print()
    print(f"{'file':12s} {'dur s':>6s} {'system':16s} {'wall s':>7s} {'x real time':>11s} {'vs plain fw':>11s} "
          f"{'cpu s':>7s} {'cpu vs fw':>9s} {'WER':>7s} {'peak RSS MB':>11s}")
    for f in files:
        base = {r["round"]: r for r in results.get((f["id"], "faster-whisper"), [])}
        for system in systems:
            rs = results.get((f["id"], system), [])
            if not rs:
                continue
            wall = statistics.median(r["wall"] for r in rs)
            cpu = statistics.median(r["cpu"] for r in rs)
            ratios = [base[r["round"]]["wall"] / r["wall"] for r in rs if r["round"] in base]
            cratios = [base[r["round"]]["cpu"] / r["cpu"] for r in rs if r["round"] in base]
            reference = f["reference"]
            if reference is None:  # no text reference: how far the text is from plain faster-whisper's
                reference = next(iter(base.values()), {}).get("text")
            wer = asr.score(rs[0]["text"], reference, "en", norms)[1] if reference is not None else None
            row = {"file": f["id"], "duration": f["duration"], "system": system, "wall": wall, "cpu": cpu,
                   "speed_x_realtime": f["duration"] / wall, "ratio_vs_fw": statistics.median(ratios) if ratios else None,
                   "cpu_ratio_vs_fw": statistics.median(cratios) if cratios else None, "wer": wer,
                   "rss_mb": max(r["rss_mb"] for r in rs), "runs": len(rs),
                   "timings": rs[0]["timings"]}
            rows.append(row)
            ratio = f"{row['ratio_vs_fw']:.2f}x" if row["ratio_vs_fw"] else "-"
            cratio = f"{row['cpu_ratio_vs_fw']:.2f}x" if row["cpu_ratio_vs_fw"] else "-"
            print(f"{f['id']:12s} {f['duration']:6.0f} {system:16s} {wall:7.1f} {row['speed_x_realtime']:11.2f} {ratio:>11s} "
                  f"{cpu:7.1f} {cratio:>9s} {_pct(wer, f['reference'] is None):>7s} {row['rss_mb']:11.0f}")
    if any(f["reference"] is None for f in files):
        print("\n* no text reference: WER against plain faster-whisper's text of the same round (0 = the same words).")
    print("\n'vs plain fw' = median over rounds of (plain faster-whisper wall / system wall) for runs back to back; "
          ">1 is faster.  'cpu vs fw' is the same for CPU seconds (user+sys), which a busy machine disturbs less.")
    for system in systems:
        mine = [r for r in rows if r["system"] == system and r["ratio_vs_fw"]]
        if mine and system != "faster-whisper":
            print(f"{system:16s} median speed ratio vs plain faster-whisper over files: "
                  f"{statistics.median(r['ratio_vs_fw'] for r in mine):.2f}x wall, "
                  f"{statistics.median(r['cpu_ratio_vs_fw'] for r in mine):.2f}x cpu")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "raw": {f"{k[0]}|{k[1]}": v for k, v in results.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
