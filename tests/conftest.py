"""Shared fixtures: real speech from installed wheels and ../shared/eval, media made with ffmpeg."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_EVAL = Path(os.environ.get("VIDTRANS_SHARED_EVAL", ROOT.parent / "shared" / "eval"))


def text_wer(ref: str, hyp: str) -> float:
    """WER between two texts, lower case, punctuation other than apostrophes dropped."""
    import jiwer

    norm = lambda s: " ".join("".join(c.lower() if c.isalnum() or c == "'" else " " for c in s).split())  # noqa: E731
    return jiwer.wer(norm(ref), norm(hyp))


def pyannote_sample_dir() -> Path | None:
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "sample"
    return d if (d / "sample.wav").exists() else None


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """pyannote-audio's bundled sample: 30 s, two speakers, with sample.stm and sample.rttm."""
    d = pyannote_sample_dir()
    if d is None:
        pytest.skip("pyannote.audio (with its bundled sample) is not installed")
    return d


@pytest.fixture(scope="session")
def sample_wav(sample_dir: Path) -> Path:
    return sample_dir / "sample.wav"


@pytest.fixture(scope="session")
def sample_reference_text(sample_dir: Path) -> str:
    """Reference transcript of the sample from sample.stm (text column)."""
    words = []
    for line in (sample_dir / "sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and not line.startswith(";;"):
            words.append(parts[5])
    return " ".join(words)


@pytest.fixture(scope="session")
def shared_eval() -> Path:
    """../shared/eval (real speech with references); tests using it skip when absent."""
    if not (SHARED_EVAL / "manifest.json").exists():
        pytest.skip(f"evaluation data not present at {SHARED_EVAL}")
    return SHARED_EVAL


@pytest.fixture(scope="session")
def shared_manifest(shared_eval: Path) -> dict:
    return json.loads((shared_eval / "manifest.json").read_text())


def run_notebook(nb: Path, out: Path, timeout: int | None = None, **parameters):
    """Execute *nb* headless with papermill (kernel python3, cwd = its folder) into *out*."""
    pm = pytest.importorskip("papermill")
    return pm.execute_notebook(
        str(nb), str(out), parameters=parameters, kernel_name="python3", cwd=str(nb.parent),
        progress_bar=False, execution_timeout=timeout,
    )


def ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def sample_video(sample_wav: Path, media_dir: Path) -> Path:
    """The pyannote sample muxed under a small black video (mp4, h264 + aac)."""
    out = media_dir / "talk.mp4"
    if not out.exists():
        ffmpeg(
            "-f", "lavfi", "-i", "color=c=black:s=160x90:r=5", "-i", str(sample_wav),
            "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage",
            "-c:a", "aac", "-b:a", "64k", "-pix_fmt", "yuv420p", str(out),
        )
    return out


@pytest.fixture(scope="session")
def silent_wav(media_dir: Path) -> Path:
    out = media_dir / "silence.wav"
    if not out.exists():
        ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "8", str(out))
    return out
