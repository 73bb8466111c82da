"""OpenVINO helpers shared by the stages that run graphs on its CPU plugin (diarization, the Whisper encoder)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError


def available() -> bool:
    """True when the ``openvino`` package is installed (found without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def core(cache: Path, purpose: str):
    """An ``openvino.Core`` keeping its compiled-model cache in *cache* (compiling costs CPU-seconds;
    loading a compiled model from the cache a fraction of that)."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise MissingDependencyError("openvino", purpose=purpose) from exc
    c = ov.Core()
    c.set_property({"CACHE_DIR": str(cache)})
    return c


def precision(capabilities: Any = None) -> str:
    """``bf16`` when OpenVINO's CPU plugin reports native bfloat16 (AMX or AVX512-BF16), else ``f32``.

    *capabilities*: the plugin's ``OPTIMIZATION_CAPABILITIES`` (read from the CPU when None).
    """
    if capabilities is None:
        capabilities = _cpu_capabilities()
    return "bf16" if "BF16" in capabilities else "f32"


@functools.lru_cache(maxsize=1)
def _cpu_capabilities() -> tuple[str, ...]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (read once: the CPU does not change)."""
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
