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

from __future__ import annotations

import html
import io
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._io import atomic_write_text
from .errors import ConfigurationError, MissingDependencyError, VidtransError
from .schema import Segment, Transcript, Word, _Record

log = logging.getLogger(__name__)

__all__ = [
    "CaptionError",
    "CaptionFileError",
    "CaptionOptions",
    "Cue",
    "CueStats",
    "InvalidTranscriptError",
    "ReadabilityReport",
    "UnknownFormatError",
    "ValidationIssue",
    "ValidationReport",
    "WRITERS",
    "build_cues",
    "get_writer",
    "plot_readability",
    "read_captions",
    "readability",
    "render",
    "to_srt",
    "to_vtt",
    "validate_vtt",
    "write",
]

#: timing tolerance: times are written with millisecond precision
_TOL = 0.0015


# --------------------------------------------------------------------------- errors
class CaptionError(VidtransError):
    """Problem building, writing or reading captions."""

    exit_code = 2


class InvalidTranscriptError(CaptionError, ValueError):
    """The transcript cannot be captioned (bad word times, wrong type)."""


class CaptionFileError(CaptionError):
    """A caption file is missing, unreadable or not in the expected format."""


class UnknownFormatError(ConfigurationError):
    """A caption format name that no writer handles."""


class CaptionOptionsError(ConfigurationError, ValueError):
    """Caption options that cannot work."""


