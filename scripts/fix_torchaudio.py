#!/usr/bin/env python
"""Make ``import torchaudio`` work beside a CPU-only torch wheel (idempotent).

Why: the newest torchaudio on PyPI (2.11.0) ships native libraries linked
against CUDA torch (``libc10_cuda.so``).  Next to the CPU torch wheel they fail
to load and ``import torchaudio`` raises ``OSError``.  torchaudio's loader
treats a *missing* native library as "extension not available" and imports its
pure-Python parts (resampling, Kaldi-compatible fbank, MFCC), which is all
pyannote.audio uses.  Lost without the natives: ``forced_align``,
``rnnt_loss`` and the C++ I/O backends (vidtrans decodes with ffmpeg anyway).

What it does, in order, with the interpreter that runs it:

1. ``import torchaudio`` in a subprocess.  Works (Colab, CUDA machines, a
   fixed venv) or not installed -> prints so and changes nothing.
2. Fails: only if the failure is an ``OSError`` loading a library under
   ``torchaudio/lib`` *and* torch is a CPU build (``torch.version.cuda is
   None``) does it delete ``torchaudio/lib/*.so``.  Anything else is reported
   and left alone (exit status 1).
3. Imports again to confirm, including ``torchaudio.compliance.kaldi``.

Run it after every ``pip install`` (``make venv`` does)::

    .venv/bin/python scripts/fix_torchaudio.py           # fix if needed
    .venv/bin/python scripts/fix_torchaudio.py --dry-run # only say what it would do

Reinstalling torchaudio (``pip install --force-reinstall torchaudio``) puts
the libraries back.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

PROBE = """
import importlib.util, json, sys
out = {"installed": importlib.util.find_spec("torchaudio") is not None}
if out["installed"]:
    spec = importlib.util.find_spec("torchaudio")
    out["dir"] = list(spec.submodule_search_locations)[0]
    try:
        import torchaudio, torchaudio.compliance.kaldi  # noqa: F401
        out["ok"] = True
        out["version"] = torchaudio.__version__
    except Exception as e:  # noqa: BLE001 - we report whatever it is
        out["ok"] = False
        out["error_type"] = type(e).__name__
        out["error"] = str(e)[-500:]
try:
    import torch
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
except Exception as e:  # noqa: BLE001
    out["torch"] = None
    out["torch_error"] = str(e)[-300:]
print("@@" + json.dumps(out))
"""


def probe(python: str) -> dict:
    import json

    proc = subprocess.run([python, "-c", PROBE], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError(f"probe failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="report what would be removed, change nothing")
    ap.add_argument("--python", default=sys.executable, help="interpreter whose torchaudio to check (default: this one)")
    args = ap.parse_args(argv)

    info = probe(args.python)
    if not info["installed"]:
        print("fix_torchaudio: torchaudio is not installed; nothing to do")
        return 0
    if info.get("ok"):
        print(f"fix_torchaudio: torchaudio {info.get('version')} imports fine; nothing to do")
        return 0

    lib_dir = Path(info["dir"]) / "lib"
    error = info.get("error", "")
    native_failure = info.get("error_type") == "OSError" and ("torchaudio/lib" in error or str(lib_dir) in error)
    if not native_failure:
        print(
            f"fix_torchaudio: torchaudio fails to import for a reason this script does not fix "
            f"({info.get('error_type')}: {error}); leaving it alone",
            file=sys.stderr,
        )
        return 1
    if info.get("torch") is None:
        print(f"fix_torchaudio: torch itself does not import ({info.get('torch_error')}); leaving torchaudio alone", file=sys.stderr)
        return 1
    if info.get("torch_cuda") is not None:
        print(
            f"fix_torchaudio: torch {info['torch']} is a CUDA build (CUDA {info['torch_cuda']}); torchaudio's "
            f"native libraries should load there, so nothing is removed. Error was: {error}",
            file=sys.stderr,
        )
        return 1

    libs = sorted(lib_dir.glob("*.so"))
    if not libs:
        print(f"fix_torchaudio: no native libraries left in {lib_dir}, but import still fails: {error}", file=sys.stderr)
        return 1
    print(f"fix_torchaudio: torch {info['torch']} is a CPU build and torchaudio's CUDA-linked native libraries fail to load:")
    print(f"  {error.strip().splitlines()[-1] if error.strip() else 'OSError'}")
    for lib in libs:
        print(f"  {'would remove' if args.dry_run else 'removing'} {lib}")
        if not args.dry_run:
            lib.unlink()
    if args.dry_run:
        return 0

    after = probe(args.python)
    if not after.get("ok"):
        print(f"fix_torchaudio: torchaudio still fails to import: {after.get('error_type')}: {after.get('error')}", file=sys.stderr)
        return 1
    print(
        f"fix_torchaudio: torchaudio {after.get('version')} now imports (pure-Python parts only; "
        "forced_align / rnnt_loss / C++ I/O unavailable)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
