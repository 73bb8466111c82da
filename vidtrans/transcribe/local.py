"""Local, offline transcription with faster-whisper (CTranslate2 Whisper).

:func:`faster_whisper_engine` is registered as ``"faster-whisper"`` in
:data:`vidtrans.transcribe.ENGINES`.  It:

* decodes media with :func:`vidtrans.audio.load_audio` (ffmpeg; not
  faster-whisper's own PyAV decoder) or takes a 16 kHz mono float32 array;
* resolves the model through :func:`vidtrans.models.resolve_model`
  ("base" and "tiny.en" work offline);
* picks the device ("auto" -> CUDA float16 when CTranslate2 sees a GPU,
  otherwise CPU int8) and CPU threads (0 -> physical cores);
* yields :class:`vidtrans.schema.Segment` objects with word timings as
  faster-whisper decodes them, so ``stream.duration`` plus each segment's end
  gives progress;
* guards against Whisper's hallucinations on silence, tones and noise: an
  energy gate and a Silero-VAD gate (no speech anywhere -> no decoding at all),
  faster-whisper's no-speech / log-prob / compression-ratio fallbacks,
  ``hallucination_silence_threshold``, and a final filter that drops
  segments which are both outside every VAD speech region and unlikely
  (high no-speech probability or low word confidence).

Long inputs are decoded in pieces of about ten minutes cut in pauses
(``extra["chunk_seconds"]``): faster-whisper computes the log-mel spectrogram
of its whole input up front (~3 GB per hour), pieces keep the peak at about
1.1 GB for an hour of audio with "base" (``bench/memory.py``).

The VAD *filter* (cutting audio before decoding) stays off by default: on
this project's evaluation clips it cost word accuracy (see ``bench/asr.py``).
The VAD is still used as a *gate* and as evidence for the hallucination
filter, which never removes audio the decoder sees.

Loaded models are cached by :func:`load_model` (``functools.lru_cache`` keyed on
path, device, compute type and threads; at most two models stay loaded) so a
notebook or batch run pays the load once.  ``load_model.cache_clear()`` frees them.

Engine-specific options go in ``TranscribeOptions.extra`` (see :data:`EXTRA_OPTIONS`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE, as_samples, is_silent
from ..errors import ConfigurationError, EngineError, MissingDependencyError, ModelError
from ..schema import Segment, Word
from . import SimpleStream, TranscribeOptions

log = logging.getLogger(__name__)

ENGINE_NAME = "faster-whisper"

#: keys accepted in ``TranscribeOptions.extra`` with their defaults
EXTRA_OPTIONS: dict[str, Any] = {
    # -- faster-whisper decoding options (passed through) --------------------
    "temperature": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "best_of": 5,
    "patience": 1.0,
    "condition_on_previous_text": True,
    "compression_ratio_threshold": 2.4,
    "log_prob_threshold": -1.0,
    "no_speech_threshold": 0.6,
    #: skip silent stretches longer than this (s) around suspected hallucinations
    "hallucination_silence_threshold": 2.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "language_detection_segments": 1,
    "language_detection_threshold": 0.5,
    #: dict of faster_whisper.vad.VadOptions fields for ``vad_filter``
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
    #: inputs longer than this (s) are decoded in pieces cut in pauses (bounds memory); 0 = never
    "chunk_seconds": 600.0,
    # -- model loading --------------------------------------------------------
    #: CTranslate2 workers (parallel transcribe() calls from threads)
    "num_workers": 1,
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


def choose_device(device: str = "auto", compute_type: str = "default", cpu_threads: int = 0) -> DeviceChoice:
    """Resolve "auto"/"default"/0 to a concrete device, compute type and thread count."""
    try:
        import ctranslate2
    except ImportError as exc:
        raise MissingDependencyError("faster-whisper", purpose="local transcription (CTranslate2)") from exc

    device = (device or "auto").lower()
    if device not in {"auto", "cpu", "cuda"}:
        raise ConfigurationError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    n_gpu = ctranslate2.get_cuda_device_count()
    if device == "auto":
        device = "cuda" if n_gpu > 0 else "cpu"
    elif device == "cuda" and n_gpu == 0:
        raise ConfigurationError("device 'cuda' was requested but CTranslate2 sees no CUDA GPU; use device='auto' or 'cpu'")
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


# --------------------------------------------------------------------------- model cache
@functools.lru_cache(maxsize=2)
def load_model(path: str, device: str, compute_type: str, cpu_threads: int, num_workers: int = 1):
    """Load (once per argument tuple) a ``faster_whisper.WhisperModel`` from a model directory."""
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise MissingDependencyError("faster-whisper", purpose="local transcription") from exc
    log.info("loading Whisper model %s on %s (%s, %d threads)", path, device, compute_type, cpu_threads)
    try:
        return WhisperModel(
            path, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
            num_workers=num_workers, local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"cannot load Whisper model from {path} on {device}/{compute_type}: {exc}") from exc


def get_model(options: TranscribeOptions):
    """Resolve and load the model *options* name, returning ``(WhisperModel, path, DeviceChoice)``."""
    from ..models import resolve_model

    path = resolve_model(options.model)
    choice = choose_device(options.device, options.compute_type, options.cpu_threads)
    workers = int(options.extra.get("num_workers", EXTRA_OPTIONS["num_workers"]))
    return load_model(str(path), choice.device, choice.compute_type, choice.cpu_threads, workers), path, choice


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
        for c in get_speech_timestamps(audio[b0 : b0 + block], opts):
            r0, r1 = (b0 + c["start"]) / SAMPLE_RATE, (b0 + c["end"]) / SAMPLE_RATE
            if out and r0 - out[-1][1] < 0.1:
                out[-1] = (out[-1][0], max(out[-1][1], r1))
            else:
                out.append((r0, r1))
    return out


def plan_chunks(
    duration: float, regions: list[tuple[float, float]] | None, chunk_seconds: float, search_seconds: float = 60.0
) -> list[tuple[float, float]]:
    """Split [0, duration] into pieces of about *chunk_seconds*, cutting in pauses.

    Each cut goes in the middle of the widest gap between speech *regions*
    whose middle lies within ``[target - search_seconds, target + search_seconds / 2]``
    of the target point (and at least half a chunk after the previous cut);
    at the target itself when there is no such gap or no VAD information.
    """
    if chunk_seconds <= 0 or duration <= chunk_seconds * 1.2:
        return [(0.0, duration)]
    gaps = []
    if regions:
        bounds = [0.0] + [x for r in regions for x in r] + [duration]
        gaps = [(b0 - a1, (a1 + b0) / 2) for a1, b0 in zip(bounds[::2], bounds[1::2]) if b0 > a1]
    cuts = [0.0]
    while duration - cuts[-1] > chunk_seconds * 1.2:
        target = cuts[-1] + chunk_seconds
        lo, hi = max(target - search_seconds, cuts[-1] + chunk_seconds / 2), min(target + search_seconds / 2, duration - 1.0)
        near = [g for g in gaps if lo <= g[1] <= hi]
        cuts.append(max(near)[1] if near else target)
    cuts.append(duration)
    return list(zip(cuts, cuts[1:]))


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
    """Turn a ``faster_whisper`` segment into a :class:`Segment` with clean, monotonic words."""
    s0 = float(fw_segment.start) + offset
    s1 = max(float(fw_segment.end) + offset, s0)
    words: list[Word] = []
    prev_start = s0
    for w in fw_segment.words or ():
        text = w.word.strip()
        if not text:
            continue
        start = min(max(float(w.start) + offset, prev_start), s1)
        end = min(max(float(w.end) + offset, start), s1)
        words.append(Word(round(start, 3), round(end, 3), text, probability=round(float(w.probability), 4)))
        prev_start = start
    meta = {
        "id": fw_segment.id,
        "avg_logprob": round(float(fw_segment.avg_logprob), 4),
        "no_speech_prob": round(float(fw_segment.no_speech_prob), 4),
        "compression_ratio": round(float(fw_segment.compression_ratio), 4),
        "temperature": fw_segment.temperature,
    }
    return Segment(round(s0, 3), round(s1, 3), fw_segment.text.strip(), words=tuple(words), meta=meta)


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


# --------------------------------------------------------------------------- engine
def faster_whisper_engine(audio: Any, options: TranscribeOptions | None = None) -> SimpleStream:
    """Transcribe *audio* (path or 16 kHz float32 array) with faster-whisper.

    Returns a :class:`SimpleStream` whose ``language``/``duration``/``model`` are
    known at once and whose segments are decoded lazily while iterating.
    Inputs longer than ``extra["chunk_seconds"]`` are decoded piece by piece,
    cut in pauses, so memory stays flat (faster-whisper computes the
    spectrogram of its whole input up front: ~3 GB per hour); each piece is
    primed with the previous piece's last text and the language found in
    the first one, and pieces without any detected speech are skipped.
    ``stream.insights`` gets ``language_probability``, ``speech_regions``,
    ``chunks`` and, once drained, ``dropped_segments``.
    """
    options = options or TranscribeOptions()
    cfg = _check_extra(dict(options.extra))
    if options.task not in {"transcribe", "translate"}:
        raise ConfigurationError(f"task must be 'transcribe' or 'translate', got {options.task!r}")
    samples = as_samples(audio)
    duration = samples.size / SAMPLE_RATE
    model, path, choice = get_model(options)
    model_name = str(options.model)
    language = options.language
    if language is not None:
        language = language.strip().lower()
        if language not in model.supported_languages:
            raise ConfigurationError(
                f"language {options.language!r} is not supported by Whisper model {model_name!r}"
                + (" (English-only model; use a multilingual model such as 'base')" if not model.model.is_multilingual else "")
            )

    insights: dict[str, Any] = {"device": choice.device, "compute_type": choice.compute_type, "cpu_threads": choice.cpu_threads}

    def empty(reason: str) -> SimpleStream:
        log.info("no speech in input (%s): returning an empty transcript", reason)
        return SimpleStream(iter(()), language=language, duration=duration, model=model_name,
                            insights={**insights, "skipped": reason})

    if is_silent(samples, cfg["silence_threshold_db"]):
        return empty(f"level below {cfg['silence_threshold_db']} dBFS")
    regions = None
    if cfg["vad_gate"] or options.vad_filter:
        regions = speech_regions(samples, cfg["vad_parameters"], block_seconds=cfg["chunk_seconds"] or 600.0)
        insights["speech_seconds"] = round(sum(b - a for a, b in regions), 3)
        insights["speech_regions"] = [[round(a, 3), round(b, 3)] for a, b in regions]
        if not regions:
            return empty("voice activity detector found no speech")
    chunks = plan_chunks(duration, regions, float(cfg["chunk_seconds"] or 0))
    if regions is not None:  # pieces with no speech at all are never decoded (no hallucinations there)
        chunks = [c for c in chunks if _overlap(c[0], c[1], regions, pad=0.0) > 0]
    insights["chunks"] = [[round(a, 3), round(b, 3)] for a, b in chunks]

    kwargs = dict(
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

    def start(chunk: tuple[float, float], lang: str | None, prompt: str | None):
        a, b = (int(round(t * SAMPLE_RATE)) for t in chunk)
        try:
            return model.transcribe(samples[a:b], language=lang, initial_prompt=prompt, **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise LocalEngineError(f"faster-whisper failed on {_describe(audio)}: {exc}") from exc

    first_segments, info = start(chunks[0], language, options.initial_prompt)
    language = info.language
    insights["language_probability"] = round(float(info.language_probability), 4)

    def generate() -> Iterator[Segment]:
        dropped = 0
        fw_segments = first_segments
        tail: list[str] = []  # text of the previous chunk, primes the next one
        for k, chunk in enumerate(chunks):
            if k:
                prompt = " ".join(tail)[-400:] if cfg["condition_on_previous_text"] and tail else None
                fw_segments, _ = start(chunk, language, prompt)
            tail = []
            try:
                for fw in fw_segments:
                    seg = convert_segment(fw, offset=chunk[0])
                    reason = _is_hallucination(seg, regions, cfg)
                    if reason:
                        dropped += 1
                        log.info("dropped segment %.2f-%.2f %r: %s", seg.start, seg.end, seg.text[:60], reason)
                        continue
                    tail = (tail + [seg.text])[-3:]
                    yield seg
            except (RuntimeError, ValueError) as exc:
                raise LocalEngineError(f"faster-whisper failed while decoding {_describe(audio)}: {exc}") from exc
        insights["dropped_segments"] = dropped

    return SimpleStream(generate(), language=language, duration=duration, model=model_name, insights=insights)


def _describe(audio: Any) -> str:
    return Path(audio).name if isinstance(audio, (str, os.PathLike)) else f"{audio.size / SAMPLE_RATE:.1f} s of audio"
