"""OpenVINO helpers shared by the stages that run graphs on its CPU plugin (diarization, the Whisper encoder)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError

log = logging.getLogger(__name__)


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


def compile_cached(core, graph: Callable[[], Path], config: dict, what: str, error: type[Exception],
                   again: str = "building it again", files: Callable[[Path], list[Path]] = lambda p: [p]):
    """Compile the cached graph *graph()* returns (it builds the graph when missing) for the CPU plugin.

    A cached graph OpenVINO cannot read (a killed build, a full disk) is deleted (its *files*) and
    built once more; if that fails too, *error* is raised naming *what*.
    """
    for attempt in range(2):
        path = graph()
        try:
            return core.compile_model(str(path), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for a graph it cannot read
            if attempt:
                raise error(f"OpenVINO cannot compile {what} {path}: {exc}") from exc
            log.warning("cached %s %s does not load in OpenVINO (%s); %s", what, path, exc, again)
            for f in files(path):
                with contextlib.suppress(OSError):
                    f.unlink()
    raise AssertionError("unreachable")


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
