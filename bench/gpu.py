"""GPU throughput: vidtrans's transcription on CUDA against plain faster-whisper on the same GPU.

One process, same model directory, same audio, same beam (5), word
timestamps on in every system.  Each system is loaded once and warmed up
on the first file (untimed: the load time is printed on its own); then the
systems run in ``--rounds`` alternating rounds (order rotated per round) and
per file the median wall time counts.

``faster-whisper``          plain faster-whisper: ``WhisperModel(model, "cuda", compute_type="float16")``,
                            ``transcribe(audio, beam_size=5, word_timestamps=True)`` (sequential, as its
                            README's first example)
``faster-whisper-batched``  its ``BatchedInferencePipeline`` (``batch_size`` 16, VAD chunks): the fastest
                            mode faster-whisper offers, what WhisperX builds on
``vidtrans-nodiar``         what ``vidtrans run --no-diarize`` does after decoding the audio:
                            ``pipeline.transcribe_timed`` with default :class:`PipelineOptions`
                            (batched decoding on CUDA, guards, forced word alignment beside decoding)
``vidtrans-nodiar-1aligner``  the same with one forced aligner (``align_workers=1``, the CPU default)
                            instead of one process per core but one (up to 8), the GPU default
``vidtrans``                the same with speakers (``pipeline.transcribe_and_diarize``); needs the
                            diarization extras (on a GPU its torch runtime: pyannote.audio)

Audio: media files (decoded once with ``vidtrans.audio.load_audio``, i.e.
ffmpeg) or ``.npy`` arrays of 16 kHz samples (int16 or float32), so the
script also runs where no ffmpeg is installed.  ``--tile N`` adds, per
file, that file repeated N times (GPU throughput needs minutes of audio).
``--references JSON`` (``{"file stem": "text"}``) adds WER columns (the
normalisers of ``bench/asr.py``); without it the ``../shared/eval`` clip
references are used where a file's stem names one.

    python bench/gpu.py --model large-v3 talk.mp3 lecture.flac --rounds 3
    python bench/gpu.py --model /models/whisper-base-ct2 --tile 5 a.npy b.npy --json out.json
    python bench/gpu.py --device cpu --compute-type int8 --rounds 1 clip.wav   # the same script on a CPU

Real-time factors here exclude interpreter start-up and imports (``bench/speed.py``
times whole processes on CPU machines); peak GPU memory is read with NVML when
``nvidia-ml-py`` is installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

SAMPLE_RATE = 16_000
SYSTEMS = ("faster-whisper", "faster-whisper-batched", "vidtrans-nodiar", "vidtrans-nodiar-1aligner", "vidtrans")


# --------------------------------------------------------------------------- audio
def load(path: str) -> np.ndarray:
    """16 kHz mono float32 samples of *path* (``.npy`` read directly, anything else through ffmpeg)."""
    if path.endswith(".npy"):
        a = np.load(path)
        return (a.astype(np.float32) / 32768.0) if a.dtype == np.int16 else a.astype(np.float32)
    from vidtrans.audio import load_audio

    return load_audio(path)


def references(path: str | None) -> dict[str, str]:
    if path:
        return json.loads(Path(path).read_text())
    try:
        import asr

        return {Path(c["path"]).stem: c["reference"] for c in asr.clips({"en"})}
    except Exception:  # noqa: BLE001 - no ../shared/eval here: no WER
        return {}


class GpuMemory:
    """Peak used memory of GPU 0 (NVML, sampled every 50 ms) while the context is open; None without NVML."""

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVML: no memory column
            self._nvml = None

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            used = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20
            self.peak_mb = max(self.peak_mb or 0.0, used)

    def __enter__(self):
        if self._nvml is not None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._nvml is not None:
            self._thread.join()


# --------------------------------------------------------------------------- systems
def make_systems(names: list[str], model: str, device: str, compute_type: str, batch_size: int):
    """name -> callable(samples) -> (text, details); each loads its model on first call."""
    from vidtrans.models import ModelCache, resolve_model

    model_dir = str(resolve_model(model))
    out = {}
    plain: dict = {}

    def fw_model():
        if "m" not in plain:
            from faster_whisper import WhisperModel

            plain["m"] = WhisperModel(model_dir, device=device, compute_type=compute_type)
        return plain["m"]

    def faster_whisper(samples):
        segments, _ = fw_model().transcribe(samples, beam_size=5, word_timestamps=True)
        return " ".join(s.text.strip() for s in segments), {}

    def faster_whisper_batched(samples):
        from faster_whisper import BatchedInferencePipeline

        if "b" not in plain:
            plain["b"] = BatchedInferencePipeline(fw_model())
        segments, _ = plain["b"].transcribe(samples, beam_size=5, word_timestamps=True, batch_size=batch_size)
        return " ".join(s.text.strip() for s in segments), {}

    cache = ModelCache()

    def vidtrans(diarize: bool, align_workers: int = 0):
        from vidtrans import pipeline

        opts = pipeline.PipelineOptions(model=model_dir, device=device, diarize=diarize, align_workers=align_workers,
                                        compute_type="default" if compute_type == "float16" and device == "cuda" else compute_type)
        topts = pipeline.transcribe_options(opts)

        def run(samples):
            transcript, diarization, timings = pipeline.transcribe_and_diarize(samples, samples, topts, opts, models=cache)
            ins = transcript.insights or {}
            details = {k: round(v, 3) for k, v in timings.items()}
            details.update({k: ins.get(k) for k in ("device", "compute_type", "batch_size", "encoder_runtime")})
            details["align_workers"] = (transcript.meta.get("word_timing") or {}).get("align_workers")
            if diarization is not None:
                details["speakers"] = len({t.speaker for t in getattr(diarization, "turns", ())})
            return " ".join(s.text.strip() for s in transcript.segments), details

        return run

    table = {"faster-whisper": faster_whisper, "faster-whisper-batched": faster_whisper_batched,
             "vidtrans-nodiar": vidtrans(False), "vidtrans-nodiar-1aligner": vidtrans(False, 1), "vidtrans": vidtrans(True)}
    for n in names:
        if n not in table:
            raise SystemExit(f"unknown system {n!r}; choose from {', '.join(SYSTEMS)}")
        out[n] = table[n]
    return out


def timed(fn, samples):
    with GpuMemory() as mem:
        t0 = time.perf_counter()
        c0 = time.process_time()
        text, details = fn(samples)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "gpu_mb": mem.peak_mb, "text": text, "details": details}


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--model", default="large-v3", help="Whisper name or CTranslate2 model directory")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--compute-type", default="float16", help="plain faster-whisper's compute type (vidtrans: its default)")
    ap.add_argument("--batch-size", type=int, default=16, help="faster-whisper-batched's batch size")
    ap.add_argument("--systems", default="faster-whisper,faster-whisper-batched,vidtrans-nodiar")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tile", type=int, default=0, help="also each file repeated N times")
    ap.add_argument("--references", help="JSON {file stem: reference text}")
    ap.add_argument("--json", type=Path, help="write all measurements here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    refs = references(a.references)
    files = []
    for p in a.files:
        samples, stem = load(p), Path(p).stem
        files.append({"id": stem, "samples": samples, "reference": refs.get(stem)})
        if a.tile > 1:
            ref = refs.get(stem)
            files.append({"id": f"{stem}_x{a.tile}", "samples": np.tile(samples, a.tile),
                          "reference": " ".join([ref] * a.tile) if ref else None})
    systems = make_systems([s for s in a.systems.split(",") if s], a.model, a.device, a.compute_type, a.batch_size)

    gpu = "?"
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA (torch)"
    except Exception:  # noqa: BLE001
        pass
    print(f"{len(files)} files, systems {list(systems)}, {a.rounds} rounds, model {a.model}, device {a.device} ({gpu}), "
          f"{os.cpu_count()} CPUs", flush=True)

    loads = {}
    for name, fn in systems.items():  # load + warm-up on the shortest file, untimed for the table
        short = min(files, key=lambda f: f["samples"].size)
        r = timed(fn, short["samples"])
        loads[name] = r["wall"]
        print(f"  warm-up {name:24s} {r['wall']:7.2f} s (model load included)", flush=True)

    results: dict[tuple[str, str], list[dict]] = {}
    names = list(systems)
    for rnd in range(a.rounds):
        for f in files:
            for name in names[rnd % len(names):] + names[: rnd % len(names)]:
                try:
                    r = timed(systems[name], f["samples"])
                except Exception as exc:  # noqa: BLE001 - report and go on with the other systems
                    print(f"  {name} on {f['id']}: FAILED {exc.__class__.__name__}: {exc}", flush=True)
                    continue
                r["round"] = rnd
                results.setdefault((f["id"], name), []).append(r)
                dur = f["samples"].size / SAMPLE_RATE
                print(f"  round {rnd + 1} {f['id']:24s} {name:24s} {r['wall']:7.2f} s  {dur / r['wall']:7.1f}x real time"
                      f"  {r['details'] or ''}", flush=True)

    norms = None
    try:
        import asr

        norms = asr._normalizers()
    except Exception:  # noqa: BLE001 - no WER column without jiwer/normalisers
        pass
    rows = []
    print()
    print(f"{'file':24s} {'dur s':>6s} {'system':24s} {'wall s':>7s} {'x real time':>11s} {'vs plain fw':>11s} "
          f"{'cpu s':>7s} {'WER':>7s} {'GPU MB':>7s}")
    for f in files:
        dur = f["samples"].size / SAMPLE_RATE
        base = {r["round"]: r for r in results.get((f["id"], "faster-whisper"), [])}
        for name in names:
            rs = results.get((f["id"], name), [])
            if not rs:
                continue
            wall = statistics.median(r["wall"] for r in rs)
            ratios = [base[r["round"]]["wall"] / r["wall"] for r in rs if r["round"] in base]
            wer = None
            if f["reference"] and norms is not None:
                try:
                    import asr

                    _, wer, _ = asr.score(rs[0]["text"], f["reference"], "en", norms)
                except ImportError:  # no jiwer here: the texts are in --json, score them elsewhere
                    norms = None
            gmb = max((r["gpu_mb"] or 0) for r in rs) or None
            row = {"file": f["id"], "duration": dur, "system": name, "wall": wall,
                   "cpu": statistics.median(r["cpu"] for r in rs), "x_realtime": dur / wall,
                   "ratio_vs_fw": statistics.median(ratios) if ratios else None, "wer": wer, "gpu_mb": gmb,
                   "details": rs[0]["details"], "text": rs[0]["text"]}
            rows.append(row)
            ratio = f"{row['ratio_vs_fw']:.2f}x" if row["ratio_vs_fw"] else "-"
            werf = f"{wer * 100:6.2f}%" if wer is not None else "      -"
            print(f"{f['id']:24s} {dur:6.0f} {name:24s} {wall:7.2f} {row['x_realtime']:11.1f} {ratio:>11s} "
                  f"{row['cpu']:7.1f} {werf} {gmb or 0:7.0f}")
    print("\nload + warm-up seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in loads.items()))
    print("'vs plain fw' = median over rounds of (plain faster-whisper wall / system wall), same round; >1 is faster.")
    if a.json:
        a.json.write_text(json.dumps({"model": a.model, "device": a.device, "gpu": gpu, "loads": loads, "rows": rows},
                                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
