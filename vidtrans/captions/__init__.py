"""Captions stage: word-timed transcript -> readable cues -> WebVTT / SRT / JSON / TXT / TSV.

Modules: :mod:`.options` (rules, errors), :mod:`.cues` (cue building), :mod:`.writers`,
:mod:`.vttparse` (the W3C WebVTT parser algorithm), :mod:`.vtt` (reading captions,
validation), :mod:`.readability` (report and plot).  Everything public is importable from here.

:func:`build_cues` turns the word timestamps of a :class:`~vidtrans.schema.Transcript`
into caption cues that follow the Netflix / BBC timed-text rules by default
(see :class:`CaptionOptions`):

* at most 42 characters per line and 2 lines per cue, never breaking inside a word
  (words keep the engine's spacing: ``self-love``, ``don't``, CJK without spaces);
* a cue lasts between 5/6 s and 7 s and is read at no more than 20 characters per
  second: cue boundaries are chosen so each cue can be read in the time it can have,
  a cue is extended into the silence after it, and fast speech is shown as a chain of
  cues each starting when the one before has been read, at most ``max_start_delay``
  (1 s) after its own speech, timed over the whole file for the fewest unreadable cues;
  where cues still cannot be read, boundaries near them are moved, merged, split into
  or paired as dialogue cues when that helps the whole chain; never by dropping words;
* cues break where the speaker changes, except that short turns of a dialogue that
  could not be read alone share a cue, one dashed line per speaker (Netflix/BBC
  dual-speaker cues), and at pauses of 0.4 s or more (unless the words around the
  pause could then not be read); inside a stretch of speech, breaks prefer sentence
  ends, then clause punctuation, then the point before a conjunction or preposition;
* cues never overlap and are separated by at least two frames (0.083 s); gaps
  shorter than half a second are closed to that minimum so captions do not flicker;
* lines are balanced, preferably broken after punctuation or before a
  conjunction/preposition, and a one-word line is avoided when possible.

Writers are picked by name from :data:`WRITERS` (as openai-whisper's
``get_writer``); VTT and SRT are serialised by webvtt-py.  Speaker labels:

* WebVTT: a voice span per cue, ``<v Speaker 1>text``; a dialogue cue has one
  closed voice span per line, ``<v Speaker 1>- Hello.</v>``;
* SRT (no voice markup): the first line of the first one-speaker cue after a
  change of speaker starts with ``SPEAKER 1: `` (its width is reserved, so the
  42-character limit holds); dialogue cues carry dashes only;
* TXT: paragraphs start with ``Speaker 1: ``.

``emotion_captions`` shows ``Segment.emotion`` as a WebVTT class span or a ``[label]`` tag.

:func:`read_captions` and :func:`parse_vtt` read WebVTT as browsers do;
:func:`validate_vtt` reports errors (what browsers reject, drop or ignore),
warnings (legal but off the authoring syntax) and readability per cue, with line
numbers.
"""

from .cues import Cue, build_cues
from .options import (
    CaptionError,
    CaptionFileError,
    CaptionOptions,
    CaptionOptionsError,
    InvalidTranscriptError,
    UnknownFormatError,
    _join,
    _sep,
)
from .readability import RULES, CueStats, ReadabilityReport, plot_readability, readability
from .vtt import VTT_RULES, ValidationIssue, ValidationReport, read_captions, validate_vtt
from .vttparse import VTTCue, VTTDocument, VTTRegion, parse_vtt
from .writers import WRITERS, Writer, get_writer, render, to_srt, to_vtt, write

__all__ = [
    "CaptionError",
    "CaptionFileError",
    "CaptionOptions",
    "CaptionOptionsError",
    "Cue",
    "CueStats",
    "InvalidTranscriptError",
    "RULES",
    "ReadabilityReport",
    "UnknownFormatError",
    "VTTCue",
    "VTTDocument",
    "VTTRegion",
    "VTT_RULES",
    "ValidationIssue",
    "ValidationReport",
    "WRITERS",
    "Writer",
    "build_cues",
    "get_writer",
    "parse_vtt",
    "plot_readability",
    "read_captions",
    "readability",
    "render",
    "to_srt",
    "to_vtt",
    "validate_vtt",
    "write",
]
