"""Writers: cues -> WebVTT / SRT (through webvtt-py), JSON, TXT, TSV; picked by name from WRITERS."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .._io import atomic_write_text
from ..errors import MissingDependencyError
from ..schema import Transcript
from .cues import Cue, _srt_prefix, build_cues
from .options import CaptionOptions, UnknownFormatError, _join

log = logging.getLogger(__name__)


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _captions(cues: Sequence[Cue], lines_for: Callable[[Cue], list[str]]):
    try:
        import webvtt
        from webvtt.models import Timestamp
    except ImportError as exc:
        raise MissingDependencyError("webvtt-py", purpose="writing WebVTT/SRT captions") from exc
    caps = [
        webvtt.Caption(str(Timestamp.from_seconds(c.start)), str(Timestamp.from_seconds(c.end)), lines_for(c))
        for c in cues
    ]
    return webvtt.WebVTT(captions=caps)


def css_class(label: str) -> str:
    """*label* as a WebVTT/CSS class name: lower case, runs of other characters -> '-', a leading
    digit prefixed with 'e' ("Happy/Joy" -> "happy-joy"; "1st" -> "e1st")."""
    name = re.sub(r"[^a-z0-9_-]+", "-", label.strip().lower()).strip("-")
    if not name:
        return "unknown"
    return "e" + name if re.match(r"-?[0-9]", name) else name


def to_vtt(cues: Sequence[Cue], *, emotion_class: bool = False) -> str:
    """WebVTT text for *cues* (serialised by webvtt-py; voice spans for labelled speakers).

    A dialogue cue gets one voice span per line: ``<v Speaker 1>- Hello.</v>`` /
    ``<v Speaker 2>- Hi.</v>``.  With *emotion_class*, the text of a cue whose emotion is known is
    wrapped in a class span, ``<c.happy>…</c>`` (per line in a dialogue cue).
    """
    def lines(c: Cue) -> list[str]:
        out = [_escape_vtt(line) for line in c.lines]
        if emotion_class and c.dialogue:
            out = [f"<c.{css_class(e)}>{line}</c>" if e else line
                   for e, line in zip(c.line_emotions or (None,) * len(out), out)]
        elif emotion_class and c.emotion:
            out[0] = f"<c.{css_class(c.emotion)}>{out[0]}"
            out[-1] = f"{out[-1]}</c>"
        if c.dialogue:
            # one voice span per line, closed, so styling one speaker never styles the other
            return [f"<v {_escape_vtt(lab)}>{line}</v>" if lab else line for lab, line in zip(c.line_labels or [None] * len(out), out)]
        if c.label:
            out[0] = f"<v {_escape_vtt(c.label)}>{out[0]}"
        return out

    return _captions(cues, lines).content


def _srt_safe(line: str) -> str:
    # SRT has no escaping and webvtt-py strips anything tag-like; keep the text visible
    from webvtt.models import _strip_cue_text_tags

    if _strip_cue_text_tags(line) != line:
        return line.replace("<", "‹").replace(">", "›")
    return line


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text for *cues* (serialised by webvtt-py; ``SPEAKER 1: `` where the speaker changes).

    A dialogue cue is written the broadcast way, a dash per speaker and no names.
    """
    def lines(c: Cue) -> list[str]:
        out = [_srt_safe(line) for line in c.lines]
        if c.label and c.speaker_changed and not c.dialogue:
            out[0] = _srt_prefix(c.label) + out[0]
        return out

    buf = io.StringIO()
    _captions(cues, lines).write(buf, format="srt")
    text = buf.getvalue()
    return text + "\n" if text else ""


def _render_vtt(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    return to_vtt(cues, emotion_class=options.emotion_captions == "class")


def _render_srt(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    return to_srt(cues)


def _render_json(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    data = transcript.to_dict()
    data["cues"] = [c.to_dict() for c in cues]
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _render_txt(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    paragraphs: list[str] = []
    cur: list[str] = []
    prev_speaker: object = object()
    prev_end: float | None = None
    for c in cues:
        for k, (speaker, label, text) in enumerate(c.parts):
            gap = k == 0 and prev_end is not None and c.start - prev_end >= options.paragraph_gap
            new = prev_end is None or speaker != prev_speaker or gap
            if new and cur:
                paragraphs.append(_join(cur))
                cur = []
            if new and label:
                cur.append(f"{label}:")
            cur.append(text)
            prev_speaker = speaker
            prev_end = c.end
    if cur:
        paragraphs.append(_join(cur))
    return "\n\n".join(paragraphs) + ("\n" if paragraphs else "")


def _render_tsv(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    rows = ["start\tend\ttext"]
    for c in cues:
        rows.append(f"{round(1000 * c.start)}\t{round(1000 * c.end)}\t{c.text.replace(chr(9), ' ')}")
    return "\n".join(rows) + "\n"


#: a writer renders (transcript, cues, options) to the file's text
Writer = Callable[[Transcript, Sequence[Cue], CaptionOptions], str]

#: format name (= file extension) -> writer
WRITERS: dict[str, Writer] = {
    "vtt": _render_vtt,
    "srt": _render_srt,
    "json": _render_json,
    "txt": _render_txt,
    "tsv": _render_tsv,
}


def get_writer(name: str) -> Writer:
    """The writer registered for format *name* (``vtt``, ``srt``, ``json``, ``txt``, ``tsv``)."""
    try:
        return WRITERS[name.lower().lstrip(".")]
    except (KeyError, AttributeError):
        raise UnknownFormatError(
            f"unknown caption format {name!r}; choose from: {', '.join(WRITERS)} (or 'all')"
        ) from None


def _formats(formats: str | Iterable[str]) -> list[str]:
    if isinstance(formats, str):
        formats = [f for f in re.split(r"[,\s]+", formats) if f]
    out: list[str] = []
    for f in formats:
        names = list(WRITERS) if f == "all" else [f.lower().lstrip(".")]
        for name in names:
            get_writer(name)
            if name not in out:
                out.append(name)
    if not out:
        raise UnknownFormatError(f"no caption format given; choose from: {', '.join(WRITERS)}")
    return out


def render(
    transcript: Transcript, fmt: str, options: CaptionOptions | None = None, cues: Sequence[Cue] | None = None
) -> str:
    """The text of *transcript* in format *fmt* (cues built with *options* unless given)."""
    options = (options or CaptionOptions()).validate()
    writer = get_writer(fmt)
    if cues is None:
        cues = build_cues(transcript, options)
    return writer(transcript, cues, options)


def write(
    transcript: Transcript,
    out_base: str | os.PathLike,
    formats: str | Iterable[str] = ("vtt", "srt", "json", "txt"),
    options: CaptionOptions | None = None,
    *,
    cues: Sequence[Cue] | None = None,
) -> dict[str, Path]:
    """Write ``out_base.<fmt>`` for each format, atomically; return format -> path.

    *out_base* is a path without extension (``out/talk`` -> ``out/talk.vtt``);
    every format name is checked before anything is written.
    """
    options = (options or CaptionOptions()).validate()
    names = _formats(formats)
    if cues is None:
        cues = build_cues(transcript, options)
    base = os.fspath(out_base)
    written: dict[str, Path] = {}
    for name in names:
        text = WRITERS[name](transcript, cues, options)
        written[name] = atomic_write_text(f"{base}.{name}", text)
        log.info("wrote %s", written[name])
    return written

