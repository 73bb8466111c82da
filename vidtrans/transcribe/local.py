"""Local, offline transcription with faster-whisper (CTranslate2 Whisper).

:func:`faster_whisper_engine` is registered as ``"faster-whisper"`` in
:data:`vidtrans.transcribe.ENGINES`.  It:

* decodes media with :func:`vidtrans.audio.load_audio` (ffmpeg, 16-bit samples:
  the same numbers faster-whisper's and openai-whisper's own decoders give) or
  takes a 16 kHz mono float32 array;
* resolves the model through :func:`vidtrans.models.resolve_model`
  ("base" and "tiny.en" work offline) and loads it through a caller-owned
  :class:`vidtrans.models.ModelCache` (pass ``models=``) so batches and
  notebooks load it once;
* picks the device ("auto" -> CUDA float16 when CTranslate2 sees a GPU,
  otherwise CPU int8), CPU threads (0 -> physical cores; with the OpenVINO
  encoder, models up to small decode on one of them, which is faster:
  :func:`choose_decoder_threads`), sequential or
  batched decoding (:func:`choose_batch_size`) and who runs Whisper's
  encoder (``extra["encoder_runtime"]``: on the CPU OpenVINO when it is
  installed, :mod:`.ov_encoder`; CTranslate2's decoder takes the encoded
  windows);
* yields :class:`vidtrans.schema.Segment` objects as faster-whisper decodes
  them, words keeping the model's own spacing (``" self"``, ``"-love"``).

**Ordinary speech decodes as plain faster-whisper decodes it**: the
decoding options are faster-whisper's defaults (beam 5, temperature fallback,
no ``hallucination_silence_threshold``, no VAD filter), the whole input goes
to the model in one call (long inputs get a block-wise but equal log-mel
spectrogram, :mod:`._features`, instead of being cut into pieces).  With
``encoder_runtime="ctranslate2"`` the text is plain faster-whisper's exactly
where no guard fires;
the OpenVINO encoder (the CPU default) computes the encoder in bfloat16 or
float32 instead of int8, which on read speech gives the same words and
elsewhere flips a word here and there, both ways (``bench/README.md``).  With
``num_workers`` > 1 (``vidtrans run --decode-workers N``) an input of
``min_split_seconds`` to ``max_split_seconds`` is instead cut at pauses into
pieces that workers of ``cpu_threads / N`` threads decode side by side
(:func:`split_points`, :func:`worker_plan`), each piece as faster-whisper
decodes a file.  The guards act only where they detect trouble:

* no speech: an energy gate and a Silero-VAD gate (no speech anywhere -> no
  decoding at all, no words);
* hallucinations outside speech: a segment that lies outside every VAD
  speech region *and* looks unlikely (high no-speech probability or low word
  confidence) is dropped, and decoding restarts at the next speech region
  without the dropped text as a prompt;
* repetition loops (:func:`find_repetition`: an n-gram repeated back to
  back, Whisper's commonest failure on large models): the segment is decoded
  again without the previous text as a prompt and the version with less
  repetition is kept; decoding then continues from there, unprompted.

Every re-decoded segment says so in ``segment.meta["guard"]`` and every drop
is listed in ``stream.insights["guard"]``.

Engine-specific options go in ``TranscribeOptions.extra`` (see :data:`EXTRA_OPTIONS`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE, as_samples, is_silent
from ..errors import ConfigurationError, EngineError, MissingDependencyError, ModelError
from ..schema import Segment, Word
from . import SimpleStream, TranscribeOptions
from .ov_encoder import describe as describe_encoder

log = logging.getLogger(__name__)

ENGINE_NAME = "faster-whisper"

#: keys accepted in ``TranscribeOptions.extra`` with their defaults
EXTRA_OPTIONS: dict[str, Any] = {
    # -- faster-whisper decoding options (passed through; faster-whisper's own defaults) --
    "temperature": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "best_of": 5,
    "patience": 1.0,
    "condition_on_previous_text": True,
    "compression_ratio_threshold": 2.4,
    "log_prob_threshold": -1.0,
    "no_speech_threshold": 0.6,
    #: faster-whisper's silence skipping around suspected hallucinations (s); None = off, as in
    #: faster-whisper, because it changes decoding of ordinary speech too
    "hallucination_silence_threshold": None,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "language_detection_segments": 1,
    "language_detection_threshold": 0.5,
    #: dict of faster_whisper.vad.VadOptions fields for ``vad_filter`` and the VAD gate
    "vad_parameters": None,
    # -- vidtrans guards ------------------------------------------------------
    #: whole input quieter than this (dBFS RMS) -> no decoding, no words
    "silence_threshold_db": -60.0,
    #: run Silero VAD over the input; no speech anywhere -> no words
    "vad_gate": True,
    #: a segment outside VAD speech is dropped when no_speech_prob exceeds this ...
    "drop_no_speech_prob": 0.5,
    #: ... or when its mean word probability is below this
    "drop_min_word_prob": 0.45,
    #: one sequential decoder on an input up to this long (s): the VAD gate runs beside language
    #: detection and the first window's decoding instead of before them (same regions, same text).
    #: 2 cores, alternating pairs without speakers: 3.2 % of a 53 s run, 3.7 % of a 113 s one; nothing
    #: measurable with speakers or on 4 minutes, where the VAD's buffers beside the decoder's raised
    #: the peak RSS by 110 MB.  0 = always before decoding
    "vad_in_background_seconds": 120.0,
    #: longer inputs up to this long (s; and no longer than ``lean_features_seconds``, whose spectrogram
    #: is computed window by window): the VAD gate runs in a helper thread beside faster-whisper's
    #: whole-input spectrogram, and decoding starts once both are done (same regions, same text).
    #: 2 cores, alternating pairs on a 4-minute file: 4.3 % faster without speakers, 4.8 % with;
    #: 4.5 minutes of meetings: 1 %; peak RSS +49 MB on 4 minutes, +80-100 MB on 9.5.  0 = the gate
    #: before the spectrogram
    "vad_beside_features_seconds": 600.0,
    #: re-decode repetition loops and restart decoding after a dropped hallucination
    "redecode": True,
    #: at most this many guard re-decodes per input (each recomputes the rest's spectrogram)
    "max_redecodes": 20,
    #: Whisper sometimes jumps over speech: prompted with the previous window's text it ends a window
    #: early and seeks on (on a 4-minute dev file one run skipped 46 s of VAD speech in one go).  When
    #: at least this many seconds of VAD speech lie between two segments (or after the last one)
    #: without a word, decoding restarts unprompted at that speech.  Over 27 dev inputs (13 English read
    #: clips, the phone call, 9 AMI meeting excerpts, 4 of bench/speed.py's concatenations) the largest
    #: such stretch of a default run was 3.9 s (a meeting's backchannels): it does not fire there.  0 = off
    "skipped_speech_seconds": 10.0,
    #: a repetition loop: an n-gram repeated back to back at least this many times ...
    "loop_min_repeats": 3,
    #: ... covering at least this many words
    "loop_min_words": 8,
    #: inputs longer than this (s) get the block-wise log-mel spectrogram (flat memory;
    #: equal to faster-whisper's up to float32 rounding, see ._features)
    "lean_features_seconds": 600.0,
    # -- batching / model loading ---------------------------------------------
    #: seed of CTranslate2's sampling (the temperature fallback on hard audio), set before the model
    #: loads: its decoders then draw the same samples every run, so a run gives the same text on the
    #: same input (plain faster-whisper draws a fresh seed: on the dev phone call three runs gave 85,
    #: 81 and 66 words).  None = a fresh seed per run
    "seed": 0,
    #: who runs Whisper's encoder: "auto" (OpenVINO on the CPU when installed: bfloat16 on AMX /
    #: AVX512-BF16 CPUs, see .ov_encoder), "openvino" or "ctranslate2" (faster-whisper's own)
    "encoder_runtime": "auto",
    #: the OpenVINO encoder's arithmetic: "auto" (see .ov_encoder.resolve_encoder_precision), "f32"
    #: (the model's own numbers: equals CTranslate2's float32 encoder) or "bf16" (bfloat16: faster
    #: where the CPU computes it natively, the text moves a little)
    "encoder_precision": "auto",
    #: on the CPU with an int8 compute type, load the weights from an int8 copy of the model made once
    #: in the cache (.ct2_int8): CTranslate2 then skips quantizing them at every load (0.2 s of a
    #: 0.3 s load for base), same text.  False = load the float16 model and quantize it each time
    "int8_cache": True,
    #: 0 = choose (see choose_batch_size), 1 = sequential (plain faster-whisper), >1 = batched over VAD chunks
    "batch_size": 0,
    #: batched decoding: VAD speech regions are grouped into chunks of at most this many seconds ...
    "batch_chunk_seconds": 30.0,
    #: ... joining neighbours separated by less than this pause (s)
    "batch_max_gap": 2.0,
    #: CTranslate2 threads of the decoder on the CPU when OpenVINO encodes (with its own threads):
    #: 0 = auto (see choose_decoder_threads: one for models up to small, whose per-step matrices are
    #: too small for a second thread to pay for the barrier it waits at; all for larger ones), N = N
    "decoder_threads": 0,
    # -- decoding side by side ------------------------------------------------------
    #: CTranslate2 workers, each with cpu_threads / num_workers threads; more than one decode
    #: pieces of the input side by side (see worker_plan: faster on 2 shared cores, not the default)
    "num_workers": 1,
    #: inputs longer than this (s) are cut at pauses into pieces decoded side by side ...
    "min_split_seconds": 30.0,
    #: ... each piece about this long at most (s); the count is a multiple of the workers
    "piece_seconds": 120.0,
    #: ... and inputs longer than this (s) are decoded whole (each worker's memory adds up)
    "max_split_seconds": 1800.0,
}


class LocalEngineError(EngineError):
    """faster-whisper / CTranslate2 failed while loading or decoding."""

    def __init__(self, message: str):
        super().__init__(message, engine=ENGINE_NAME)


@dataclass(frozen=True)
class DeviceChoice:
    """Where and how the model runs."""

    device: str
    compute_type: str
    cpu_threads: int


# --------------------------------------------------------------------------- device / threads
def physical_cores() -> int:
    """Physical CPU cores this process may use (at least 1)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = _cpuinfo_cores()
    if not physical:
        physical = os.cpu_count() or 1
    return max(1, min(physical, usable))