# --------------------------------------------------------------------------- options
@dataclass
class CaptionOptions:
    """Caption rules; the defaults are the Netflix / BBC timed-text guidelines."""

    #: longest line in characters (Netflix: 42 for Latin scripts)
    max_chars_per_line: int = 42
    #: most lines in one cue
    max_lines: int = 2
    #: shortest time a cue stays on screen, seconds (Netflix: 5/6 s = 20 frames)
    min_duration: float = 5 / 6
    #: longest time a cue stays on screen, seconds
    max_duration: float = 7.0
    #: reading speed limit in characters per second (spaces included; Netflix adult: 20)
    max_cps: float = 20.0
    #: start a new cue after a silence at least this long (seconds); None = never.  Not done
    #: when the words before the silence could then not be shown for ``min_duration``
    pause_threshold: float | None = 0.4
    #: prefer cue and line breaks after sentence/clause punctuation
    break_at_punctuation: bool = True
    #: smallest gap between consecutive cues, seconds (2 frames at 24 fps)
    min_gap: float = 2 / 24
    #: gaps shorter than this are closed down to ``min_gap`` by extending the
    #: earlier cue (avoids flicker; Netflix: 12 frames ≈ 0.5 s); 0 = off
    close_gap: float = 0.5
    #: extend a cue into the silence after it to meet ``min_duration`` and ``max_cps``
    extend_for_reading: bool = True
    #: speaker labels: "off", "on", or "auto" (on when the transcript has more than one speaker)
    speaker_labels: str = "auto"
    #: display name for a raw speaker label (e.g. {"SPEAKER_00": "Alice"}); others use ``speaker_format``
    speaker_names: dict[str, str] = field(default_factory=dict)
    #: display name of unnamed speakers; ``{n}`` = order of first appearance (1-based), ``{label}`` = raw label
    speaker_format: str = "Speaker {n}"
    #: TXT writer: start a new paragraph after a silence at least this long (seconds)
    paragraph_gap: float = 2.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> CaptionOptions:
        """Raise :class:`CaptionOptionsError` when the options cannot work together."""
        def bad(msg: str) -> CaptionOptionsError:
            return CaptionOptionsError(f"invalid caption options: {msg}")

        if isinstance(self.speaker_labels, bool):
            self.speaker_labels = "on" if self.speaker_labels else "off"
        if not isinstance(self.max_chars_per_line, int) or self.max_chars_per_line < 1:
            raise bad(f"max_chars_per_line must be a positive integer, got {self.max_chars_per_line!r}")
        if not isinstance(self.max_lines, int) or self.max_lines < 1:
            raise bad(f"max_lines must be a positive integer, got {self.max_lines!r}")
        for name in ("min_duration", "max_duration", "max_cps", "min_gap", "close_gap", "paragraph_gap"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise bad(f"{name} must be a finite number >= 0, got {v!r}")
        if self.max_duration <= 0 or self.max_cps <= 0:
            raise bad("max_duration and max_cps must be > 0")
        if self.min_duration > self.max_duration:
            raise bad(f"min_duration ({self.min_duration}) exceeds max_duration ({self.max_duration})")
        if self.pause_threshold is not None and (
            not isinstance(self.pause_threshold, (int, float)) or not self.pause_threshold > 0
        ):
            raise bad(f"pause_threshold must be > 0 or None, got {self.pause_threshold!r}")
        if self.speaker_labels not in ("off", "on", "auto"):
            raise bad(f"speaker_labels must be 'off', 'on' or 'auto', got {self.speaker_labels!r}")
        try:
            self.speaker_format.format(n=1, label="X")
        except (KeyError, IndexError, ValueError) as exc:
            raise bad(f"speaker_format {self.speaker_format!r} may only use {{n}} and {{label}}") from exc
        return self


# --------------------------------------------------------------------------- cues
@dataclass(frozen=True)
class Cue(_Record):
    """One caption: what is on screen from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    #: the displayed lines (without speaker label)
    lines: tuple[str, ...]
    #: raw speaker label from diarization/the engine, when known
    speaker: str | None = None
    #: the words shown, with their own timing
    words: tuple[Word, ...] = ()
    #: display name of the speaker when speaker labels are on, else None
    label: str | None = None
    #: first cue after a change of speaker (SRT shows the label only there)
    speaker_changed: bool = False

    @property
    def text(self) -> str:
        """The cue text on one line (lines joined with a space, or nothing inside CJK/Thai text)."""
        return _join(self.lines)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def chars(self) -> int:
        """Characters read: the displayed text, spaces included, line breaks not."""
        return len(self.text)

    @property
    def cps(self) -> float:
        """Reading speed in characters per second."""
        return self.chars / self.duration if self.duration > 0 else math.inf


# -- word classes used to score breaks (English; other languages fall back on punctuation/pauses)
_SENT_END = re.compile(r"[.!?…。！？]['\"”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:–—、，；：]['\"”’)\]]*$")
#: tokens that only close the word before them ("," "?" "...") and are glued to it
_TRAILING_PUNCT = re.compile(r"^[.,!?;:…%)\]}\"'”’»。，！？、；：]+$")
_STRIP = re.compile(r"^[^\w']+|[^\w']+$", re.UNICODE)
_BREAK_BEFORE = frozenset(
    """and but or nor so yet because although though while if when where whereas whether which who
    whom whose that than as since unless until after before once in on at to for of with from by about
    into onto over under between through during without within like across against among around
    toward towards upon""".split()
)
#: words that should not end a line or a cue ("the | cat")
_NO_BREAK_AFTER = _BREAK_BEFORE | frozenset(
    """a an the my your his her its our their this these those some any no every each very
    i i'm i've i'd i'll we you they he she it's is are was were be been am do does did not
    can could will would shall should may might must has have had mr mrs ms dr""".split()
)


#: scripts written without spaces between words (CJK, kana, Thai, Lao, Myanmar, Khmer) and CJK punctuation
_NO_SPACE = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
)


_NO_SPACE_SPLIT = re.compile(f"{_NO_SPACE.pattern}|(?:(?!{_NO_SPACE.pattern}).)+")


def _sep(left: str, right: str) -> str:
    """What goes between two words or lines: nothing between two no-space-script characters, else a space."""
    return "" if left and right and _NO_SPACE.match(left[-1]) and _NO_SPACE.match(right[0]) else " "


def _join(parts: Sequence[str]) -> str:
    """Join words or lines as the script writes them (spaces, except inside CJK/Thai text)."""
    out = ""
    for p in parts:
        out = p if not out else out + _sep(out, p) + p
    return out


@dataclass(slots=True)
class _W:
    start: float
    end: float
    text: str
    speaker: str | None
    probability: float | None = None

    def bare(self) -> str:
        return _STRIP.sub("", self.text).lower()


def _check_time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidTranscriptError(f"{what} has an invalid time {value!r}; times must be finite seconds >= 0")
    return float(value)


def _segment_words(seg: Segment, index: int) -> list[_W]:
    """Words of one segment; proportional timing from the text when the engine gave no words."""
    start = _check_time(seg.start, f"segment {index}")
    end = _check_time(seg.end, f"segment {index}")
    if end < start - 0.001:
        raise InvalidTranscriptError(f"segment {index} ends ({end:.3f}s) before it starts ({start:.3f}s)")
    if seg.words:
        out = []
        for k, w in enumerate(seg.words):
            ws = _check_time(w.start, f"word {k} ({w.text!r}) of segment {index}")
            we = _check_time(w.end, f"word {k} ({w.text!r}) of segment {index}")
            if we < ws - 0.001:
                raise InvalidTranscriptError(
                    f"word {k} ({w.text!r}) of segment {index} ends ({we:.3f}s) before it starts ({ws:.3f}s)"
                )
            out.append(_W(ws, max(ws, we), " ".join(w.text.split()), w.speaker or seg.speaker, w.probability))
        return out
    # words of the text; in scripts without spaces every character is a word
    tokens = [t for tok in seg.text.split() for t in _NO_SPACE_SPLIT.findall(tok)]
    if not tokens:
        return []
    weights = [len(t) + 1 for t in tokens]
    total = sum(weights)
    span = max(end - start, 0.0)
    out, t = [], start
    for tok, wt in zip(tokens, weights):
        d = span * wt / total
        out.append(_W(t, t + d, tok, seg.speaker))
        t += d
    return out


def _prepare_words(transcript: Transcript) -> list[_W]:
    """All words in time order, cleaned: no empty/punctuation-only tokens, no overlaps, no duplicates."""
    raw: list[_W] = []
    for i, seg in enumerate(transcript.segments):
        if not isinstance(seg, Segment):
            raise InvalidTranscriptError(f"segment {i} is a {type(seg).__name__}, not a vidtrans Segment")
        seg_words = _segment_words(seg, i)
        # words the diarizer could not place inherit the previous word's speaker in the same segment
        prev_speaker = None
        for w in seg_words:
            if w.speaker is None:
                w.speaker = prev_speaker
            prev_speaker = w.speaker
        raw.extend(seg_words)
    raw.sort(key=lambda w: (w.start, w.end))  # stable: equal times keep engine order

    words: list[_W] = []
    for w in raw:
        if not w.text:
            continue
        if words and _TRAILING_PUNCT.match(w.text) and w.start <= words[-1].end + 0.5:
            # a separate punctuation token ("," "?") belongs to the word before it
            words[-1].text += w.text
            words[-1].end = max(words[-1].end, w.end)
            continue
        if words:
            p = words[-1]
            if w.start < p.end:  # overlapping input (overlapping segments, chunk seams)
                if w.bare() == p.bare() and w.bare():
                    log.debug("dropping duplicated word %r at %.2fs", w.text, w.start)
                    continue
                if w.start > p.start:
                    p.end = w.start
                else:
                    w.start = p.end
                    w.end = max(w.end, w.start)
        words.append(w)
    return words


def _display_names(speakers: Iterable[str], options: CaptionOptions) -> dict[str, str]:
    names: dict[str, str] = {}
    for s in speakers:
        if s not in names:
            names[s] = options.speaker_names.get(s) or options.speaker_format.format(n=len(names) + 1, label=s)
    return names


def _srt_prefix(label: str) -> str:
    return f"{label.upper()}: "


class _Scorer:
    """Break and line costs for one stretch of words (costs precomputed per word boundary)."""

    def __init__(self, words: Sequence[_W], options: CaptionOptions):
        self.w = words
        self.o = options
        n = len(words)
        self.toks = [w.text for w in words]
        self.pre = [0]
        for t in self.toks:
            self.pre.append(self.pre[-1] + len(t))
        #: spre[k]: total separator length of the boundaries 1..k (boundary k is between words k-1 and k)
        self.spre = [0]
        for k in range(1, n):
            self.spre.append(self.spre[-1] + len(_sep(self.toks[k - 1], self.toks[k])))
        punct = options.break_at_punctuation
        bare = [w.bare() for w in words]
        self.sent_end = [bool(punct and _SENT_END.search(t)) for t in self.toks]
        clause = [bool(punct and _CLAUSE_END.search(t)) for t in self.toks]
        #: line_cost[k]: cost of a break between words k-1 and k; cue_cost[k] adds a bonus for silence
        self.line_cost = [0.0] * (n + 1)
        self.cue_cost = [0.0] * (n + 1)
        for k in range(1, n):
            if self.sent_end[k - 1]:
                c = 0.0
            elif clause[k - 1]:
                c = 1.0
            elif bare[k] in _BREAK_BEFORE:
                c = 2.0
            else:
                c = 4.0
            if bare[k - 1] in _NO_BREAK_AFTER and not (self.sent_end[k - 1] or clause[k - 1]):
                c += 3.0
            self.line_cost[k] = c
            self.cue_cost[k] = c - 2.0 * min(max(words[k].start - words[k - 1].end, 0.0), 1.0)

    def length(self, a: int, b: int) -> int:
        """Characters of words[a:b] as written (with the separators between them)."""
        return self.pre[b] - self.pre[a] + self.spre[b - 1] - self.spre[a]

    def break_lines(self, i: int, j: int, reserve: int = 0) -> tuple[tuple[str, ...], float, bool]:
        """Best line breaking of words[i:j] -> (lines, cost, fits)."""
        o = self.o
        toks = self.toks
        n = j - i
        width = o.max_chars_per_line
        limit0 = width - reserve
        total = self.length(i, j)
        if total <= limit0:
            return (_join(toks[i:j]),), 0.0, True
        if o.max_lines < 2 or n < 2 or total > limit0 + (o.max_lines - 1) * (width + 1):
            return self._greedy(toks[i:j], limit0), 0.0, False
        if o.max_lines == 2 or total <= limit0 + width + 1:
            # two lines: try every split point
            target = (total - 1) / 2
            best, best_k = math.inf, -1
            for k in range(i + 1, j):
                l1 = self.length(i, k)
                if l1 > limit0:
                    break
                l2 = self.length(k, j)
                if l2 > width:
                    continue
                c = 10.0 * (((l1 - target) / width) ** 2 + ((l2 - target) / width) ** 2) + self.line_cost[k]
                if n > 2 and (k == i + 1 or k == j - 1):
                    c += 5.0  # a one-word (orphan) line that could have been avoided
                if c < best:
                    best, best_k = c, k
            if best_k >= 0:
                return (_join(toks[i:best_k]), _join(toks[best_k:j])), best, True
            if o.max_lines == 2:
                return self._greedy(toks[i:j], limit0), 0.0, False
        return self._break_many(i, j, reserve)

    def _break_many(self, i: int, j: int, reserve: int) -> tuple[tuple[str, ...], float, bool]:
        """Three or more lines: dynamic programme over line starts."""
        o = self.o
        n = j - i
        width = o.max_chars_per_line
        limit0 = width - reserve
        total = self.length(i, j)
        inf = math.inf
        for n_lines in range(3, min(o.max_lines, n) + 1):
            target = (total - (n_lines - 1)) / n_lines
            # best[l][k]: cost of words[i:i+k] in l lines; back[l][k]: start of the last line
            best = [[inf] * (n + 1) for _ in range(n_lines + 1)]
            back = [[0] * (n + 1) for _ in range(n_lines + 1)]
            best[0][0] = 0.0
            for line in range(1, n_lines + 1):
                lim = limit0 if line == 1 else width
                for k in range(line, n + 1):
                    for a in range(k - 1, line - 2, -1):
                        ln = self.length(i + a, i + k)
                        if ln > lim:
                            break
                        if best[line - 1][a] == inf:
                            continue
                        c = best[line - 1][a] + 10.0 * ((ln - target) / width) ** 2
                        if k - a == 1 and n > n_lines:
                            c += 5.0
                        if k < n and line < n_lines:
                            c += self.line_cost[i + k]
                        if c < best[line][k]:
                            best[line][k], back[line][k] = c, a
            if best[n_lines][n] < inf:
                cuts, k = [], n
                for line in range(n_lines, 0, -1):
                    a = back[line][k]
                    cuts.append((a, k))
                    k = a
                lines = tuple(_join(self.toks[i + a:i + b]) for a, b in reversed(cuts))
                return lines, best[n_lines][n], True
        return self._greedy(self.toks[i:j], limit0), 0.0, False

    def _greedy(self, toks: list[str], limit0: int) -> tuple[str, ...]:
        lines: list[str] = []
        cur = ""
        for t in toks:
            lim = limit0 if not lines else self.o.max_chars_per_line
            if cur and len(cur) + len(_sep(cur, t)) + len(t) > lim:
                lines.append(cur)
                cur = t
            else:
                cur = _join((cur, t)) if cur else t
        lines.append(cur)
        return tuple(lines)


def _split_run(words: list[_W], options: CaptionOptions, reserve: int) -> list[tuple[int, int, tuple[str, ...]]]:
    """Choose cue boundaries in one stretch of same-speaker speech (dynamic programme)."""
    o = options
    sc = _Scorer(words, o)
    n = len(words)
    max_chars = o.max_lines * (o.max_chars_per_line + 1)
    best = [math.inf] * (n + 1)
    back: list[tuple[int, tuple[str, ...]]] = [(0, ())] * (n + 1)
    best[0] = 0.0
    for j in range(1, n + 1):
        inner_sentences = 0
        for i in range(j - 1, -1, -1):
            single = i == j - 1
            if not single:
                if sc.sent_end[i]:
                    inner_sentences += 1
                if sc.length(i, j) > max_chars + reserve or words[j - 1].end - words[i].start > o.max_duration:
                    break
            lines, line_cost, fits = sc.break_lines(i, j, reserve if i == 0 else 0)
            if not fits and not single:
                continue
            c = best[i] + 3.0 + line_cost + 1.5 * inner_sentences
            if j < n:
                c += sc.cue_cost[j]
                span = words[j - 1].end - words[i].start
                if span < o.min_duration and words[j].start - words[j - 1].end < o.min_duration - span:
                    c += 1.0  # a short cue that cannot be extended into a gap
            if c < best[j]:
                best[j], back[j] = c, (i, lines)
    out = []
    j = n
    while j > 0:
        i, lines = back[j]
        out.append((i, j, lines))
        j = i
    return out[::-1]


def build_cues(transcript: Transcript, options: CaptionOptions | None = None) -> list[Cue]:
    """Build caption cues from *transcript*'s word timestamps following *options*' rules.

    Segments without words are captioned from their text with proportional
    timing.  Returns cues in time order, non-overlapping, at least
    ``options.min_gap`` apart.
    """
    options = (options or CaptionOptions()).validate()
    if not isinstance(transcript, Transcript):
        raise InvalidTranscriptError(
            f"build_cues needs a vidtrans Transcript, got {type(transcript).__name__}"
            + (" (load JSON with Transcript.load)" if isinstance(transcript, (str, os.PathLike)) else "")
        )
    words = _prepare_words(transcript)
    if not words:
        return []

    speakers = [w.speaker for w in words if w.speaker]
    distinct = list(dict.fromkeys(speakers))
    labels_on = options.speaker_labels == "on" or (options.speaker_labels == "auto" and len(distinct) > 1)
    names = _display_names(distinct, options) if labels_on else {}

    # runs: hard breaks at speaker changes and at long pauses, unless the speech before the
    # pause could then not stay on screen for min_duration (the cue DP may still break there)
    runs: list[list[_W]] = [[words[0]]]
    for prev, w in zip(words, words[1:]):
        pause = w.start - prev.end
        if w.speaker != prev.speaker:
            runs.append([w])
        elif options.pause_threshold is not None and pause >= options.pause_threshold:
            room = prev.end - runs[-1][0].start + max(pause - options.min_gap, 0.0)
            if room >= options.min_duration - _TOL:
                runs.append([w])
            else:
                runs[-1].append(w)
        else:
            runs[-1].append(w)

    raw: list[tuple[float, float, tuple[str, ...], list[_W], bool]] = []
    last_speaker: object = object()
    for run in runs:
        changed = run[0].speaker != last_speaker
        last_speaker = run[0].speaker
        label = names.get(run[0].speaker) if run[0].speaker else None
        reserve = len(_srt_prefix(label)) if (label and changed) else 0
        for k, (i, j, lines) in enumerate(_split_run(run, options, reserve)):
            ws = run[i:j]
            raw.append((ws[0].start, ws[-1].end, lines, ws, changed and k == 0))

    cues = _time_cues(raw, options, transcript.duration)
    out = []
    for (start, end), (_, _, lines, ws, changed) in zip(cues, raw):
        spk = ws[0].speaker
        out.append(
            Cue(
                start=start,
                end=end,
                lines=lines,
                speaker=spk,
                words=tuple(Word(w.start, w.end, w.text, w.probability, w.speaker) for w in ws),
                label=names.get(spk) if spk else None,
                speaker_changed=changed and spk is not None,
            )
        )
    log.debug("built %d cues from %d words", len(out), len(words))
    return out


def _time_cues(raw, o: CaptionOptions, media_end: float | None) -> list[tuple[float, float]]:
    """Final on-screen times: gaps, reading-time extension, gap closing, max duration."""
    frame = 1 / 25
    n = len(raw)
    starts = [r[0] for r in raw]
    ends = [r[1] for r in raw]
    # 1. keep min_gap before the next cue (trim the end of speech, or push the next start)
    for k in range(n - 1):
        limit = starts[k + 1] - o.min_gap
        if ends[k] > limit:
            ends[k] = max(limit, starts[k] + frame)
            starts[k + 1] = max(starts[k + 1], ends[k] + o.min_gap)
            ends[k + 1] = max(ends[k + 1], starts[k + 1] + frame)
    hard_end = media_end if media_end and media_end > 0 else math.inf
    for k in range(n):
        room = (starts[k + 1] - o.min_gap) if k + 1 < n else hard_end
        room = max(room, ends[k])
        chars = len(_join(raw[k][2]))
        if o.extend_for_reading:
            # 2. reading time: min duration and max cps, into the following silence
            target = min(max(o.min_duration, chars / o.max_cps), o.max_duration)
            if ends[k] - starts[k] < target:
                ends[k] = min(starts[k] + target, room)
        # 3. close short gaps to min_gap (no flicker between chained cues)
        if k + 1 < n and 0 < starts[k + 1] - ends[k] < o.close_gap:
            ends[k] = max(ends[k], starts[k + 1] - o.min_gap)
        # 4. never longer than max_duration (a single long word is cut short)
        ends[k] = min(ends[k], starts[k] + o.max_duration)
        ends[k] = max(ends[k], starts[k] + 0.001)
    # millisecond precision, as written; rounding must not create overlaps
    out = []
    prev_end = -math.inf
    for s, e in zip(starts, ends):
        s = max(round(s, 3), 0.0)
        if s < prev_end:
            s = round(prev_end, 3)
        e = max(round(e, 3), round(s + 0.001, 3))
        out.append((s, e))
        prev_end = e
    return out


# --------------------------------------------------------------------------- readability
@dataclass(frozen=True)
class CueStats:
    """Readability of one cue."""

    index: int
    start: float
    end: float
    lines: tuple[str, ...]
    #: 1-based line of the cue's timing line in the file, when read from a file
    line_number: int | None = None
    #: violated rule names (see :data:`RULES`)
    violations: tuple[str, ...] = ()
    #: seconds since the previous cue ended (None for the first)
    gap_before: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def chars_per_line(self) -> tuple[int, ...]:
        return tuple(len(line) for line in self.lines)

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    @property
    def chars(self) -> int:
        return len(_join(self.lines))

    @property
    def cps(self) -> float:
        return self.chars / self.duration if self.duration > 0 else math.inf


#: readability rule -> what it checks
RULES: dict[str, str] = {
    "max_chars_per_line": "a line is longer than max_chars_per_line",
    "max_lines": "more lines than max_lines",
    "min_duration": "on screen for less than min_duration",
    "max_duration": "on screen for more than max_duration",
    "max_cps": "reading speed above max_cps",
    "min_gap": "less than min_gap after the previous cue",
    "overlap": "starts before the previous cue ends",
}


@dataclass(frozen=True)
class ReadabilityReport:
    """Per-cue readability and violations counted by rule."""

    cues: tuple[CueStats, ...]
    options: CaptionOptions

    @property
    def summary(self) -> dict[str, int]:
        """Rule -> number of cues violating it (every rule present, zeros included)."""
        c = Counter(v for s in self.cues for v in s.violations)
        return {rule: c.get(rule, 0) for rule in RULES}

    @property
    def violations(self) -> list[tuple[CueStats, str]]:
        return [(s, v) for s in self.cues for v in s.violations]

    @property
    def ok(self) -> bool:
        return not any(s.violations for s in self.cues)

    def format(self) -> str:
        n = len(self.cues)
        parts = [f"{n} cues"]
        parts += [f"{rule}: {k}" for rule, k in self.summary.items() if k]
        return ", ".join(parts) if len(parts) > 1 else f"{n} cues, no readability violations"


def _stats(items: Sequence[tuple[float, float, tuple[str, ...], int | None]], o: CaptionOptions) -> ReadabilityReport:
    out = []
    prev_end: float | None = None
    for idx, (start, end, lines, line_no) in enumerate(items):
        gap = None if prev_end is None else start - prev_end
        s = CueStats(idx, start, end, tuple(lines), line_no, (), gap)
        v = []
        if any(n > o.max_chars_per_line for n in s.chars_per_line):
            v.append("max_chars_per_line")
        if s.n_lines > o.max_lines:
            v.append("max_lines")
        if s.duration < o.min_duration - _TOL:
            v.append("min_duration")
        if s.duration > o.max_duration + _TOL:
            v.append("max_duration")
        if s.duration <= 0 or s.chars / s.duration > o.max_cps * (1 + 1e-9) + 1e-9:
            v.append("max_cps")
        if gap is not None and gap < -_TOL:
            v.append("overlap")
        elif gap is not None and gap < o.min_gap - _TOL:
            v.append("min_gap")
        out.append(replace(s, violations=tuple(v)))
        prev_end = end if prev_end is None else max(prev_end, end)
    return ReadabilityReport(tuple(out), o)


def readability(cues: Sequence[Cue], options: CaptionOptions | None = None) -> ReadabilityReport:
    """Check built cues against *options*' rules (chars per line, lines, duration, cps, gaps)."""
    o = (options or CaptionOptions()).validate()
    return _stats([(c.start, c.end, c.lines, None) for c in cues], o)


# --------------------------------------------------------------------------- writers
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


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text for *cues* (serialised by webvtt-py; voice spans for labelled speakers)."""
    def lines(c: Cue) -> list[str]:
        out = [_escape_vtt(line) for line in c.lines]
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
    """SubRip text for *cues* (serialised by webvtt-py; ``SPEAKER 1: `` where the speaker changes)."""
    def lines(c: Cue) -> list[str]:
        out = [_srt_safe(line) for line in c.lines]
        if c.label and c.speaker_changed:
            out[0] = _srt_prefix(c.label) + out[0]
        return out

    buf = io.StringIO()
    _captions(cues, lines).write(buf, format="srt")
    text = buf.getvalue()
    return text + "\n" if text else ""


def _render_vtt(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    return to_vtt(cues)


def _render_srt(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    return to_srt(cues)


def _render_json(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    data = transcript.to_dict()
    data["cues"] = [c.to_dict() for c in cues]
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _render_txt(transcript: Transcript, cues: Sequence[Cue], options: CaptionOptions) -> str:
    paragraphs: list[str] = []
    cur: list[str] = []
    prev: Cue | None = None
    for c in cues:
        new = prev is None or c.speaker != prev.speaker or c.start - prev.end >= options.paragraph_gap
        if new and cur:
            paragraphs.append(_join(cur))
            cur = []
        if new and c.label:
            cur.append(f"{c.label}:")
        cur.append(c.text)
        prev = c
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


# --------------------------------------------------------------------------- reading
_SRT_LABEL = re.compile(r"^([A-Z][A-Z0-9 _.'-]{0,40}):\s+(.*)$")


def read_captions(path: str | os.PathLike, *, format: str | None = None, srt_labels: bool = True) -> Transcript:
    """Read a WebVTT or SRT file (via webvtt-py) into a Transcript, one segment per cue.

    *format* is "vtt" or "srt" (default: from the extension, else sniffed).
    WebVTT voice spans and, with *srt_labels*, upper-case SRT ``NAME: ``
    prefixes become segment speakers (an SRT label holds until the next one).
    Segments carry no words; build cues from them and timing is spread over
    the text.
    """
    try:
        import webvtt
        from webvtt.errors import MalformedCaptionError, MalformedFileError
    except ImportError as exc:
        raise MissingDependencyError("webvtt-py", purpose="reading captions") from exc
    p = Path(path)
    if not p.is_file():
        raise CaptionFileError(f"caption file not found: {p}")
    fmt = (format or p.suffix.lstrip(".")).lower()
    if fmt not in ("vtt", "srt"):
        head = p.read_bytes()[:16].lstrip(b"\xef\xbb\xbf")
        fmt = "vtt" if head.startswith(b"WEBVTT") else "srt"
    try:
        doc = webvtt.read(str(p)) if fmt == "vtt" else webvtt.from_srt(str(p))
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise CaptionFileError(f"{p} is not a valid {fmt.upper()} file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise CaptionFileError(f"{p} is not UTF-8 text: {exc}") from exc
    segments = []
    current: str | None = None
    for cap in doc.captions:
        lines = [html.unescape(line).strip() for line in cap.text.split("\n")]
        lines = [line for line in lines if line]
        speaker = cap.voice if fmt == "vtt" else None
        if fmt == "srt" and srt_labels and lines:
            m = _SRT_LABEL.match(lines[0])
            if m:
                current, lines[0] = m.group(1).strip(), m.group(2)
            speaker = current
        if speaker is not None:
            speaker = html.unescape(speaker)
        start = cap.start_time.in_milliseconds() / 1000
        end = cap.end_time.in_milliseconds() / 1000
        segments.append(Segment(start, end, _join(lines), speaker=speaker))
    duration = max((s.end for s in segments), default=None)
    return Transcript(
        segments=tuple(segments), engine="captions", source=str(p), duration=duration, meta={"format": fmt}
    )


# --------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in a WebVTT file."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.rule}] {self.message}"


#: W3C-level rule -> what it checks
VTT_RULES: dict[str, str] = {
    "encoding": "the file is UTF-8",
    "header": "the first line is WEBVTT, optionally followed by a space or tab and text",
    "blank_line": "a blank line separates the header and every block; no blank line inside a cue",
    "timing_line": "a cue timing line is 'start --> end [settings]'",
    "timestamp": "timestamps are hh:mm:ss.ttt or mm:ss.ttt",
    "end_before_start": "a cue ends after it starts",
    "cue_order": "cues are in order of start time",
    "overlap": "a cue starts after the previous one ends",
    "unescaped_ampersand": "& in cue text starts a character reference (&amp;)",
    "unescaped_lt": "< in cue text starts a cue tag (else &lt;)",
    "arrow_in_text": "cue text and comments do not contain -->",
    "empty_cue": "a cue has text",
}

_VTT_TS = re.compile(r"^(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})$")
_TIMING = re.compile(r"^(\S+)([ \t]+)-->([ \t]+)(\S+)(?:[ \t]+(.*))?$")
_CHAR_REF = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_CUE_TAG = re.compile(
    r"<(?:/?(?:c|i|b|u|ruby|rt|v|lang)(?:\.[^\s.>&<]+)*(?:[ \t][^>]*)?|/?(?:c|i|b|u|ruby|rt|v|lang)"
    r"|(?:\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3})>"
)
_TAG_ANY = re.compile(r"<[^>]*>")


def _vtt_seconds(ts: str) -> float | None:
    m = _VTT_TS.match(ts)
    if not m:
        return None
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(ms) / 1000


@dataclass(frozen=True)
class ValidationReport:
    """Result of :func:`validate_vtt`: W3C-level errors/warnings and readability."""

    errors: tuple[ValidationIssue, ...]
    warnings: tuple[ValidationIssue, ...]
    readability: ReadabilityReport

    @property
    def ok(self) -> bool:
        """No W3C-level errors (readability violations do not make a file invalid)."""
        return not self.errors

    @property
    def violations(self) -> list[tuple[CueStats, str]]:
        """Readability violations (cue, rule)."""
        return self.readability.violations

    @property
    def error_summary(self) -> dict[str, int]:
        return dict(Counter(e.rule for e in self.errors))

    @property
    def summary(self) -> dict[str, dict[str, int]]:
        """{"errors": rule -> count, "warnings": rule -> count, "readability": rule -> count}."""
        return {
            "errors": self.error_summary,
            "warnings": dict(Counter(w.rule for w in self.warnings)),
            "readability": self.readability.summary,
        }

    def format(self) -> str:
        out = [str(e) for e in self.errors] + [f"warning: {w}" for w in self.warnings]
        out.append(
            f"{'valid' if self.ok else 'INVALID'} WebVTT: {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings; {self.readability.format()}"
        )
        return "\n".join(out)


def _load_text(path_or_text: str | bytes | os.PathLike) -> tuple[str | None, list[ValidationIssue]]:
    if isinstance(path_or_text, os.PathLike) or (
        isinstance(path_or_text, str) and "\n" not in path_or_text and not path_or_text.startswith("WEBVTT")
    ):
        p = Path(path_or_text)
        if not p.is_file():
            raise CaptionFileError(f"caption file not found: {p}")
        data = p.read_bytes()
    elif isinstance(path_or_text, bytes):
        data = path_or_text
    elif isinstance(path_or_text, str):
        return path_or_text.removeprefix("\ufeff"), []
    else:
        raise TypeError(f"validate_vtt takes a path, str or bytes, not {type(path_or_text).__name__}")
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [ValidationIssue(line, "encoding", f"not UTF-8 (byte {exc.start}: {exc.reason})")]


def _check_cue_text(line: str, no: int, errors: list[ValidationIssue]) -> None:
    for m in re.finditer("&", line):
        if not _CHAR_REF.match(line, m.start()):
            errors.append(ValidationIssue(no, "unescaped_ampersand", f"'&' at column {m.start() + 1} must be '&amp;'"))
    for m in re.finditer("<", line):
        if not _CUE_TAG.match(line, m.start()):
            errors.append(
                ValidationIssue(no, "unescaped_lt", f"'<' at column {m.start() + 1} is not a cue tag; write '&lt;'")
            )
    if "-->" in line:
        errors.append(ValidationIssue(no, "arrow_in_text", "cue text contains '-->' (a missing blank line?)"))


def validate_vtt(path_or_text: str | bytes | os.PathLike, options: CaptionOptions | None = None) -> ValidationReport:
    """Validate a WebVTT file (path) or text: W3C-level errors with line numbers plus readability.

    A ``str`` that starts with ``WEBVTT`` or contains a newline is taken as
    the file's text, otherwise as a path.  Works on files webvtt-py cannot
    parse: the text is read line by line here.
    """
    o = (options or CaptionOptions()).validate()
    text, errors = _load_text(path_or_text)
    warnings: list[ValidationIssue] = []
    if text is None:
        return ValidationReport(tuple(errors), (), _stats([], o))
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()

    # header
    first = lines[0] if lines else ""
    if not (first == "WEBVTT" or (first.startswith("WEBVTT") and first[6] in " \t")):
        msg = "file is empty" if not lines else f"first line must be 'WEBVTT', found {first[:30]!r}"
        errors.append(ValidationIssue(1, "header", msg))

    # blocks: (first line number, lines); the header block is lines up to the first blank line
    blocks: list[tuple[int, list[str]]] = []
    cur: list[str] = []
    cur_start = 1
    for no, line in enumerate(lines, start=1):
        if line == "":
            if cur:
                blocks.append((cur_start, cur))
                cur = []
            continue
        if not cur:
            cur_start = no
        cur.append(line)
    if cur:
        blocks.append((cur_start, cur))
    if not lines:
        return ValidationReport(tuple(errors), (), _stats([], o))

    items: list[tuple[float, float, tuple[str, ...], int]] = []
    header = blocks[0] if blocks and blocks[0][0] == 1 else None
    if header is not None:
        for off, line in enumerate(header[1][1:], start=1):
            if "-->" in line:
                errors.append(
                    ValidationIssue(1 + off, "blank_line", "a cue starts inside the header: add a blank line after the header")
                )
                break
    prev_start: float | None = None
    prev_end: float | None = None
    seen_cue = False
    prev_was_cue = False
    for start_no, block in blocks:
        if header is not None and start_no == 1:
            continue
        head = block[0]
        if head.startswith("NOTE") and (len(head) == 4 or head[4] in " \t"):
            for off, line in enumerate(block):
                if "-->" in line:
                    errors.append(ValidationIssue(start_no + off, "arrow_in_text", "a comment cannot contain '-->'"))
            prev_was_cue = False
            continue
        if head in ("STYLE", "REGION") or (head.startswith(("STYLE", "REGION")) and head.split()[0] in ("STYLE", "REGION")):
            if seen_cue:
                errors.append(ValidationIssue(start_no, "blank_line", f"{head.split()[0]} block after the first cue"))
            prev_was_cue = False
            continue
        # find the timing line: first or second line
        t_idx = 0 if "-->" in block[0] else (1 if len(block) > 1 and "-->" in block[1] else None)
        if t_idx is None:
            if prev_was_cue:
                errors.append(
                    ValidationIssue(start_no, "blank_line", "blank line inside cue text (text after it is dropped)")
                )
            else:
                errors.append(ValidationIssue(start_no, "timing_line", f"block without a cue timing line: {head[:40]!r}"))
            continue
        seen_cue = True
        prev_was_cue = True
        tno = start_no + t_idx
        timing = block[t_idx]
        payload = block[t_idx + 1 :]
        # a second timing line inside the block means a blank line is missing
        for off, line in enumerate(payload, start=t_idx + 1):
            if "-->" in line and _TIMING.match(line.strip()):
                errors.append(ValidationIssue(start_no + off, "blank_line", "missing blank line before this cue"))
                payload = block[t_idx + 1 : off]
                break
        for off, line in enumerate(payload, start=t_idx + 1):
            _check_cue_text(line, start_no + off, errors)
        m = _TIMING.match(timing)
        if not m:
            errors.append(
                ValidationIssue(tno, "timing_line", f"expected 'start --> end' with spaces around '-->', got {timing!r}")
            )
            continue
        s_txt, e_txt = m.group(1), m.group(4)
        start, end = _vtt_seconds(s_txt), _vtt_seconds(e_txt)
        bad_ts = False
        for ts, val in ((s_txt, start), (e_txt, end)):
            if val is None:
                hint = " (SRT uses ',' before milliseconds; WebVTT uses '.')" if "," in ts else ""
                errors.append(ValidationIssue(tno, "timestamp", f"invalid timestamp {ts!r}; use hh:mm:ss.ttt or mm:ss.ttt{hint}"))
                bad_ts = True
        if bad_ts:
            continue
        assert start is not None and end is not None
        if end <= start:
            errors.append(ValidationIssue(tno, "end_before_start", f"cue ends ({e_txt}) at or before its start ({s_txt})"))
        if prev_start is not None and start < prev_start:
            errors.append(ValidationIssue(tno, "cue_order", f"cue starts ({s_txt}) before the previous cue's start"))
        elif prev_end is not None and start < prev_end - 1e-9:
            errors.append(ValidationIssue(tno, "overlap", f"cue starts ({s_txt}) before the previous cue ends"))
        if not any(line.strip() for line in payload):
            warnings.append(ValidationIssue(tno, "empty_cue", "cue has no text"))
        prev_start = start if prev_start is None else max(prev_start, start)
        prev_end = end if prev_end is None else max(prev_end, end)
        shown = tuple(
            t for t in (html.unescape(_TAG_ANY.sub("", line)).strip() for line in payload) if t
        )
        items.append((start, end, shown, tno))
    return ValidationReport(tuple(errors), tuple(warnings), _stats(items, o))


# --------------------------------------------------------------------------- plotting
def plot_readability(data: Any, ax: Any = None, options: CaptionOptions | None = None) -> Any:
    """Plot reading speed over time: one bar per cue at its cps, the limit line, violations marked.

    *data* is a :class:`ReadabilityReport`, a :class:`ValidationReport` or a
    sequence of :class:`Cue` (checked with *options*).  Returns the axes.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", extra="notebooks", purpose="plotting readability") from exc
    if isinstance(data, ValidationReport):
        report = data.readability
    elif isinstance(data, ReadabilityReport):
        report = data
    else:
        report = readability(list(data), options)
    o = report.options
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    ok = [s for s in report.cues if not s.violations]
    badc = [s for s in report.cues if s.violations]
    finite = lambda s: min(s.cps, 4 * o.max_cps)  # noqa: E731 - zero-length cues drawn at the top
    ax.hlines([finite(s) for s in ok], [s.start for s in ok], [s.end for s in ok], colors="tab:blue", lw=3, label="cue")
    ax.hlines([finite(s) for s in badc], [s.start for s in badc], [s.end for s in badc], colors="tab:red", lw=3)
    ax.scatter([(s.start + s.end) / 2 for s in badc], [finite(s) for s in badc], marker="x", color="tab:red",
               zorder=3, label=f"violation ({len(badc)})")
    ax.axhline(o.max_cps, color="k", ls="--", lw=1, label=f"max {o.max_cps:g} cps")
    top = max([finite(s) for s in report.cues] + [o.max_cps])
    ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("characters / second")
    ax.set_title("Reading speed per cue")
    ax.legend(loc="upper right", fontsize="small")
    return ax
