"""Options, result type, errors and small helpers shared by the diarization modules."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    EmptyAudioError,
    MediaError,
    MissingDependencyError,
)
from ..schema import SpeakerTurn

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: progress callback: (seconds of audio done, total seconds)
ProgressCallback = Callable[[float, "float | None"], None]

BACKENDS = ("local", "pyannote")
PRESETS = ("fast", "balanced", "accurate")
PYANNOTE_PIPELINE = "pyannote/speaker-diarization-community-1"


# --------------------------------------------------------------------------- errors
class DiarizationError(MediaError):
    """Audio that cannot be diarized (wrong shape, sample rate, ...)."""


class DiarizationAuthError(AuthenticationError):
    """The hosted pyannote pipeline needs a token / accepted model terms."""


class RTTMError(MediaError):
    """A malformed RTTM file."""


# --------------------------------------------------------------------------- options / result
@dataclass
class DiarizeOptions:
    """How to diarize.  All fields have working offline defaults."""

    #: "local" (offline, default) or "pyannote" (hosted community-1 pipeline, needs a HF token)
    backend: str = "local"
    #: exact number of speakers when known (overrides min/max)
    num_speakers: int | None = None
    #: lower bound on the number of speakers
    min_speakers: int | None = None
    #: upper bound on the number of speakers (default: 20 for the local backend)
    max_speakers: int | None = None
    #: "fast" (RTF ~0.05), "balanced" (~0.08) or "accurate" (default, ~0.1; 0.25 s embedding hop)
    preset: str = "accurate"
    #: local backend: AHC stops merging windows below this cosine similarity (higher = more speakers);
    #: None = the cross-validated default (``vidtrans.diarize.clustering.ClusterParams``)
    threshold: float | None = None
    #: "auto" (cuda when available), "cpu" or "cuda"
    device: str = "auto"
    #: environment variable holding the Hugging Face token (pyannote backend)
    hf_token_env: str = "HF_TOKEN"
    #: name -> reference clip path; matched speakers take these names
    enroll: dict[str, str] = field(default_factory=dict)
    #: minimum cosine similarity between a speaker and an enrolled voice to take its name
    identify_threshold: float = 0.75
    #: seconds of audio decoded and analysed at a time (bounds memory on long files)
    block_seconds: float = 600.0
    #: above this many embedding windows, cluster an evenly spaced subset and assign the rest
    max_cluster_points: int = 1500
    #: CPU threads for the models: the openvino / onnx runtime's threads (0 = every core), or torch's
    #: threads during this call (restored afterwards; 0 = torch's current setting)
    num_threads: int = 0
    #: local backend model runtime: "auto" (OpenVINO on CPU when installed, else onnxruntime; torch
    #: on a GPU), "openvino", "onnx" or "torch".  openvino and onnx convert the packaged weights to
    #: ONNX once (cached) and then need neither torch nor pyannote.audio
    runtime: str = "auto"

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigurationError(f"unknown diarization backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.preset not in PRESETS:
            raise ConfigurationError(f"unknown diarization preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigurationError(f"{name} must be a positive integer, got {v!r}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ConfigurationError(
                f"min_speakers ({self.min_speakers}) is larger than max_speakers ({self.max_speakers})"
            )
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise ConfigurationError(f"threshold must be a cosine similarity in (0, 1], got {self.threshold}")
        if not isinstance(self.num_threads, int) or self.num_threads < 0:
            raise ConfigurationError(f"num_threads must be 0 (torch's setting) or a positive integer, got {self.num_threads!r}")
        from ..diarize_models import RUNTIMES  # numpy only: no model runtime is imported

        if self.runtime not in RUNTIMES:
            raise ConfigurationError(f"unknown diarization runtime {self.runtime!r}; choose one of: {', '.join(RUNTIMES)}")
        if self.block_seconds < 30:
            raise ConfigurationError(f"block_seconds must be at least 30, got {self.block_seconds}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigurationError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")


@dataclass(frozen=True)
class _Preset:
    #: segmentation hop as a fraction of its 10 s window
    segmentation_step: float
    #: embedding window length / hop (seconds)
    window: float
    hop: float


_PRESETS = {
    "fast": _Preset(segmentation_step=0.5, window=1.0, hop=0.75),
    "balanced": _Preset(segmentation_step=0.1, window=1.0, hop=0.5),
    "accurate": _Preset(segmentation_step=0.1, window=1.0, hop=0.25),
}


@dataclass(frozen=True)
class Diarization:
    """Result of :func:`diarize`."""

    #: speaker turns, possibly overlapping (overlapped speech has one turn per speaker)
    turns: tuple[SpeakerTurn, ...]
    #: one speaker at a time (the most likely one in overlaps): use for captions
    exclusive: tuple[SpeakerTurn, ...]
    #: (start, end) regions where two or more speakers talk at once
    overlaps: tuple[tuple[float, float], ...]
    #: speaker labels in order of first appearance ("Speaker 1", ... or enrolled names)
    speakers: tuple[str, ...]
    #: audio duration in seconds
    duration: float
    #: provenance: backend, preset, timings, speaker-count estimate, identification scores
    meta: dict[str, Any] = field(default_factory=dict)
    #: speaker label -> unit-norm centroid embedding (local backend)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def to_annotation(self, uri: str = "audio", exclusive: bool = False):
        """The turns as a ``pyannote.core.Annotation``."""
        return turns_to_annotation(self.exclusive if exclusive else self.turns, uri=uri)


def turns_to_annotation(turns: Iterable[SpeakerTurn], uri: str = "audio"):
    try:
        from pyannote.core import Annotation, Segment as PSegment
    except ImportError as exc:
        raise MissingDependencyError("pyannote.core", purpose="pyannote Annotation export") from exc
    ann = Annotation(uri=uri)
    for i, t in enumerate(turns):
        ann[PSegment(t.start, t.end), i] = t.speaker
    return ann


def annotation_to_turns(annotation) -> list[SpeakerTurn]:
    out = [SpeakerTurn(float(s.start), float(s.end), str(label)) for s, _, label in annotation.itertracks(yield_label=True)]
    return sorted(out, key=lambda t: (t.start, t.end, t.speaker))


# --------------------------------------------------------------------------- helpers
def _resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``.

    CTranslate2 (loaded for transcription anyway) answers without importing
    torch; torch is asked only when CTranslate2 is missing.
    """
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except ImportError:
        pass
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def _as_array(audio: np.ndarray) -> np.ndarray:
    from ..audio import check_samples

    return check_samples(audio, DiarizationError)


