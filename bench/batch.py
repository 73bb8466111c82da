"""Batch throughput: audio hours per wall hour for 1 and 2 local workers and a local Ray cluster.

    .venv/bin/python bench/batch.py                    # base model, speakers off, every ../shared/eval asr clip
    .venv/bin/python bench/batch.py --rounds 2 --configs local-1,local-2

Every configuration runs the same items through ``vidtrans.batch.run_batch``
into a fresh run directory (nothing cached), in alternating order per round;
the best round per configuration is reported.  Throughput counts the whole
batch wall time (worker start-up and model loads included) and, separately,
the steady state (first item start to last item end).  Scaling efficiency is
speed-up / workers against ``local-1``.  Each worker gets cores/workers
threads, so ``local-1`` already uses every core; ``local-1x1`` (one worker,
one thread) is measured too, to show what one core does alone.

The machine may be shared: the load average before and after each run is
printed next to its numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vidtrans.batch import BatchError, BatchOptions, run_batch  # noqa: E402
from vidtrans.pipeline import PipelineOptions  # noqa: E402

SHARED = Path(os.environ.get("VIDTRANS_SHARED_EVAL", ROOT.parent / "shared" / "eval"))
#: name -> (executor, workers, threads per worker or 0 = cores/workers)
CONFIGS = {
    "local-1": ("local", 1, 0),
    "local-1x1": ("local", 1, 1),
    "local-2": ("local", 2, 0),
    "ray-2": ("ray", 2, 0),
}


def items() -> list[str]:
    """Every asr clip of ../shared/eval (17 clips, 7 languages) plus pyannote's 30 s sample."""
    import importlib.util

    out = []
    manifest = SHARED / "manifest.json"
    if manifest.exists():
        out += [str(SHARED / e["file"]) for e in json.loads(manifest.read_text())["asr"]]
    spec = importlib.util.find_spec("pyannote.audio")
    if spec and spec.submodule_search_locations:
        sample = Path(list(spec.submodule_search_locations)[0]) / "sample" / "sample.wav"
        if sample.exists():
            out.append(str(sample))
    if not out:
        sys.exit("no audio: ../shared/eval is missing and pyannote.audio is not installed")
    return out


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_config(name: str, sources: list[str], model: str, work: Path) -> dict:
    executor, workers, threads = CONFIGS[name]
    out = work / f"{name}-{time.time_ns()}"
    options = PipelineOptions(model=model, diarize=False, cpu_threads=threads)
    load0 = loadavg()
    t0 = time.perf_counter()
    report = run_batch(sources, options, BatchOptions(out_dir=str(out), workers=workers, executor=executor,
                                                      progress=False))
    wall = time.perf_counter() - t0
    load1 = loadavg()
    t = report.totals
    assert t["failed"] == 0, report.format()
    starts = [i["started"] for i in report.items]
    ends = [i["finished"] for i in report.items]
    steady = max(ends) - min(starts)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "config": name, "wall_s": wall, "audio_s": t["audio_seconds"],
        "throughput": t["audio_seconds"] / wall, "steady_throughput": t["audio_seconds"] / steady,
        "model_loads": sorted(v for v in t["whisper_model_loads_per_worker"].values()),
        "workers_seen": len(t["whisper_model_loads_per_worker"]), "load": (load0, load1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--configs", default="local-1,local-1x1,local-2,ray-2")
    ap.add_argument("--max-items", type=int, default=None, help="only the first N items (a quick run on a busy machine)")
    args = ap.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if "ray-2" in configs:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("PYTHONPATH", str(ROOT))
    sources = items()[: args.max_items]
    print(f"{len(sources)} items, model {args.model}, speakers off, {os.cpu_count()} CPUs; "
          f"load average {loadavg():.1f} at start (the machine may be shared)")
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="vidtrans-bench-batch-") as tmp:
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else configs[::-1]
            for name in order:
                try:
                    res = run_config(name, sources, args.model, Path(tmp))
                except BatchError as exc:  # e.g. a Ray cluster that cannot start on an overloaded machine
                    print(f"  round {r + 1} {name:<10} did not run: {exc}", flush=True)
                    continue
                print(f"  round {r + 1} {name:<10} wall {res['wall_s']:6.1f} s  {res['throughput']:6.2f} audio s/s "
                      f"(steady {res['steady_throughput']:.2f})  model loads per worker {res['model_loads']}  "
                      f"load avg {res['load'][0]:.1f} -> {res['load'][1]:.1f}", flush=True)
                if name not in best or res["throughput"] > best[name]["throughput"]:
                    best[name] = res
    base = best.get("local-1")
    print()
    print("| configuration | workers x threads | wall s | audio h / wall h | steady-state audio h / wall h | speed-up vs local-1 | scaling efficiency | model loads per worker |")
    print("|---|---|---|---|---|---|---|---|")
    for name in configs:
        if name not in best:
            print(f"| {name} | did not run | | | | | | |")
            continue
        res = best[name]
        executor, workers, threads = CONFIGS[name]
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        speedup = res["throughput"] / base["throughput"] if base else float("nan")
        print(f"| {name} | {workers} x {threads} | {res['wall_s']:.1f} | {res['throughput']:.2f}"
              f" | {res['steady_throughput']:.2f} | {speedup:.2f}x | {speedup / workers:.0%} | {res['model_loads']} |")
    print("\n(audio h per wall h = audio seconds per wall second; target: local-2 >= 1.6x local-1)")


if __name__ == "__main__":
    main()