def _cpuinfo_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo (Linux without psutil)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores = set()
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "core id" in fields:
            cores.add((fields.get("physical id"), fields["core id"]))
    return len(cores) or None


@functools.lru_cache(maxsize=1)
def _cublas_name() -> str:
    """The cuBLAS library CTranslate2's CUDA build loads (named inside its shared library; wheels
    since 4.5 are built against CUDA 12)."""
    import mmap

    try:
        import ctranslate2

        pkg = Path(ctranslate2.__file__).parent
        for lib in sorted([*pkg.parent.glob("ctranslate2.libs/libctranslate2*"), *pkg.glob("libctranslate2*")]):
            with open(lib, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                found = re.search(rb"libcublas\.so\.\d+", m)
                name = bytes(found.group(0)).decode() if found else None
            if name:
                return name
    except (ImportError, OSError, ValueError):
        pass
    return "libcublas.so.12"


@functools.lru_cache(maxsize=1)
def cuda_library_problem() -> str | None:
    """Why CTranslate2 would fail on this machine's GPU -- the cuBLAS it loads at the first matrix
    product cannot be loaded (a CUDA 13-only image, say) -- or None.

    CTranslate2 counts the GPU either way and only fails mid-run with "Library libcublas.so.12 is
    not found", so :func:`choose_device` asks first.  Linux only (elsewhere None).
    """
    import sys

    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    name = _cublas_name()
    try:
        ctypes.CDLL(name)
    except OSError as exc:
        return (f"CTranslate2's CUDA build needs {name}, which cannot be loaded ({exc}); install CUDA 12's cuBLAS "
                f"(pip install nvidia-cublas-cu12, with its lib directory on LD_LIBRARY_PATH)")
    return None


def choose_device(device: str = "auto", compute_type: str = "default", cpu_threads: int = 0) -> DeviceChoice:
    """Resolve "auto"/"default"/0 to a concrete device, compute type and thread count.

    "auto" is CUDA when CTranslate2 sees a GPU and can load its cuBLAS (:func:`cuda_library_problem`;
    else the CPU, with a warning), "cuda" fails at once when either is missing.
    """
    try:
        import ctranslate2
    except ImportError as exc:
        raise MissingDependencyError("faster-whisper", purpose="local transcription (CTranslate2)") from exc

    device = (device or "auto").lower()
    if device not in {"auto", "cpu", "cuda"}:
        raise ConfigurationError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    n_gpu = ctranslate2.get_cuda_device_count()
    problem = cuda_library_problem() if n_gpu > 0 and device != "cpu" else None
    if device == "auto":
        if problem:
            log.warning("a CUDA GPU is present but %s; transcribing on the CPU", problem)
        device = "cuda" if n_gpu > 0 and not problem else "cpu"
    elif device == "cuda" and n_gpu == 0:
        raise ConfigurationError("device 'cuda' was requested but CTranslate2 sees no CUDA GPU; use device='auto' or 'cpu'")
    elif device == "cuda" and problem:
        raise ConfigurationError(f"device 'cuda': {problem}; or use device='cpu'")
    if compute_type in (None, "", "default", "auto"):
        compute_type = "float16" if device == "cuda" else "int8"
    supported = ctranslate2.get_supported_compute_types(device)
    if compute_type not in supported:
        raise ConfigurationError(
            f"compute type {compute_type!r} is not supported on {device}; choose one of {sorted(supported)}"
        )
    if cpu_threads is None or cpu_threads < 0:
        raise ConfigurationError(f"cpu_threads must be >= 0, got {cpu_threads!r}")
    threads = cpu_threads or physical_cores()
    return DeviceChoice(device, compute_type, max(1, threads))


# --------------------------------------------------------------------------- batching
def worker_plan(choice: DeviceChoice, requested: int = 1) -> tuple[int, int]:
    """(CTranslate2 workers, threads per worker): *requested* workers sharing *choice*'s threads.

    One worker (the default) is plain faster-whisper's single decoder on every
    thread.  More workers decode pieces of an input side by side, one piece
    per worker (:func:`split_points`): the OpenMP threads of one decoder wait
    for each other at every step (and for a vCPU the host has descheduled),
    so on this project's shared 2-core machine two one-thread workers
    finished the 53 s sonnet and 113 s of read speech 1.5-2x sooner than one
    two-thread decoder.  Not the default: each piece starts without the
    previous text as a prompt, and on a 4-minute file with telephone speech
    a piece fell into temperature fallbacks (WER 8-9 % -> 11-13 %, twice the
    CPU; ``bench/speed.py``).  Each extra worker holds ~220 MB of working
    memory (base).
    """
    if requested is None or requested < 1:
        raise ConfigurationError(f"num_workers must be >= 1, got {requested!r}")
    threads = max(1, choice.cpu_threads)
    return requested, max(1, threads // requested)


#: widest decoder (d_model) that :func:`choose_decoder_threads` gives one thread: tiny 384, base 512, small 768
ONE_THREAD_MAX_WIDTH = 768


def decoder_width(model_dir: str | os.PathLike) -> int | None:
    """d_model of the CTranslate2 Whisper model in *model_dir* (its decoder's final layer norm), or None."""
    from .openai_whisper import CT2FormatError, read_ct2_model

    try:
        _, arrays = read_ct2_model(Path(model_dir) / "model.bin", prefix="decoder/layer_norm/")
    except CT2FormatError as exc:
        log.debug("cannot read the decoder width of %s: %s", model_dir, exc)
        return None
    return next((int(a.shape[-1]) for a in arrays.values() if a.ndim == 1), None)


def choose_decoder_threads(requested: int, device: str, encoder_runtime: str, threads: int, width: int | None) -> int:
    """CTranslate2's threads per worker: *requested* (> 0), else *threads* unless one is faster.

    CTranslate2 runs each decoding step's small matrix products on OpenMP
    threads that meet at a barrier after every operation; for beam 5 on a
    model up to small the barrier costs more than the second thread gives.
    Fixed-length beam-5 steps, int8, this project's 2-vCPU machine, one
    thread vs two (``bench/README.md``): tiny.en 2.0x, base 1.5x, small 1.3x
    faster with one; medium 0.96x, large-v3-turbo 0.84x, large-v3 0.81x.
    So on the CPU, when OpenVINO runs the encoder on its own threads
    (CTranslate2 then only decodes), models of d_model <= 768 decode on one
    thread; with CTranslate2's own encoder, whose large products do use every
    thread, the budget stays whole.
    """
    if requested < 0:
        raise ConfigurationError(f"decoder_threads must be >= 0, got {requested!r}")
    if requested:
        return requested
    if device == "cpu" and encoder_runtime == "openvino" and width is not None and width <= ONE_THREAD_MAX_WIDTH:
        return 1
    return threads


def piece_count(duration: float, workers: int, piece_seconds: float = 120.0, min_split_seconds: float = 30.0,
                max_split_seconds: float = float("inf")) -> int:
    """How many pieces an input of *duration* seconds is cut into: a multiple of *workers*, each
    at most about *piece_seconds*; 1 for a single worker, an input no longer than
    *min_split_seconds* (one 30 s window decodes it) or longer than *max_split_seconds*."""
    if workers < 2 or duration <= min_split_seconds or duration > max_split_seconds:
        return 1
    return workers * int(np.ceil(duration / (workers * piece_seconds)))


def _even_cuts(duration: float, pieces: int) -> list[float]:
    """The cuts of *pieces* equal pieces."""
    return [i * duration / pieces for i in range(1, pieces)]


def _reach(duration: float, pieces: int) -> float:
    """How far from an even cut a cut may move to find a pause (s)."""
    return min(duration / pieces / 4, 15.0)


def split_points(duration: float, pauses: list[tuple[float, float]], pieces: int) -> list[float]:
    """Where to cut an input of *duration* seconds into *pieces* pieces (:func:`piece_count`).

    *pauses* are (start, end) stretches without speech.  Every cut is the
    middle of the longest pause within a quarter piece (at most 15 s) of the
    even cut, a nearer pause winning ties, so no word is cut in two.  No
    pause there: no cut (that piece is longer).
    """
    reach = _reach(duration, pieces)
    cuts: list[float] = []
    for ideal in _even_cuts(duration, pieces):
        near = [(b - a, -abs((a + b) / 2 - ideal), (a + b) / 2) for a, b in pauses
                if abs((a + b) / 2 - ideal) <= reach and b > a]
        if near:
            t = round(max(near)[2], 3)
            if t - (cuts[-1] if cuts else 0.0) >= 1.0 and duration - t >= 1.0:
                cuts.append(t)
    return cuts


def _pauses(samples: np.ndarray, pieces: int) -> list[tuple[float, float]]:
    """Stretches without speech (Silero VAD, 0.3 s and longer) near the even cuts of *pieces* pieces.

    Only the audio within :func:`_reach` of each even cut is examined, so a
    2-hour input costs a few minutes of VAD, not another pass over the file.
    """
    duration = samples.size / SAMPLE_RATE
    reach = _reach(duration, pieces)
    out: list[tuple[float, float]] = []
    for ideal in _even_cuts(duration, pieces):
        a, b = max(0.0, ideal - reach), min(duration, ideal + reach)
        piece = samples[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
        regions = speech_regions(piece, {"min_silence_duration_ms": 300, "speech_pad_ms": 100})
        edges = [0.0, *(t for r in regions for t in r), b - a]
        out += [(a + s, a + e) for s, e in zip(edges[::2], edges[1::2]) if e - s >= 0.3]
    return out


def choose_batch_size(device: str, requested: int = 0, gpu_free_bytes: int | None = None, model_name: str = "") -> int:
    """Batch size for decoding: *requested* when given, else one from the hardware.

    On CUDA, batched decoding over VAD-cut chunks is several times faster, so
    the batch is sized from free GPU memory (about 1 GB per batch item for
    large models, less for small ones; 4..32).  On CPU it is 1 (sequential):
    measured on this project's 2-core machine (``bench/batched.py``, base,
    beam 5), batched decoding (4 or 8, same text) took 1.3x less CPU on clean
    read speech and 2.5-8x less on telephone speech where sequential decoding
    falls into temperature fallbacks, with a lower mean WER (4.65 % vs 5.61 %
    over 16 English files) -- but without the previous-text prompt it is worse
    on some files (Shakespeare's sonnet +2.7 WER points, a 4-minute mix +0.6),
    and the goal on CPU is plain faster-whisper's text.  ``extra={"batch_size": N}``
    (``vidtrans run --batch-size N``) opts in.
    """
    if requested < 0:
        raise ConfigurationError(f"batch_size must be >= 0, got {requested}")
    if requested:
        return requested
    if device != "cuda":
        return 1
    if gpu_free_bytes is None:
        return 8
    per_item = (1.0 if "large" in model_name or "medium" in model_name else 0.35) * 1024**3
    return int(max(4, min(32, gpu_free_bytes // per_item)))


def _gpu_free_bytes() -> int | None:
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0])
    except Exception:  # noqa: BLE001 - torch missing or CUDA unusable: size conservatively
        return None
    return None


# --------------------------------------------------------------------------- model loading
@functools.lru_cache(maxsize=1)
def _model_class():
    """faster-whisper's ``WhisperModel`` with a replaceable encoder and the last encoding remembered.

    ``encoder`` (an :class:`.ov_encoder.OpenVinoEncoder`, or None for
    CTranslate2's own) encodes each 30 s window; CTranslate2's decoder takes
    the encoded window.  faster-whisper encodes the first window twice when it
    detects the language (once to detect it, once to decode it): the second
    time the same features get the same encoding back.
    """
    import ctranslate2
    from faster_whisper import WhisperModel

    class VidtransWhisperModel(WhisperModel):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.encoder = None
            self._last_encoding: tuple[np.ndarray, Any] | None = None  # (features, encoding)
            self._encode_lock = threading.Lock()

        def encode(self, features: np.ndarray):
            with self._encode_lock:
                last = self._last_encoding
            if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
                return last[1]
            if self.encoder is None:
                out = super().encode(features)
            else:
                out = ctranslate2.StorageView.from_array(self.encoder(features))
            with self._encode_lock:
                self._last_encoding = (np.array(features, copy=True), out)
            return out

    return VidtransWhisperModel


def load_model(path: str, device: str, compute_type: str, cpu_threads: int, num_workers: int = 1,
               encoder_runtime: str = "ctranslate2", seed: int | None = None, encoder_threads: int = 0,
               encoder_precision: str | None = None, weights_dir: str | None = None):
    """Load a ``faster_whisper.WhisperModel`` from a model directory (no caching; see get_model).

    *cpu_threads* are CTranslate2's threads per worker; the OpenVINO encoder gets *encoder_threads*
    (0 = ``cpu_threads * num_workers``) and computes in *encoder_precision* (``f32``/``bf16``; None = the
    CPU's default, :func:`vidtrans._openvino.precision`).  CTranslate2 reads its weights from
    *weights_dir* when given (the int8 copy of *path*, :mod:`.ct2_int8`); the OpenVINO encoder is
    always built from *path*'s own weights.

    *encoder_runtime* ``openvino`` runs the encoder on OpenVINO (:mod:`.ov_encoder`);
    when that cannot be built or compiled the model keeps CTranslate2's encoder
    (logged, and recorded as ``encoder_runtime`` in the transcript's meta).
    *seed* (``extra["seed"]``): CTranslate2 seeds each decoding thread's sampler once, from the
    seed set when the thread first samples, so it is set before the model (and its threads) exist.
    """
    try:
        _model_class()
    except ImportError as exc:
        raise MissingDependencyError("faster-whisper", purpose="local transcription") from exc
    if seed is not None:
        import ctranslate2

        ctranslate2.set_random_seed(int(seed))
    log.info("loading Whisper model %s on %s (%s, %d threads)", weights_dir or path, device, compute_type, cpu_threads)
    try:
        model = _model_class()(
            weights_dir or path, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
            num_workers=num_workers, local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"cannot load Whisper model from {path} on {device}/{compute_type}: {exc}") from exc
    model.decoder_threads = cpu_threads
    if encoder_runtime == "openvino":
        from .ov_encoder import OpenVinoEncoder

        try:
            model.encoder = OpenVinoEncoder(path, encoder_threads or cpu_threads * num_workers, encoder_precision)
        except (ModelError, MissingDependencyError) as exc:
            log.warning("the OpenVINO encoder is unavailable (%s); encoding with CTranslate2", exc)
            whole = max(1, (encoder_threads or cpu_threads * num_workers) // num_workers)
            if whole > cpu_threads:  # CTranslate2 encodes after all: give it the threads meant for OpenVINO
                return load_model(path, device, compute_type, whole, num_workers, "ctranslate2", seed,
                                  weights_dir=weights_dir)
    return model


def get_model(options: TranscribeOptions, models=None, duration: float | None = None):
    """Resolve and load the model *options* names, returning ``(WhisperModel, path, DeviceChoice)``.

    The model has :func:`worker_plan`'s workers and threads per worker
    (``choice.cpu_threads`` stays the whole thread budget) and the encoder
    runtime ``extra["encoder_runtime"]`` resolves to for an input of
    *duration* seconds (:func:`.ov_encoder.resolve_encoder_runtime`).  *models* is a
    caller-owned :class:`vidtrans.models.ModelCache`; without one the model
    is loaded for this call only.
    """
    from ..models import ModelCache, resolve_model
    from .ov_encoder import resolve_encoder_precision, resolve_encoder_runtime

    path = resolve_model(options.model)
    choice = choose_device(options.device, options.compute_type, options.cpu_threads)
    workers, threads = worker_plan(choice, int(options.extra.get("num_workers", EXTRA_OPTIONS["num_workers"])))
    encoder = resolve_encoder_runtime(str(options.extra.get("encoder_runtime", EXTRA_OPTIONS["encoder_runtime"])),
                                      choice.device, duration)
    precision = (resolve_encoder_precision(str(options.extra.get("encoder_precision", EXTRA_OPTIONS["encoder_precision"])))
                 if encoder == "openvino" else None)
    seed = options.extra.get("seed", EXTRA_OPTIONS["seed"])
    requested = int(options.extra.get("decoder_threads", EXTRA_OPTIONS["decoder_threads"]) or 0)
    width = decoder_width(path) if not requested and choice.device == "cpu" and encoder == "openvino" else None
    decoding = choose_decoder_threads(requested, choice.device, encoder, threads, width)
    key = ("faster-whisper", str(path), choice.device, choice.compute_type, decoding, workers, encoder, seed,
           threads * workers, precision)
    weights = path
    if options.extra.get("int8_cache", EXTRA_OPTIONS["int8_cache"]):
        from .ct2_int8 import weights_dir

        weights = weights_dir(path, choice.device, choice.compute_type)
    cache = models if models is not None else ModelCache()
    model = cache.get(key, lambda: load_model(str(path), choice.device, choice.compute_type, decoding, workers, encoder,
                                              seed, threads * workers, precision,
                                              str(weights) if weights != path else None))
    return model, path, choice


# --------------------------------------------------------------------------- audio
def speech_regions(
    audio: np.ndarray, vad_parameters: dict | None = None, block_seconds: float = 600.0
) -> list[tuple[float, float]]:
    """Silero-VAD speech regions (seconds) using the ONNX model inside faster-whisper.

    Runs block by block (*block_seconds*) because faster-whisper's VAD frames
    the whole input at once (~1 GB per hour of audio); regions that touch at
    a block border are merged.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(**(vad_parameters or {}))
    block = max(int(block_seconds * SAMPLE_RATE), 30 * SAMPLE_RATE)
    out: list[tuple[float, float]] = []
    for b0 in range(0, audio.size, block):
        for n, c in enumerate(get_speech_timestamps(audio[b0 : b0 + block], opts)):
            r0, r1 = (b0 + c["start"]) / SAMPLE_RATE, (b0 + c["end"]) / SAMPLE_RATE
            # only across a block border: regions the VAD itself split (max_speech_duration_s) stay apart
            if out and b0 and n == 0 and r0 - out[-1][1] < 0.1:
                out[-1] = (out[-1][0], max(out[-1][1], r1))
            else:
                out.append((r0, r1))
    return out


def _background_vad(samples: np.ndarray, vad_parameters: dict | None, nice: bool = True) -> Future:
    """:func:`speech_regions` in a helper thread (a Future of the regions); *nice*: the thread yields
    to the decoder."""
    from .._threads import yield_to_decoder

    fut: Future = Future()

    def run() -> None:
        if nice:
            yield_to_decoder()
        try:
            fut.set_result(speech_regions(samples, vad_parameters))
        except BaseException as exc:  # noqa: BLE001 - raised where the regions are read
            fut.set_exception(exc)

    threading.Thread(target=run, name="vidtrans-vad", daemon=True).start()
    return fut


def batch_chunks(regions: list[tuple[float, float]], max_seconds: float = 30.0, max_gap: float = 2.0) -> list[tuple[float, float]]:
    """Group speech *regions* into chunks of at most *max_seconds* for batched decoding.

    Neighbouring regions are merged while the chunk stays under the limit
    and the pause between them is under *max_gap*; a region longer than the
    limit is split evenly.
    """
    out: list[list[float]] = []
    for a, b in regions:
        pieces = max(1, int(np.ceil((b - a) / max_seconds - 1e-9)))
        step = (b - a) / pieces
        for i in range(pieces):
            s, e = a + i * step, a + (i + 1) * step
            if out and e - out[-1][0] <= max_seconds and s - out[-1][1] <= max_gap:
                out[-1][1] = e
            else:
                out.append([s, e])
    return [(round(a, 3), round(b, 3)) for a, b in out]


def batch_vad_parameters(cfg: dict[str, Any]) -> dict[str, Any]:
    """VAD options for batched decoding: speech longer than a chunk is split by the VAD at its pauses.

    Without this a long stretch of continuous speech (a read poem: one VAD
    region of 53 s) was cut evenly by :func:`batch_chunks`, mid-word, and the
    words at the cut were lost or garbled (sonnet WER 13.4 % vs 11.6 % split at
    a pause, ``bench/batched.py``).  The user's own ``vad_parameters`` win.
    """
    return {"max_speech_duration_s": float(cfg["batch_chunk_seconds"]), **(cfg["vad_parameters"] or {})}


def _check_extra(extra: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(extra) - set(EXTRA_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown faster-whisper option(s) {unknown}; known: {', '.join(sorted(EXTRA_OPTIONS))}"
        )
    return {**EXTRA_OPTIONS, **extra}


# --------------------------------------------------------------------------- conversion
def _overlap(a0: float, a1: float, regions: list[tuple[float, float]], pad: float = 0.2) -> float:
    return sum(max(0.0, min(a1, r1 + pad) - max(a0, r0 - pad)) for r0, r1 in regions)


def convert_segment(fw_segment: Any, offset: float = 0.0) -> Segment:
    """Turn a ``faster_whisper`` segment into a :class:`Segment` with monotonic words.

    Word text is kept exactly as the model wrote it, leading space included
    (``" self"``, ``"-love"``); the segment text is the model's own text
    (outer whitespace removed), so ``join_words(segment.words) == segment.text``.
    """
    s0 = float(fw_segment.start) + offset
    s1 = max(float(fw_segment.end) + offset, s0)
    words: list[Word] = []
    prev_start = s0
    for w in fw_segment.words or ():
        if not w.word.strip():
            continue
        start = min(max(float(w.start) + offset, prev_start), s1)
        end = min(max(float(w.end) + offset, start), s1)
        words.append(Word(round(start, 3), round(end, 3), w.word, probability=round(float(w.probability), 4)))
        prev_start = start
    meta = {
        "id": fw_segment.id,
        "avg_logprob": round(float(fw_segment.avg_logprob), 4),
        "no_speech_prob": round(float(fw_segment.no_speech_prob), 4),
        "compression_ratio": round(float(fw_segment.compression_ratio), 4),
        "temperature": fw_segment.temperature,
    }
    return Segment(round(s0, 3), round(s1, 3), fw_segment.text.strip(), words=tuple(words), meta=meta)


# --------------------------------------------------------------------------- guards
_TOKEN = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)


def _tokens(text: str) -> list[str]:
    toks = [t.lower() for t in _TOKEN.findall(text)]
    if not toks and text.strip():  # scripts without spaces: characters
        toks = [c for c in text if not c.isspace()]
    elif any(len(t) > 12 for t in toks) and re.search(r"[\u3040-\u30ff\u3400-\u9fff]", text):
        toks = [c for c in text if c.isalnum()]
    return toks


def find_repetition(text: str, min_repeats: int = 3, min_words: int = 8, max_ngram: int = 8) -> dict | None:
    """The longest back-to-back repetition of an n-gram in *text*, if it looks like a decoding loop.

    Returns ``{"ngram": "...", "n": n, "repeats": k, "words": n*k}`` when some
    n-gram (1 <= n <= *max_ngram*) occurs at least *min_repeats* times in a row
    covering at least *min_words* words (case and punctuation ignored; CJK text
    counts characters), else None.  ``"no, no, no"`` is speech;
    ``"thank you"`` eight times in a row is a loop.
    """
    toks = _tokens(text)
    best = None
    for n in range(1, max_ngram + 1):
        i = 0
        while i + 2 * n <= len(toks):
            k = 1
            while toks[i + k * n : i + (k + 1) * n] == toks[i : i + n]:
                k += 1
            if k >= min_repeats and n * k >= min_words and (best is None or n * k > best["words"]):
                best = {"ngram": " ".join(toks[i : i + n]), "n": n, "repeats": k, "words": n * k, "at": i}
            i += max(1, (k - 1) * n) if k > 1 else 1
    if best is not None:
        best.pop("at")
    return best


def _is_hallucination(seg: Segment, regions: list[tuple[float, float]] | None, cfg: dict[str, Any]) -> str | None:
    """Reason to drop *seg*, or None to keep it."""
    if not seg.text:
        return "empty text"
    if regions is None:  # no VAD evidence: only faster-whisper's own filters apply
        return None
    if _overlap(seg.start, seg.end, regions) > 0:
        return None
    nsp = seg.meta.get("no_speech_prob", 0.0)
    if nsp > cfg["drop_no_speech_prob"]:
        return f"outside VAD speech and no_speech_prob={nsp:.2f}"
    probs = [w.probability for w in seg.words if w.probability is not None]
    if probs and float(np.mean(probs)) < cfg["drop_min_word_prob"]:
        return f"outside VAD speech and mean word probability {np.mean(probs):.2f}"
    return None


def _with_guard(seg: Segment, note: dict[str, Any]) -> Segment:
    return Segment(seg.start, seg.end, seg.text, seg.words, seg.speaker, seg.emotion, {**seg.meta, "guard": note})


def _next_speech(t: float, regions: list[tuple[float, float]] | None, duration: float) -> float:
    """Where decoding restarts after a dropped hallucination ending at *t*: the next speech (less 0.3 s)."""
    if not regions:
        return t
    for a, b in regions:
        if b > t:
            return max(t, a - 0.3)
    return duration


# --------------------------------------------------------------------------- engine
class _Decoder:
    """One input's decoding: faster-whisper calls on slices of the samples, with the guards around them."""

    def __init__(self, model, samples: np.ndarray, options: TranscribeOptions, cfg: dict[str, Any],
                 regions: list[tuple[float, float]] | None, source: Any, lock: Any = None, input_size: int | None = None):
        self.model, self.samples, self.options, self.cfg = model, samples, options, cfg
        self._regions = regions
        self.source = source
        #: shared by the decoders of one input's pieces: the feature-extractor swap is not thread-safe
        self.lock = lock if lock is not None else contextlib.nullcontext()
        #: samples in the whole input this piece belongs to
        self.input_size = samples.size if input_size is None else input_size
        self.duration = samples.size / SAMPLE_RATE
        self.kwargs = dict(
            task=options.task,
            beam_size=options.beam_size,
            best_of=cfg["best_of"],
            patience=cfg["patience"],
            temperature=list(cfg["temperature"]) if isinstance(cfg["temperature"], (list, tuple)) else cfg["temperature"],
            compression_ratio_threshold=cfg["compression_ratio_threshold"],
            log_prob_threshold=cfg["log_prob_threshold"],
            no_speech_threshold=cfg["no_speech_threshold"],
            condition_on_previous_text=cfg["condition_on_previous_text"],
            repetition_penalty=cfg["repetition_penalty"],
            no_repeat_ngram_size=cfg["no_repeat_ngram_size"],
            hotwords=", ".join(options.key_terms) if options.key_terms else None,
            word_timestamps=options.word_timestamps,
            hallucination_silence_threshold=cfg["hallucination_silence_threshold"] if options.word_timestamps else None,
            vad_filter=options.vad_filter,
            vad_parameters=cfg["vad_parameters"],
            language_detection_segments=cfg["language_detection_segments"],
            language_detection_threshold=cfg["language_detection_threshold"],
        )
        self.redecodes = 0
        self.report: list[dict[str, Any]] = []

    @property
    def regions(self) -> list[tuple[float, float]] | None:
        """The VAD's speech regions of this piece (waits for them when the VAD still runs)."""
        if isinstance(self._regions, Future):
            self._regions = self._regions.result()
        return self._regions

    def _wait_for_regions(self) -> None:
        """Wait until the VAD's regions are in (a failure is raised where they are read, not here)."""
        if isinstance(self._regions, Future):
            self._regions.exception()

    def _fail(self, exc: Exception) -> LocalEngineError:
        return LocalEngineError(f"faster-whisper failed on {_describe(self.source)}: {exc}")

    def start(self, t0: float, t1: float | None, language: str | None, prompt: str | None, *,
              wait_for_vad: bool = False, **override):
        """faster-whisper's lazy segments for samples [t0, t1) (times relative to t0); with *wait_for_vad*
        faster-whisper waits for the VAD's regions once it has computed the spectrogram."""
        a = int(round(t0 * SAMPLE_RATE))
        b = self.samples.size if t1 is None else int(round(t1 * SAMPLE_RATE))
        piece = self.samples[a:b]
        # a piece of a long input is lean too: two workers' whole-piece spectrograms add up
        lean = max(piece.size, self.input_size) / SAMPLE_RATE > float(self.cfg["lean_features_seconds"] or float("inf"))
        try:
            with self.lock, _features_for(self.model, lean, then=self._wait_for_regions if wait_for_vad else None):
                return self.model.transcribe(piece, language=language, initial_prompt=prompt, **{**self.kwargs, **override})
        except (RuntimeError, ValueError) as exc:
            raise self._fail(exc) from exc

    def redecode(self, seg: Segment, language: str | None) -> list[Segment]:
        """*seg*'s span decoded again, unprompted (the previous text is what usually feeds a loop)."""
        self.redecodes += 1
        segs, _ = self.start(seg.start, min(seg.end + 0.2, self.duration), language, None, condition_on_previous_text=False)
        try:
            return [s for s in (convert_segment(fw, offset=seg.start) for fw in segs) if s.text]
        except (RuntimeError, ValueError) as exc:
            raise self._fail(exc) from exc

    def skipped_speech(self, t1: float) -> tuple[float, dict[str, Any]] | None:
        """Where to restart decoding, unprompted, when the decoder left at least
        ``skipped_speech_seconds`` of VAD speech without a word between the end of the last segment
        it gave and *t1* (the next segment's start, or the end); None when it did not.

        Decoding restarts at that speech (as after a dropped hallucination) rather than decoding the
        stretch on the side: a second faster-whisper call beside the suspended one held both calls'
        buffers, and raised the 2-hour pipeline's peak by ~90 MB (bench/memory.py)."""
        cfg, t0 = self.cfg, self._covered
        least = float(cfg["skipped_speech_seconds"] or 0)
        if not least or t1 - t0 < least or not cfg["redecode"] or self.redecodes >= cfg["max_redecodes"]:
            return None
        regions = self.regions
        if not regions:
            return None
        speech = _overlap(t0, t1, regions, pad=0.0)
        restart = _next_speech(t0, regions, self.duration)
        if speech < least or restart <= self._skip_restart:  # (never twice from the same place)
            return None
        self._skip_restart = restart
        self.redecodes += 1
        entry = {"action": "decoded unprompted after speech without words", "start": round(t0, 3),
                 "end": round(t1, 3), "speech_seconds": round(speech, 3)}
        self.report.append(entry)
        log.info("%.1f s of speech in %.2f-%.2f had no words; decoding again unprompted from %.2f s",
                 speech, t0, t1, restart)
        return restart, entry

    def segments(self, first, language: str | None) -> Iterator[Segment]:
        """Drive decoding from 0 s: *first* is the already started faster-whisper generator."""
        self._covered, self._skip_restart = 0.0, -1.0  # where the last segment ended; the last skip restart
        for seg in self._segments(first, language):
            self._covered = max(self._covered, seg.end)
            yield seg

    def _segments(self, first, language: str | None) -> Iterator[Segment]:
        cfg = self.cfg
        pos, fw_segments, note = 0.0, first, None
        while True:
            restart_at = None
            try:
                for fw in fw_segments:
                    seg = convert_segment(fw, offset=pos)
                    skipped = self.skipped_speech(seg.start)
                    if skipped is not None:  # this segment comes again from the restart
                        restart_at, note = skipped
                        break
                    if note is not None:
                        seg, note = _with_guard(seg, note), None
                    reason = _is_hallucination(seg, self.regions, cfg)
                    if reason:
                        self.report.append({"action": "dropped", "start": seg.start, "end": seg.end, "text": seg.text, "reason": reason})
                        log.info("dropped segment %.2f-%.2f %r: %s", seg.start, seg.end, seg.text[:60], reason)
                        if cfg["redecode"] and self.redecodes < cfg["max_redecodes"] and self.regions:
                            restart_at = _next_speech(seg.end, self.regions, self.duration)
                            note = {"action": "decoded unprompted after a dropped hallucination",
                                    "dropped": seg.text[:200], "reason": reason}
                            self.redecodes += 1
                            break
                        continue
                    loop = find_repetition(seg.text, cfg["loop_min_repeats"], cfg["loop_min_words"])
                    if loop is None or not cfg["redecode"] or self.redecodes >= cfg["max_redecodes"]:
                        if loop is not None:
                            seg = _with_guard(seg, {"action": "kept", "repetition": loop, "reason": "re-decode limit reached" if cfg["redecode"] else "redecode off"})
                        yield seg
                        continue
                    redo = self.redecode(seg, language)
                    redo_loop = find_repetition(" ".join(s.text for s in redo), cfg["loop_min_repeats"], cfg["loop_min_words"])
                    better = redo and (redo_loop is None or redo_loop["words"] < loop["words"])
                    entry = {"repetition": loop, "original": seg.text[:500]}
                    if better:
                        entry["action"] = "re-decoded unprompted (repetition loop)"
                        self.report.append({**entry, "start": seg.start, "end": seg.end})
                        for s in redo:
                            yield _with_guard(s, entry)
                    else:
                        entry["action"] = "kept (the unprompted re-decode repeats as much)"
                        self.report.append({**entry, "start": seg.start, "end": seg.end})
                        yield _with_guard(seg, entry)
                    restart_at = seg.end
                    note = {"action": "decoded unprompted after a repetition loop", "repetition": loop}
                    break
                else:  # the stream ended: is there speech after its last segment?
                    skipped = self.skipped_speech(self.duration)
                    if skipped is not None:
                        restart_at, note = skipped
            except (RuntimeError, ValueError) as exc:
                raise self._fail(exc) from exc
            if restart_at is None or restart_at >= self.duration - 0.1:
                return
            if hasattr(fw_segments, "close"):
                fw_segments.close()
            pos = restart_at
            fw_segments, _ = self.start(pos, None, language, None)

    def batched(self, language: str | None, batch_size: int) -> Iterator[Segment]:
        """Batched decoding over VAD chunks (faster-whisper's BatchedInferencePipeline), guards after."""
        from faster_whisper import BatchedInferencePipeline

        regions = self.regions if self.regions is not None else speech_regions(self.samples, batch_vad_parameters(self.cfg))
        # inside the audio (VAD padding can reach past the end; faster-whisper asserts on negative leftovers)
        chunks = [(max(0.0, a), min(b, self.duration))
                  for a, b in batch_chunks(regions, float(self.cfg["batch_chunk_seconds"]), float(self.cfg["batch_max_gap"]))]
        chunks = [(a, b) for a, b in chunks if b - a > 0.05]
        if not chunks:
            return
        pipe = BatchedInferencePipeline(self.model)
        kw = {k: v for k, v in self.kwargs.items() if k not in ("vad_filter", "vad_parameters", "condition_on_previous_text")}
        try:
            segs, _ = pipe.transcribe(
                self.samples, language=language, batch_size=batch_size, vad_filter=False,
                clip_timestamps=[{"start": a, "end": b} for a, b in chunks], without_timestamps=True, **kw,
            )
            for fw in segs:
                seg = convert_segment(fw)
                reason = _is_hallucination(seg, self.regions, self.cfg)
                if reason:
                    self.report.append({"action": "dropped", "start": seg.start, "end": seg.end, "text": seg.text, "reason": reason})
                    continue
                loop = find_repetition(seg.text, self.cfg["loop_min_repeats"], self.cfg["loop_min_words"])
                if loop is not None and self.cfg["redecode"] and self.redecodes < self.cfg["max_redecodes"]:
                    redo = self.redecode(seg, language)
                    rl = find_repetition(" ".join(s.text for s in redo), self.cfg["loop_min_repeats"], self.cfg["loop_min_words"])
                    entry = {"repetition": loop, "original": seg.text[:500]}
                    if redo and (rl is None or rl["words"] < loop["words"]):
                        entry["action"] = "re-decoded unprompted (repetition loop)"
                        self.report.append({**entry, "start": seg.start, "end": seg.end})
                        yield from (_with_guard(s, entry) for s in redo)
                        continue
                    entry["action"] = "kept (the unprompted re-decode repeats as much)"
                    seg = _with_guard(seg, entry)
                yield seg
        except (RuntimeError, ValueError) as exc:
            raise self._fail(exc) from exc


def _within(regions: list[tuple[float, float]] | None, a: float, b: float) -> list[tuple[float, float]] | None:
    """*regions* inside [a, b), relative to *a* (None stays None: no VAD evidence)."""
    if regions is None:
        return None
    return [(max(r0, a) - a, min(r1, b) - a) for r0, r1 in regions if r1 > a and r0 < b]


def _shifted(seg: Segment, dt: float) -> Segment:
    """*seg* and its words *dt* seconds later."""
    if not dt:
        return seg
    words = tuple(replace(w, start=round(w.start + dt, 3), end=round(w.end + dt, 3)) for w in seg.words)
    return replace(seg, start=round(seg.start + dt, 3), end=round(seg.end + dt, 3), words=words)


def _side_by_side(decoders: list[_Decoder], offsets: list[float], first, language: str | None,
                  prompt: str | None, workers: int) -> Iterator[Segment]:
    """The pieces' segments in order, decoded by *workers* threads side by side.

    *first* is piece 0's started faster-whisper generator (it detected the
    language).  Each piece is one faster-whisper call with the guards around
    it; its segments are queued and yielded once every earlier piece's have
    been, so the stream stays in time order.  An error in a piece is raised
    where its segments would come; closing the stream stops the workers.
    """
    import queue
    from concurrent.futures import ThreadPoolExecutor

    done = object()
    queues: list[queue.Queue] = [queue.Queue() for _ in decoders]
    stop = threading.Event()

    def work(i: int) -> None:
        dec, out = decoders[i], queues[i]
        try:
            if dec.regions is not None and not dec.regions:  # no speech in this piece
                return
            fw = first if i == 0 else dec.start(0.0, None, language, prompt)[0]
            for seg in dec.segments(fw, language):
                if stop.is_set():
                    return
                out.put(_shifted(seg, offsets[i]))
        except Exception as exc:  # noqa: BLE001 - re-raised in the consuming thread
            out.put(exc)
        finally:
            out.put(done)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidtrans-decode")
    try:
        for i in range(len(decoders)):
            pool.submit(work, i)
        for q in queues:
            while (item := q.get()) is not done:
                if isinstance(item, Exception):
                    raise item
                yield item
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        if hasattr(first, "close"):
            first.close()


class _ThenFeatures:
    """A feature extractor that calls *then* once it has computed the features (see :class:`_features_for`)."""

    def __init__(self, extractor, then):
        self._extractor, self._then = extractor, then

    def __call__(self, *args: Any, **kwargs: Any):
        out = self._extractor(*args, **kwargs)
        self._then()
        return out

    def __getattr__(self, name: str):
        return getattr(self._extractor, name)


class _features_for:
    """Context: the model computes features block-wise (flat memory) while *lean* is true; *then* (if
    given) is called once they are computed, before faster-whisper goes on to decode."""

    def __init__(self, model, lean: bool, then=None):
        self.model, self.lean, self.then, self.saved = model, lean, then, None

    def __enter__(self):
        if self.lean or self.then is not None:
            self.saved = self.model.feature_extractor
        if self.lean:
            from ._features import LazyFeatureExtractor

            self.model.feature_extractor = LazyFeatureExtractor(**self.model.feat_kwargs)
        if self.then is not None:
            self.model.feature_extractor = _ThenFeatures(self.model.feature_extractor, self.then)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            self.model.feature_extractor = self.saved


def faster_whisper_engine(audio: Any, options: TranscribeOptions | None = None, *, models=None) -> SimpleStream:
    """Transcribe *audio* (path or 16 kHz float32 array) with faster-whisper.

    Returns a :class:`SimpleStream` whose ``language``/``duration``/``model`` are
    known at once and whose segments are decoded lazily while iterating.
    *models* is a caller-owned :class:`vidtrans.models.ModelCache` (reused
    across calls).  ``stream.insights`` gets ``language_probability``,
    ``speech_regions``, ``batch_size`` and, once drained, ``guard`` (what the
    guards dropped or re-decoded).
    """
    options = options or TranscribeOptions()
    cfg = _check_extra(dict(options.extra))
    if options.task not in {"transcribe", "translate"}:
        raise ConfigurationError(f"task must be 'transcribe' or 'translate', got {options.task!r}")
    samples = as_samples(audio)
    duration = samples.size / SAMPLE_RATE
    model, path, choice = get_model(options, models, duration)
    model_name = str(options.model)
    language = options.language
    if language is not None:
        language = language.strip().lower()
        if language not in model.supported_languages:
            raise ConfigurationError(
                f"language {options.language!r} is not supported by Whisper model {model_name!r}"
                + (" (English-only model; use a multilingual model such as 'base')" if not model.model.is_multilingual else "")
            )
    batch = choose_batch_size(choice.device, int(cfg["batch_size"] or 0),
                              _gpu_free_bytes() if choice.device == "cuda" else None, model_name)
    insights: dict[str, Any] = {"device": choice.device, "compute_type": choice.compute_type,
                                "cpu_threads": choice.cpu_threads, "decoder_threads": getattr(model, "decoder_threads", None),
                                "batch_size": batch, **describe_encoder(model.encoder)}

    def empty(reason: str) -> SimpleStream:
        log.info("no speech in input (%s): returning an empty transcript", reason)
        return SimpleStream(iter(()), language=language, duration=duration, model=model_name,
                            insights={**insights, "skipped": reason})

    if is_silent(samples, cfg["silence_threshold_db"]):
        return empty(f"level below {cfg['silence_threshold_db']} dBFS")
    regions: Any = None
    workers, _ = worker_plan(choice, int(cfg["num_workers"]))
    pieces = 1 if batch > 1 else piece_count(duration, workers, float(cfg["piece_seconds"]),
                                             float(cfg["min_split_seconds"]), float(cfg["max_split_seconds"]))
    # one sequential decoder: the VAD gate runs in a helper thread while the language is detected and the
    # first window decoded; its regions are waited for before the first segment is judged or yielded
    lazy = bool(pieces == 1 and batch <= 1 and cfg["vad_gate"] and not options.vad_filter
                and duration <= float(cfg["vad_in_background_seconds"] or 0))
    # longer inputs with a whole-input spectrogram: the VAD runs beside faster-whisper's spectrogram, and
    # decoding starts once both are done
    beside = bool(not lazy and pieces == 1 and batch <= 1 and cfg["vad_gate"] and not options.vad_filter
                  and duration <= min(float(cfg["vad_beside_features_seconds"] or 0),
                                      float(cfg["lean_features_seconds"] or float("inf"))))
    later = lazy or beside  # the regions are a Future, read once decoding has begun
    if later:
        regions = _background_vad(samples, cfg["vad_parameters"], nice=lazy)
    elif cfg["vad_gate"] or options.vad_filter or batch > 1:
        regions = speech_regions(samples, batch_vad_parameters(cfg) if batch > 1 else cfg["vad_parameters"])
        insights["speech_seconds"] = round(sum(b - a for a, b in regions), 3)
        insights["speech_regions"] = [[round(a, 3), round(b, 3)] for a, b in regions]
        if not regions:
            return empty("voice activity detector found no speech")
    cuts = split_points(duration, _pauses(samples, pieces), pieces) if pieces > 1 else []
    bounds = [0.0, *cuts, duration]
    lock = threading.Lock()
    decoders = [_Decoder(model, samples[int(round(a * SAMPLE_RATE)) : int(round(b * SAMPLE_RATE))], options, cfg,
                         regions if later else _within(regions, a, b), audio, lock, samples.size)
                for a, b in zip(bounds, bounds[1:])]
    dec = decoders[0]
    asked = language  # before detection: what an input without speech reports
    insights["workers"] = workers
    insights["pieces"] = [[round(a, 3), round(b, 3)] for a, b in zip(bounds, bounds[1:])]
    if batch > 1:
        if language is None and model.model.is_multilingual:
            first = regions[0][0] if regions else 0.0
            a = int(first * SAMPLE_RATE)
            with _features_for(model, False):
                language, prob, _ = model.detect_language(samples[a : a + 30 * SAMPLE_RATE])
            insights["language_probability"] = round(float(prob), 4)
        elif language is None:
            language = "en"
        gen = dec.batched(language, batch)
    else:
        first_segments, info = dec.start(0.0, None, language, options.initial_prompt, wait_for_vad=beside)
        language = info.language
        insights["language_probability"] = round(float(info.language_probability), 4)
        if len(decoders) == 1:
            gen = dec.segments(first_segments, language)
        else:
            gen = _side_by_side(decoders, bounds[:-1], first_segments, language, options.initial_prompt, workers)

    def generate() -> Iterator[Segment]:
        if later:
            found = dec.regions
            insights["speech_seconds"] = round(sum(b - a for a, b in found), 3)
            insights["speech_regions"] = [[round(a, 3), round(b, 3)] for a, b in found]
            if not found:  # what the gate before decoding returns: no language, no decoding insights
                gen.close()
                reason = "voice activity detector found no speech"
                log.info("no speech in input (%s): returning an empty transcript", reason)
                for key in ("workers", "pieces", "language_probability"):
                    insights.pop(key, None)
                insights["skipped"] = reason
                out.language = asked
                return
        yield from gen
        report = [{**r, **{k: round(r[k] + a, 3) for k in ("start", "end") if k in r}}
                  for d, a in zip(decoders, bounds) for r in d.report]
        insights["guard"] = report
        insights["redecodes"] = sum(d.redecodes for d in decoders)
        insights["dropped_segments"] = sum(1 for r in report if r["action"] == "dropped")

    out = SimpleStream(generate(), language=language, duration=duration, model=model_name, insights=insights)
    return out


def _describe(audio: Any) -> str:
    return Path(audio).name if isinstance(audio, (str, os.PathLike)) else f"{audio.size / SAMPLE_RATE:.1f} s of audio"
