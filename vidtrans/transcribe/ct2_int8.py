"""A CTranslate2 Whisper model with its weights already in int8, cached on disk.

Whisper models ship in float16 (the packaged *base*, the hub's
``Systran/faster-whisper-*``).  Asked for ``int8``, CTranslate2 quantizes
every weight each time it loads the model: 0.17-0.25 s of a 0.3 s load for
*base* on 2 cores (``bench/README.md``), seconds for the large models, paid
by every process.  :func:`int8_model_dir` does that quantization once, with
CTranslate2's own rule, and keeps the result next to the other cached
models; later loads read int8 weights and convert nothing.

The rule is the one CTranslate2 4.x applies at load time
(``Model::set_compute_type`` / ``WhisperModel::is_quantizable``): every float
variable whose name ends in ``weight`` and does not contain ``conv`` becomes
int8 with one scale per row, ``scale = 127 / max|row|`` and
``round(w * scale)`` (round half to even; binary format version >= 5 rounds
before the cast), the scale saved as ``<name>_scale``.  Everything else
(biases, layer norms, the convolutions) is copied as it is; CTranslate2
converts those at load as before.  The decoded text is bit-for-bit the
runtime-quantized model's (``tests/test_ct2_int8.py``).

The file format is ``ctranslate2/specs/model_spec.py``'s ``_serialize``.
Anything unexpected in it (another binary version, a dtype this module does
not know, a truncated file) leaves the model as it is: the caller loads the
float16 directory and CTranslate2 quantizes it at load time, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from .._io import atomic_write_text, cache_dir

log = logging.getLogger(__name__)

#: bumped when the files this module writes change
_FORMAT = 1
_MARKER = "vidtrans-int8.json"
#: CTranslate2's dtype ids (model_spec.py ``_dtype_to_type_id``); bfloat16 (5) has no numpy dtype
_DTYPES = {0: np.dtype(np.float32), 1: np.dtype(np.int8), 2: np.dtype(np.int16), 3: np.dtype(np.int32),
           4: np.dtype(np.float16)}
_TYPE_IDS = {v: k for k, v in _DTYPES.items()}
#: binary versions whose layout (and rounding) this module reads and writes
_BINARY_VERSIONS = (5, 6)


class UnsupportedModelFile(ValueError):
    """model.bin is not a layout this module rewrites (the model is then loaded as it is)."""


def _quantizable(name: str) -> bool:
    """CTranslate2's ``WhisperModel::is_quantizable``."""
    return name.endswith("weight") and "conv" not in name


def _read(path: Path, buf) -> tuple[int, str, int, list[tuple[str, np.ndarray]], list[tuple[str, str]]]:
    """Parse model.bin held in *buf*: (binary version, spec name, revision, variables, aliases).

    The arrays are views of *buf* (no copy)."""
    offset = 0

    def take(fmt: str):
        nonlocal offset
        try:
            values = struct.unpack_from(fmt, buf, offset)
        except struct.error as exc:
            raise UnsupportedModelFile(f"{path} is truncated at byte {offset}") from exc
        offset += struct.calcsize(fmt)
        return values[0]

    def string() -> str:
        nonlocal offset
        n = take("<H")
        raw = bytes(buf[offset:offset + n])
        if len(raw) != n or not raw.endswith(b"\0"):
            raise UnsupportedModelFile(f"{path}: bad string at byte {offset}")
        offset += n
        return raw[:-1].decode("utf-8")

    version = take("<I")
    if version not in _BINARY_VERSIONS:
        raise UnsupportedModelFile(f"{path}: binary version {version} (this module writes {_BINARY_VERSIONS})")
    spec, revision = string(), take("<I")
    variables = []
    for _ in range(take("<I")):
        name = string()
        shape = tuple(take("<I") for _ in range(take("<B")))
        type_id, nbytes = take("<B"), take("<I")
        dtype = _DTYPES.get(type_id)
        if dtype is None:
            raise UnsupportedModelFile(f"{path}: variable {name} has dtype id {type_id}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count * dtype.itemsize != nbytes or offset + nbytes > len(buf):
            raise UnsupportedModelFile(f"{path}: variable {name} does not fit its shape {shape}")
        variables.append((name, np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)))
        offset += nbytes
    aliases = [(string(), string()) for _ in range(take("<I"))]
    if offset != len(buf):
        raise UnsupportedModelFile(f"{path}: {len(buf) - offset} bytes after the last alias")
    return version, spec, revision, variables, aliases


def quantize_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CTranslate2's per-row int8 quantization of a 2-D float weight: (int8 weight, float32 scales)."""
    w = np.asarray(weight, dtype=np.float32)
    amax = np.abs(w).max(axis=1)
    amax[amax == 0] = 127.0
    scale = (np.float32(127.0) / amax).astype(np.float32)
    return np.rint(w * scale[:, None]).astype(np.int8), scale


def _write_string(out, s: str) -> None:
    raw = s.encode("utf-8")
    out.write(struct.pack("<H", len(raw) + 1) + raw + b"\0")


