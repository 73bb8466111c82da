"""Transcription stage: engines picked by name from a registry.

An *engine* is a callable ``engine(audio, options) -> TranscriptionStream``.
The stream knows the language/duration up front and yields
:class:`~vidtrans.schema.Segment` objects as they are decoded, so notebooks
and the CLI can show progress (as faster-whisper does).  :func:`transcribe`
drives a stream to a finished :class:`~vidtrans.schema.Transcript`.

Engines live in their own modules and are imported lazily, so choosing the
local engine never imports a cloud SDK and vice versa::

    from vidtrans.transcribe import transcribe, TranscribeOptions
    t = transcribe("talk.mp4", TranscribeOptions(model="base"))
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigurationError
from ..schema import Segment, Transcript

log = logging.getLogger(__name__)

#: progress callback: (seconds of audio done, total seconds or None)
ProgressCallback = Callable[[float, "float | None"], None]

#: audio handed to an engine: a media file path or 16 kHz mono float32 samples
AudioInput = "str | os.PathLike | numpy.ndarray"


@dataclass
class TranscribeOptions:
    """Options every engine understands; engine-specific ones go in ``extra``."""

    #: engine name from :data:`ENGINES`, or "auto" to choose by language/keys
    engine: str = "faster-whisper"
    #: model name/alias ("base", "tiny.en", "large-v3", ...) or a local model directory
    model: str = "base"
    #: ISO 639-1 language code; None detects it
    language: str | None = None
    #: "transcribe" or "translate" (to English)
    task: str = "transcribe"
    #: per-word start/end times (needed for good captions and speaker assignment)
    word_timestamps: bool = True
    #: skip non-speech with a voice-activity detector before decoding
    vad_filter: bool = False
    #: beam search width (1 = greedy, fastest)
    beam_size: int = 5
    #: "auto" (cuda when available), "cpu" or "cuda"
    device: str = "auto"
    #: CTranslate2 compute type; "default" = int8 on CPU, float16 on GPU
    compute_type: str = "default"
    #: CPU threads for local engines; 0 = number of physical cores
    cpu_threads: int = 0
    #: text that primes the decoder (names, jargon)
    initial_prompt: str | None = None
    #: words/phrases to boost (cloud engines' key terms, Whisper hotwords)
    key_terms: tuple[str, ...] = ()
    #: ask the engine itself for speaker labels when it can (cloud engines)
    speaker_labels: bool = False
    #: engines to try, in order, when ``engine`` fails
    fallback: tuple[str, ...] = ()
    #: engine-specific options
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists, so it equals its JSON round trip)."""
        return json.loads(json.dumps(asdict(self), default=str))


class TranscriptionStream(Protocol):
    """What an engine returns: metadata plus a one-shot iterator of segments."""

    language: str | None
    duration: float | None
    model: str | None

    def __iter__(self) -> Iterator[Segment]: ...


@dataclass
class SimpleStream:
    """A ready-made :class:`TranscriptionStream` around a segment iterator."""

    segments: Any  # Iterable[Segment]
    language: str | None = None
    duration: float | None = None
    model: str | None = None
    insights: dict[str, Any] = field(default_factory=dict)
    speaker_turns: tuple = ()

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)


Engine = Callable[[Any, TranscribeOptions], TranscriptionStream]

#: engine name -> "module:attribute" (imported on first use)
ENGINES: dict[str, str] = {
    "faster-whisper": "vidtrans.transcribe.local:faster_whisper_engine",
    "assemblyai": "vidtrans.transcribe.assemblyai:assemblyai_engine",
    "gemini": "vidtrans.transcribe.gemini:gemini_engine",
    "openai-whisper": "vidtrans.transcribe.openai_whisper:openai_whisper_engine",
    "fireredasr": "vidtrans.transcribe.fireredasr:fireredasr_engine",
}


def register_engine(name: str, target: str | Engine) -> None:
    """Register an engine under *name* ("module:attr" string or a callable)."""
    ENGINES[name] = target  # type: ignore[assignment]


def get_engine(name: str) -> Engine:
    """Return the engine callable registered as *name*."""
    try:
        target = ENGINES[name]
    except KeyError:
        raise ConfigurationError(f"unknown engine {name!r}; choose one of: {', '.join(sorted(ENGINES))}") from None
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _accepts_models(engine: Engine) -> bool:
    import inspect

    try:
        return "models" in inspect.signature(engine).parameters
    except (TypeError, ValueError):
        return False


def stream(audio: Any, options: TranscribeOptions | None = None, *, models: Any = None) -> TranscriptionStream:
    """Start *options.engine* on *audio* and return its segment stream.

    *models* is a caller-owned :class:`vidtrans.models.ModelCache`; engines
    that load local models (faster-whisper) keep them there, so a second call
    with the same cache loads nothing.
    With ``engine="auto"`` the first engine of :func:`select.choose_engine`'s
    chain (then ``options.fallback``) that *starts* is used; errors while the
    stream is consumed are not retried (use :func:`transcribe` for that).
    """
    options = options or TranscribeOptions()
    if options.engine != "auto" and not options.fallback:
        engine = get_engine(options.engine)
        if models is not None and _accepts_models(engine):
            return engine(audio, options, models=models)
        return engine(audio, options)
    from .select import stream_with_fallback

    return stream_with_fallback(audio, options)


def collect(
    s: TranscriptionStream,
    *,
    engine: str,
    source: str | None = None,
    progress: ProgressCallback | None = None,
    meta: dict[str, Any] | None = None,
    on_segment: Callable[[Segment, str | None], None] | None = None,
) -> Transcript:
    """Drain stream *s* into a Transcript, reporting progress per segment.

    *on_segment* is called with each segment and the stream's language as it arrives (the pipeline
    starts word alignment there, while the engine decodes the next segment).
    """
    t0 = time.perf_counter()
    segments = []
    for seg in s:
        segments.append(seg)
        if on_segment is not None:
            on_segment(seg, s.language)
        if progress is not None:
            progress(seg.end, s.duration)
    if progress is not None and s.duration:
        progress(s.duration, s.duration)
    elapsed = time.perf_counter() - t0
    m = dict(meta or {})
    m.setdefault("transcribe_seconds", round(elapsed, 3))
    return Transcript(
        segments=tuple(segments),
        language=s.language,
        engine=engine,
        model=s.model,
        duration=s.duration,
        source=source,
        speaker_turns=tuple(getattr(s, "speaker_turns", ()) or ()),
        insights=dict(getattr(s, "insights", {}) or {}),
        meta=m,
    )


def transcribe(
    audio: Any,
    options: TranscribeOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    source: str | None = None,
    models: Any = None,
    on_segment: Callable[[Segment, str | None], None] | None = None,
) -> Transcript:
    """Transcribe *audio* (a media path or a 16 kHz float32 array) to a Transcript.

    Pass one :class:`vidtrans.models.ModelCache` as *models* to every call of
    a batch or notebook so the model is loaded once.  *on_segment*: see
    :func:`collect` (not called on the fallback path, whose segments may be discarded).
    """
    options = options or TranscribeOptions()
    if source is None and isinstance(audio, (str, os.PathLike)):
        source = str(Path(audio))
    if options.engine == "auto" or options.fallback:
        from .select import transcribe_with_fallback

        return transcribe_with_fallback(audio, options, progress=progress, source=source)
    s = stream(audio, options, models=models)
    return collect(s, engine=options.engine, source=source, progress=progress, meta={"options": options.to_dict()},
                   on_segment=on_segment)
