"""Peak memory of decoding and transcribing a 1-hour file (target: < 1.5 GB RSS).

The file is pyannote's 30 s sample tiled 120 times (made once with ffmpeg,
FLAC, in ``--workdir``).  Each stage runs in a fresh child process so its
peak RSS (``ru_maxrss``) is its own:

``decode``      vidtrans.audio.load_audio (ffmpeg -> one float32 array)
``decode+vad``  plus the Silero-VAD gate the engine runs on the whole input
``fw-features`` plus faster-whisper's log-mel spectrogram of the whole input,
                which plain ``WhisperModel.transcribe`` computes up front
``transcribe``  vidtrans's engine (model "base" unless ``--model``) decoding
                the first ``--minutes`` of output segments, or all of them
                with ``--full`` (an hour of audio is ~30 min of CPU here)
``pipeline``    what ``vidtrans run`` holds with speakers on (its word aligner's process
                counted too, ``child_rss_mb`` sampled from /proc, summed with the stage's own peak): the decoded file,
                transcription and the **whole** diarization of the file running
                side by side (``pipeline.transcribe_and_diarize``); transcription
                stops once diarization has finished and ``--minutes`` have passed
                (or runs to the end with ``--full``)

    .venv/bin/python bench/memory.py                # decode, vad, features, 3 min of transcription
    .venv/bin/python bench/memory.py --full --model tiny.en
    .venv/bin/python bench/memory.py --stages transcribe --repeats 240 --num-workers 2   # two decoders side by side
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_hour(workdir: Path, repeats: int) -> Path:
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pyannote.audio (with its bundled sample) is needed to build the test file")
    sample = Path(list(spec.submodule_search_locations)[0]) / "sample" / "sample.wav"
    out = workdir / f"sample_x{repeats}.flac"
    if not out.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.flac")
        subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", str(repeats - 1),
             "-i", str(sample), "-c:a", "flac", str(tmp)],
            check=True,
        )
        os.replace(tmp, out)
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vm_rss_mb(status: str) -> float:
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)


class _ChildPeak:
    """Largest resident size seen in this process's children (the pipeline's word-aligner process),
    sampled from /proc every half second.  Not ``RUSAGE_CHILDREN``: a child started while this
    process holds the 2-hour audio is charged the parent's pages until it execs (523 MB reported
    for an aligner that never exceeded 221 MB)."""

    def __init__(self):
        import threading

        self.mb = 0.0
        #: largest sum of this process's and its children's resident sizes at one sample
        self.tree_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.wait(0.5):
            kids = 0.0
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    text = stat.read_text()
                    if text[text.rindex(")") + 2 :].split()[1] != me:
                        continue
                    status = (stat.parent / "status").read_text()
                except (OSError, ValueError, IndexError):
                    continue
                kids += _vm_rss_mb(status)
            self.mb = max(self.mb, kids)
            try:
                self.tree_mb = max(self.tree_mb, kids + _vm_rss_mb(Path("/proc/self/status").read_text()))
            except OSError:
                pass

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.mb


def stage(name: str, path: str, model: str, minutes: float | None, workers: int, q) -> None:
    # no torch here: vidtrans's default path (faster-whisper + onnxruntime diarization) never imports it,
    # and torch alone adds ~200 MB of RSS that a real run does not have
    import numpy as np

    from vidtrans.audio import load_audio

    base = _rss_mb()
    children = _ChildPeak()
    t0 = time.perf_counter()
    info: dict = {}
    if name == "pipeline":
        from vidtrans.audio import load_audio as _load
        from vidtrans.pipeline import PipelineOptions, transcribe_and_diarize, transcribe_options

        class _Enough(Exception):
            pass

        state = {"diarized": False, "done": 0.0}

        def progress(stage_name, done, total):
            if stage_name == "diarize" and total and done >= total:
                state["diarized"] = True
            if stage_name == "transcribe":
                state["done"] = done
                if minutes is not None and state["diarized"] and time.perf_counter() - t0 > minutes * 60:
                    raise _Enough

        opts = PipelineOptions(model=model)
        audio = _load(path)
        try:
            topts = transcribe_options(opts)
            if workers:
                topts = replace(topts, extra={**topts.extra, "num_workers": workers})
            transcript, diarization, timings = transcribe_and_diarize(audio, audio, topts, opts, progress)
            info = {"speakers": len(diarization.speakers), "audio_done_s": round(transcript.duration or 0, 1)}
        except _Enough:
            info = {"stopped_after_diarization": True, "audio_transcribed_s": round(state["done"], 1)}
    elif name == "transcribe":
        from vidtrans.transcribe import TranscribeOptions, stream

        s = stream(path, TranscribeOptions(model=model, extra={"num_workers": workers} if workers else {}))
        n = 0
        last = 0.0
        for seg in s:
            n += 1
            last = seg.end
            if minutes is not None and time.perf_counter() - t0 > minutes * 60:
                break
        info = {"segments": n, "audio_done_s": round(last, 1), "of_s": round(s.duration or 0, 1)}
    else:
        audio = load_audio(path)
        info = {"samples": int(audio.size), "array_mb": round(audio.nbytes / 2**20, 1)}
        if name == "decode+vad":
            from vidtrans.transcribe.local import speech_regions

            info["speech_regions"] = len(speech_regions(audio))
        elif name == "fw-features":
            from faster_whisper.feature_extractor import FeatureExtractor

            feats = FeatureExtractor()(audio)
            info["features_mb"] = round(np.asarray(feats).nbytes / 2**20, 1)
    q.put({"stage": name, "peak_rss_mb": _rss_mb(), "child_rss_mb": round(children.stop()),
           "tree_rss_mb": round(children.tree_mb), "baseline_mb": base,
           "seconds": time.perf_counter() - t0, **info})


def run(name: str, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=stage, args=(name, *args, q))
    p.start()
    p.join()
    if p.exitcode != 0:
        return {"stage": name, "error": f"child exited with {p.exitcode} (killed for memory?)"}
    return q.get()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vidtrans-bench")
    ap.add_argument("--repeats", type=int, default=120, help="copies of the 30 s sample (120 = 1 hour)")
    ap.add_argument("--model", default="base")
    ap.add_argument("--minutes", type=float, default=3.0, help="stop transcribing after this much wall time")
    ap.add_argument("--full", action="store_true", help="transcribe the whole file")
    ap.add_argument("--num-workers", type=int, default=0,
                    help="faster-whisper decoders side by side (0 = the engine's default, one decoder)")
    ap.add_argument("--stages", default="decode,decode+vad,fw-features,transcribe,pipeline")
    a = ap.parse_args(argv)

    path = make_hour(a.workdir, a.repeats)
    print(f"input: {path} ({a.repeats * 30 / 60:.0f} min of audio, {path.stat().st_size / 2**20:.0f} MB FLAC)")
    print(f"{'stage':14s} {'peak RSS MB':>12s} {'(python+imports)':>17s} {'seconds':>8s}  details")
    worst = 0.0
    for name in a.stages.split(","):
        r = run(name, str(path), a.model, None if a.full else a.minutes, a.num_workers)
        if "error" in r:
            print(f"{name:14s} {r['error']}")
            continue
        # the word aligner runs in a child process: its memory counts too (tree_rss_mb: the largest
        # sum sampled; the two peaks summed is an upper bound, printed as well)
        worst = max(worst, r["peak_rss_mb"], r["tree_rss_mb"])
        details = {k: v for k, v in r.items() if k not in {"stage", "peak_rss_mb", "baseline_mb", "seconds"}}
        print(f"{name:14s} {r['peak_rss_mb']:12.0f} {r['baseline_mb']:17.0f} {r['seconds']:8.1f}  {details}", flush=True)
        if r["child_rss_mb"]:
            print(f"{'':14s} with its child processes: {r['tree_rss_mb']} MB sampled at once, "
                  f"{r['peak_rss_mb'] + r['child_rss_mb']:.0f} MB with both peaks summed", flush=True)
    print(f"\nworst peak RSS {worst:.0f} MB (target < 1536 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