def _write_variable(out, name: str, value: np.ndarray) -> None:
    _write_string(out, name)
    out.write(struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape))
    out.write(struct.pack("<BI", _TYPE_IDS[value.dtype], value.nbytes))
    out.write(np.ascontiguousarray(value).data)


def quantize_model_file(src: Path, dst: Path) -> int:
    """Write *src* (a CTranslate2 Whisper model.bin) to *dst* with its weights in int8; returns how
    many variables were quantized (0: nothing to do, *dst* is not written).

    Streams: one weight at a time is held in float32, so a large model needs
    little more memory than its largest matrix."""
    buf = np.memmap(src, dtype=np.uint8, mode="r")  # the arrays below are views of the map
    version, spec, revision, variables, aliases = _read(src, buf)
    if spec != "WhisperSpec":
        raise UnsupportedModelFile(f"{src}: a {spec}, not a Whisper model")
    source = dict(variables)
    todo = {name for name, value in variables
            if _quantizable(name) and value.dtype in (np.float16, np.float32) and f"{name}_scale" not in source}
    odd = sorted(name for name in todo if source[name].ndim != 2)
    if odd:
        raise UnsupportedModelFile(f"{src}: weights {odd[:3]} are not 2-D")
    if not todo:
        return 0
    scales: dict[str, np.ndarray] = {}
    with open(dst, "wb") as out:
        out.write(struct.pack("<I", version))
        _write_string(out, spec)
        out.write(struct.pack("<II", revision, len(variables) + len(todo)))
        # the order model_spec.py writes: by name ("x/weight" just before "x/weight_scale")
        for name in sorted(list(source) + [f"{n}_scale" for n in todo]):
            if name in todo:
                q, scales[name] = quantize_rows(source[name])
                _write_variable(out, name, q)
            elif name.endswith("_scale") and name[:-6] in todo:
                weight = name[:-6]
                scale = scales.pop(weight, None)
                _write_variable(out, name, scale if scale is not None else quantize_rows(source[weight])[1])
            else:
                _write_variable(out, name, source[name])
        out.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases:
            _write_string(out, alias)
            _write_string(out, target)
        out.flush()
        os.fsync(out.fileno())
    return len(todo)


def _source_id(model_dir: Path) -> dict:
    st = (model_dir / "model.bin").stat()
    return {"source": str(model_dir.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "format": _FORMAT}


def _cached(target: Path, source: dict) -> bool:
    try:
        marker = json.loads((target / _MARKER).read_text(encoding="utf-8"))
        return (marker.get("source_id") == source
                and (target / "model.bin").stat().st_size == marker["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def int8_model_dir(model_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """The int8 copy of the CTranslate2 Whisper model in *model_dir*, made once under *root*
    (default ``vidtrans._io.cache_dir("models", "int8")``).

    Returns *model_dir* itself when there is nothing to quantize (already int8)
    or when the copy cannot be made (an unknown file layout, no disk space):
    CTranslate2 then quantizes at load time, with the same result.
    """
    model_dir = Path(model_dir)
    try:
        source = _source_id(model_dir)
        root = Path(root) if root is not None else cache_dir("models", "int8")
        digest = hashlib.sha256(source["source"].encode("utf-8")).hexdigest()[:12]
        target = root / f"{model_dir.name}-{digest}"
        if _cached(target, source):
            return target
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    except OSError as exc:
        log.warning("cannot cache an int8 copy of %s (%s); quantizing at load time", model_dir, exc)
        return model_dir
    try:
        n = quantize_model_file(model_dir / "model.bin", tmp / "model.bin")
        if not n:
            log.debug("%s has no float weights to quantize; loading it as it is", model_dir)
            return model_dir
        for item in model_dir.iterdir():
            if item.is_file() and item.name != "model.bin" and not item.name.startswith("."):
                shutil.copyfile(item, tmp / item.name)
        size = (tmp / "model.bin").stat().st_size
        atomic_write_text(tmp / _MARKER, json.dumps({"source_id": source, "size": size, "quantized": n}, indent=2))
        if _cached(target, source):  # another process made the same copy meanwhile
            return target
        if target.exists():  # stale (the source changed): set aside, then replace
            aside = root / f".{target.name}.stale-{os.getpid()}"
            with contextlib.suppress(OSError):
                os.rename(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _cached(target, source):  # not another process's identical copy
                raise
        log.info("cached %s's weights in int8 at %s (once; %d weights)", model_dir, target, n)
        return target
    except (OSError, UnsupportedModelFile) as exc:
        log.warning("cannot cache an int8 copy of %s (%s); quantizing at load time", model_dir, exc)
        return model_dir
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def weights_dir(model_dir: str | os.PathLike, device: str, compute_type: str) -> Path:
    """The directory CTranslate2 should load *model_dir*'s weights from for *device* / *compute_type*:
    the int8 copy (:func:`int8_model_dir`) on the CPU with an int8 compute type, else *model_dir*."""
    if device == "cpu" and compute_type.startswith("int8"):
        return int8_model_dir(model_dir)
    return Path(model_dir)

