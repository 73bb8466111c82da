"""Batched vs sequential decoding on CPU: WER per file and CPU seconds, same process, same model.

Runs vidtrans's faster-whisper engine (packaged base model, int8, beam 5,
word timestamps) on every English ASR clip of ``../shared/eval`` plus the
several-minute concatenations ``bench/speed.py`` builds, once per decoding
configuration, and prints WER per file and the mean, with the CPU seconds
(``time.process_time`` around each transcription, model already loaded).
Results are cached per (configuration, file) under ``--cache`` so configurations
can be added one at a time on a busy machine.

    .venv/bin/python bench/batched.py --config seq:batch_size=1 --config b4:batch_size=4
    .venv/bin/python bench/batched.py --config b8g1:batch_size=8,batch_max_gap=1.0
    .venv/bin/python bench/batched.py --config ct2:encoder_runtime=ctranslate2 --config ov:encoder_runtime=openvino
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import asr  # noqa: E402
import speed  # noqa: E402


def files(workdir: Path) -> list[dict]:
    out = asr.clips({"en"})
    return out + [f for f in speed.make_files(workdir) if f["id"] != "sonnet_53s"]


def parse_config(text: str) -> tuple[str, dict]:
    name, _, spec = text.partition(":")
    extra = {}
    for kv in filter(None, spec.split(",")):
        k, v = kv.split("=")
        try:
            extra[k] = int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:  # a name, e.g. encoder_runtime=openvino
            extra[k] = v
    return name, extra


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", required=True, help="NAME:key=value,... (TranscribeOptions.extra)")
    ap.add_argument("--files", help="comma-separated ids (default all)")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "vidtrans-bench-batched")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vidtrans-bench-speed")
    a = ap.parse_args(argv)

    from vidtrans.models import ModelCache
    from vidtrans.transcribe import TranscribeOptions
    from vidtrans.transcribe.local import faster_whisper_engine

    items = files(a.workdir)
    if a.files:
        keep = set(a.files.split(","))
        items = [f for f in items if f["id"] in keep]
    norms = asr._normalizers()
    models = ModelCache()
    configs = [parse_config(c) for c in a.config]
    table: dict[str, dict[str, dict]] = {}
    for name, extra in configs:
        for f in items:
            cf = a.cache / name / f"{f['id']}.json"
            if cf.exists():
                r = json.loads(cf.read_text())
            else:
                opts = TranscribeOptions(model="base", language="en", beam_size=a.beam, word_timestamps=True, extra=extra)
                faster_whisper_engine(f["path"], opts, models=models)  # model load outside the timing
                c0, w0 = time.process_time(), time.perf_counter()
                stream = faster_whisper_engine(f["path"], opts, models=models)
                text = " ".join(s.text.strip() for s in stream)
                r = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0, "text": text,
                     "load": os.getloadavg()[0]}
                cf.parent.mkdir(parents=True, exist_ok=True)
                tmp = cf.with_suffix(".tmp")
                tmp.write_text(json.dumps(r))
                os.replace(tmp, cf)
            _, wer, _ = asr.score(r["text"], f["reference"], "en", norms)
            r["wer"] = wer
            table.setdefault(f["id"], {})[name] = r
            print(f"  {name:10s} {f['id'][:40]:40s} cpu {r['cpu']:6.1f} s  WER {wer * 100:6.2f}%", flush=True)
    names = [n for n, _ in configs]
    print(f"\n{'file':40s} " + " ".join(f"{n:>16s}" for n in names))
    for fid, row in table.items():
        print(f"{fid[:40]:40s} " + " ".join(f"{row[n]['wer'] * 100:6.2f}% {row[n]['cpu']:6.1f}s" for n in names))
    for n in names:
        wers = [row[n]["wer"] for row in table.values()]
        cpu = sum(row[n]["cpu"] for row in table.values())
        print(f"{n:10s} mean WER {statistics.mean(wers) * 100:6.2f}%  total cpu {cpu:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