class _AudioSource:
    """Block access to a media file (decoded one block at a time) or an in-memory array."""

    def __init__(self, audio: Any):
        self.array: np.ndarray | None = None
        self.path: Path | None = None
        if isinstance(audio, np.ndarray):
            self.array = _as_array(audio)
            self.duration = self.array.size / SAMPLE_RATE
            self.name = "array"
        elif isinstance(audio, (str, os.PathLike)):
            from ..audio import probe

            self.path = Path(audio)
            info = probe(self.path)
            self.duration = info.duration
            self.name = self.path.stem
            if self.duration is None:  # unknown duration: decode it once
                self.array = self._load(None, None)
                self.duration = self.array.size / SAMPLE_RATE
        else:
            raise DiarizationError(f"audio must be a file path or a 16 kHz mono float32 array, got {type(audio).__name__}")

    def _load(self, start: float | None, duration: float | None) -> np.ndarray:
        from ..audio import AudioOptions, load_audio

        return load_audio(self.path, AudioOptions(start=start, duration=duration))

    def block(self, start: float, duration: float) -> np.ndarray:
        if self.array is not None:
            return self.array[int(round(start * SAMPLE_RATE)) : int(round((start + duration) * SAMPLE_RATE))]
        try:
            return self._load(start if start > 0 else None, duration)
        except EmptyAudioError:
            return np.zeros(0, dtype=np.float32)


def _merge_intervals(intervals: Iterable[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(a, b) for a, b in out]


def _windows(regions: Iterable[tuple[float, float]], win: float, hop: float) -> list[tuple[float, float]]:
    """Fixed-length windows covering each speech region (the last one aligned to its end)."""
    out = []
    for s, e in regions:
        t = s
        while t + win < e:
            out.append((t, t + win))
            t += hop
        if t < e:
            out.append((max(s, e - win), e))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


