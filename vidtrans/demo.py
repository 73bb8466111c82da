"""The bundled offline demo input: real speech that ships inside a pip dependency.

pyannote-audio's wheel ships ``pyannote/audio/sample/sample.wav`` (30 s, two
speakers, telephone quality) with a reference transcript (``sample.stm``) and
speaker turns (``sample.rttm``).  The demo muxes it under a still video so
``make demo`` exercises the same video path a downloaded talk takes.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

from ._io import atomic_path
from .audio import _tool
from .errors import CorruptMediaError, MissingDependencyError


def sample_dir() -> Path:
    """Directory of pyannote-audio's bundled sample (sample.wav, sample.stm, sample.rttm)."""
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("pyannote.audio", extra="diarize", purpose="the bundled demo sample")
    d = Path(list(spec.submodule_search_locations)[0]) / "sample"
    if not (d / "sample.wav").exists():
        raise MissingDependencyError("pyannote.audio", extra="diarize", purpose="the bundled demo sample (sample.wav missing)")
    return d


def make_demo_video(out_dir: str | Path) -> Path:
    """Write ``<out_dir>/talk.mp4`` (black 160x90 video + the sample's speech) once; return it."""
    out = Path(out_dir) / "talk.mp4"
    if out.exists() and out.stat().st_size > 0:
        return out
    wav = sample_dir() / "sample.wav"
    with atomic_path(out, suffix=".mp4") as tmp:
        cmd = [
            _tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "color=c=black:s=160x90:r=5", "-i", str(wav), "-shortest",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", str(tmp),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CorruptMediaError(f"could not build the demo video: {proc.stderr.strip()[-300:]}")
    return out
