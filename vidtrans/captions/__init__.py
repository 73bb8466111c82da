"""Captions stage: word-timed transcript -> readable cues -> WebVTT / SRT / JSON / TXT / TSV.

:func:`build_cues` turns the word timestamps of a :class:`~vidtrans.schema.Transcript`
into caption cues that follow the Netflix / BBC timed-text rules by default
(see :class:`CaptionOptions`):

* at most 42 characters per line and 2 lines per cue, never breaking inside a word;
* a cue lasts between 5/6 s and 7 s and is read at no more than 20 characters
  per second "where the speech allows": a cue that is too short or too fast is
  extended into the silence that follows it, never over the next cue;
* cues always break where the speaker changes, and at pauses of 0.4 s or more
  (unless the words before the pause could then not be shown for 5/6 s);
  inside a stretch of speech, breaks prefer sentence ends, then clause
  punctuation, then the point before a conjunction or preposition;
* cues never overlap and are separated by at least two frames (0.083 s);
  gaps shorter than half a second are closed to that minimum so captions do
  not flicker;
* lines are balanced, preferably broken after punctuation or before a
  conjunction/preposition, and a one-word line is avoided when possible;
* words of scripts written without spaces (Chinese, Japanese, Thai, ...) are
  joined without spaces; set ``max_chars_per_line`` (Netflix: 16 for CJK)
  for those languages yourself.

The chosen cue boundaries come from a small dynamic programme over the word
boundaries of each stretch of speech (cost = number of cues + quality of each
break + quality of each cue's line breaking), the line breaking from another
over the words of a cue.

Writers are picked by name from :data:`WRITERS` (as openai-whisper's
``get_writer``); VTT and SRT are serialised by webvtt-py.  Speaker labels:

* WebVTT: every cue of a known speaker starts with a voice span,
  ``<v Speaker 1>text``;
* SRT (no voice markup): the first line of the first cue after a change of
  speaker starts with ``SPEAKER 1: ``.  Cues always break at speaker changes,
  so two speakers never share a cue and dialogue dashes (``- ``) are never
  needed; the label's width is reserved on that line so the 42-character
  limit still holds;
* TXT: paragraphs start with ``Speaker 1: ``.

:func:`validate_vtt` checks a WebVTT file the way the W3C parser sees it
(header, timestamp syntax, cue order, overlaps, escaping, blank-line
structure; with line numbers) and reports readability per cue.  It parses the
text itself, so it works on files webvtt-py refuses to read.
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
