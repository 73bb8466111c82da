"""The records that flow between stages.

Small frozen dataclasses, in the spirit of pyannote.core's ``Segment`` and
faster-whisper's ``Word``/``Segment``.  Times are seconds (floats) from the
start of the audio.  Every record round-trips losslessly through JSON:

>>> t = Transcript(segments=(Segment(0.0, 1.0, "hi", words=(Word(0.0, 1.0, "hi"),)),))
>>> Transcript.from_json(t.to_json()) == t
True

Collections are tuples so records stay hashable-ish and immutable; use
``dataclasses.replace`` to derive a changed copy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- helpers
def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _decode(tp: Any, value: Any) -> Any:
    """Decode *value* into type annotation *tp* (resolved)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(args[0], value) if len(args) == 1 else value
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value))
    if origin in (dict, Mapping, typing.Mapping) or tp in (dict,):
        args = typing.get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {k: _decode(vt, v) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp.from_dict(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


class _Record:
    """Mixin: dict/JSON conversion for frozen dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                kwargs[f.name] = _decode(hints[f.name], data[f.name])
        return cls(**kwargs)


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Word(_Record):
    """One recognised word with its timing.

    ``text`` is the word as the engine wrote it, *including* its leading space
    (faster-whisper's and openai-whisper's convention: ``" self"``, ``"-love"``,
    ``" don't"``; CJK characters carry none).  Join words with
    :func:`join_words`, never with ``" ".join``, so ``self-love`` stays one word.
    Engines that return bare words (cloud APIs) prefix a space themselves.
    """

    start: float
    end: float
    text: str
    #: engine confidence in [0, 1] where the engine gives one
    probability: float | None = None
    #: speaker label, filled by :func:`vidtrans.diarize.assign_speakers`
    speaker: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Emotion(_Record):
    """Emotion tag for a stretch of speech."""

    label: str
    score: float
    #: all class scores, label -> probability
    scores: dict[str, float] = field(default_factory=dict)
    #: what produced it ("audio:<model>", "text:vader", "gemini", ...)
    source: str = ""


@dataclass(frozen=True)
class Segment(_Record):
    """A stretch of speech: usually a sentence or an engine's decoding window."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None
    emotion: Emotion | None = None
    #: engine-specific extras (avg_logprob, no_speech_prob, ...)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SpeakerTurn(_Record):
    """Who spoke when (one row of an RTTM file)."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Chapter(_Record):
    start: float
    end: float | None
    title: str


@dataclass(frozen=True)
class Media(_Record):
    """A downloaded (or local) media item and what is known about it."""

    #: stable id within the extractor (video id, or a content hash for local files)
    id: str
    #: yt-dlp extractor key ("youtube", "generic", ...) or "local"
    extractor: str = "local"
    title: str | None = None
    uploader: str | None = None
    duration: float | None = None
    #: YYYYMMDD as yt-dlp gives it
    upload_date: str | None = None
    language: str | None = None
    chapters: tuple[Chapter, ...] = ()
    webpage_url: str | None = None
    #: language -> list of available formats ("vtt", "srv3", ...)
    subtitles: dict[str, Any] = field(default_factory=dict)
    automatic_captions: dict[str, Any] = field(default_factory=dict)
    #: local path of the audio file that later stages read
    audio_path: str | None = None
    thumbnail: str | None = None
    #: what the user gave (URL or path)
    source: str | None = None


@dataclass(frozen=True)
class Transcript(_Record):
    """A transcription of one media item."""

    segments: tuple[Segment, ...] = ()
    language: str | None = None
    engine: str | None = None
    model: str | None = None
    #: audio duration in seconds
    duration: float | None = None
    #: the input the user gave (path or URL)
    source: str | None = None
    media: Media | None = None
    #: diarization result, when it ran
    speaker_turns: tuple[SpeakerTurn, ...] = ()
    #: engine extras that have no place above (chapters, summary, sentiment, ...)
    insights: dict[str, Any] = field(default_factory=dict)
    #: provenance: options used, timings, fallbacks tried
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    # -- convenience -----------------------------------------------------------
    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def speakers(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.segments:
            if s.speaker:
                seen.setdefault(s.speaker)
        for t in self.speaker_turns:
            seen.setdefault(t.speaker)
        return list(seen)

    def replace(self, **changes: Any) -> Transcript:
        return dataclasses.replace(self, **changes)

    # -- JSON ------------------------------------------------------------------
    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transcript:
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(
                f"transcript schema version {version!r} is newer than this vidtrans "
                f"understands ({SCHEMA_VERSION}); upgrade vidtrans"
            )
        return super().from_dict(data)  # type: ignore[return-value]

    @classmethod
    def from_json(cls, text: str) -> Transcript:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> Path:
        from ._io import atomic_write_text

        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Transcript:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


_NO_SPACE_CHAR = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
)


def join_words(words: Iterable[Word | str]) -> str:
    """The text of *words* as the engine spaced it.

    Words carry their own leading space (see :class:`Word`), so they are
    concatenated.  Legacy or hand-built words with no leading space at all are
    joined with single spaces (none between two CJK/Thai characters).
    """
    texts = [w if isinstance(w, str) else w.text for w in words]
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        return ""
    if any(t[0].isspace() for t in texts):  # engine spacing (the first word counts: [" self", "-love"])
        return " ".join("".join(texts).split())
    out = ""
    for t in (t.strip() for t in texts):
        if out and not (_NO_SPACE_CHAR.match(out[-1]) and _NO_SPACE_CHAR.match(t[0])):
            out += " "
        out += t
    return out


def spaced(text: str) -> str:
    """A bare word (cloud APIs, caption files) in the engine convention: one leading space.

    Words starting with a CJK/Thai character get none, as Whisper writes them.
    """
    t = text.strip()
    if not t or _NO_SPACE_CHAR.match(t[0]):
        return t
    return " " + t


def segments_from_words(words: Iterable[Word], **segment_fields: Any) -> Segment:
    """Build one segment spanning *words* (text joined as the engine spaced it)."""
    words = tuple(words)
    if not words:
        raise ValueError("segments_from_words needs at least one word")
    text = join_words(words)
    return Segment(words[0].start, words[-1].end, text, words=words, **segment_fields)
