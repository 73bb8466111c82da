"""Cue building: word timestamps -> cues (cue boundaries, line breaking, on-screen timing)."""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..schema import Segment, Transcript, Word, _Record
from .options import _NO_SPACE, _TOL, CaptionOptions, InvalidTranscriptError, _join, _sep

log = logging.getLogger(__name__)


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
    #: a dialogue cue (two speakers, one line each, each line starting with "- "): the raw speaker
    #: of each line; () for a one-speaker cue
    line_speakers: tuple[str | None, ...] = ()
    #: display names of ``line_speakers`` when speaker labels are on
    line_labels: tuple[str | None, ...] = ()
    #: emotion label of the segments the cue's words come from (majority), when known
    emotion: str | None = None
    #: per line of a dialogue cue
    line_emotions: tuple[str | None, ...] = ()

    @property
    def dialogue(self) -> bool:
        """Two speakers share this cue (one line each, with dialogue dashes)."""
        return bool(self.line_speakers)

    @property
    def parts(self) -> list[tuple[str | None, str | None, str]]:
        """(speaker, display label, text) per speaker shown: one for a cue, two for a dialogue cue
        (without the dashes)."""
        if not self.line_speakers:
            return [(self.speaker, self.label, self.text)]
        labels = self.line_labels or (None,) * len(self.lines)
        return [(s, lab, line[2:] if line.startswith("- ") else line)
                for s, lab, line in zip(self.line_speakers, labels, self.lines)]

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



_NO_SPACE_SPLIT = re.compile(f"{_NO_SPACE.pattern}|(?:(?!{_NO_SPACE.pattern}).)+")


@dataclass(slots=True)
class _W:
    start: float
    end: float
    text: str
    speaker: str | None
    probability: float | None = None
    #: the engine wrote a space before this word (faster-whisper's " self" vs "-love")
    space: bool = True
    #: emotion label of the segment the word comes from
    emotion: str | None = None

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
    emotion = seg.emotion.label if seg.emotion is not None and seg.emotion.label else None
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
            out.append(_W(ws, max(ws, we), " ".join(w.text.split()), w.speaker or seg.speaker, w.probability,
                          space=w.text[:1].isspace(), emotion=emotion))
        return out
    # words of the text; in scripts without spaces every character is a word
    tokens = [(t, k == 0) for tok in seg.text.split() for k, t in enumerate(_NO_SPACE_SPLIT.findall(tok))]
    if not tokens:
        return []
    weights = [len(t) + 1 for t, _ in tokens]
    total = sum(weights)
    span = max(end - start, 0.0)
    out, t = [], start
    for (tok, space), wt in zip(tokens, weights):
        d = span * wt / total
        out.append(_W(t, t + d, tok, seg.speaker, space=space, emotion=emotion))
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

    # words carry the engine's leading space (schema.Word): one written without it continues the word
    # before ("self" + "-love", "don" + "'t", "3" + ".5"), except between two characters of a script
    # written without spaces, where a line may break.  Transcripts whose words never carry a space
    # (hand-built, older JSON) are spaced as before.
    spaced = any(w.space for w in raw[1:])
    words: list[_W] = []
    for w in raw:
        if not w.text:
            continue
        p = words[-1] if words else None
        if (
            p is not None and spaced and not w.space and w.start <= p.end + 0.5
            and not (_NO_SPACE.match(p.text[-1]) and _NO_SPACE.match(w.text[0]))
        ):
            p.text += w.text
            p.end = max(p.end, w.end)
            if w.probability is not None:
                p.probability = w.probability if p.probability is None else min(p.probability, w.probability)
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


def _reading_shortfall(chars: int, start: float, room_end: float, o: CaptionOptions) -> float:
    """Seconds a cue of *chars* starting at *start* lacks to be read (min duration, max cps) before *room_end*."""
    need = min(max(o.min_duration, chars / o.max_cps), o.max_duration)
    return max(0.0, need - (room_end - start))


def _split_run(
    words: list[_W], options: CaptionOptions, reserve: int, tail_room: float = math.inf, every: int = 0
) -> list[tuple[int, int, tuple[str, ...]]]:
    """Choose cue boundaries in one stretch of same-speaker speech (dynamic programme).

    *tail_room*: seconds after the last word that its cue may stay on screen (until the next cue);
    *reserve*: characters kept free on the first line of the first cue (SRT speaker label),
    *every*: on the first line of every cue (emotion tag).
    A cue that could not be read in the time it can have (too short, too fast) costs more than a
    cue boundary, so such words go with their neighbours when the line rules allow it.
    """
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
            lines, line_cost, fits = sc.break_lines(i, j, (reserve if i == 0 else 0) + every)
            if not fits and not single:
                continue
            c = best[i] + 3.0 + line_cost + 1.5 * inner_sentences
            if j < n:
                c += sc.cue_cost[j]
            room_end = (words[j].start - o.min_gap) if j < n else words[n - 1].end + tail_room
            if _reading_shortfall(sc.length(i, j), words[i].start, room_end, o) > _TOL:
                c += 6.0  # a cue too short or too fast to read in the time it can have
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
    runs = _rejoin_fragments(runs, options)

    media_end = transcript.duration if transcript.duration and transcript.duration > 0 else math.inf
    if options.hold_last_cue:  # the last cue may stay after the media ends (see CaptionOptions)
        media_end = math.inf
    emotions = {w.emotion for w in words if w.emotion}
    tag_width = max((len(_emotion_tag(e)) for e in emotions), default=0) if options.emotion_captions == "tag" else 0
    raw: list[_Raw] = []
    last_speaker: object = object()
    for r, run in enumerate(runs):
        changed = run[0].speaker != last_speaker
        last_speaker = run[0].speaker
        label = names.get(run[0].speaker) if run[0].speaker else None
        reserve = len(_srt_prefix(label)) if (label and changed) else 0
        # the run's last cue may last until the next run's speech (plus the next cue's allowed delay)
        tail = (runs[r + 1][0].start - options.min_gap + options.max_start_delay if r + 1 < len(runs)
                else media_end) - run[-1].end
        for k, (i, j, lines) in enumerate(_split_run(run, options, reserve, max(tail, 0.0), tag_width)):
            ws = run[i:j]
            raw.append(_Raw(ws[0].start, ws[-1].end, lines, ws, changed and k == 0))
    if options.dialogue_cues and options.max_lines >= 2:
        raw = _pair_dialogue(raw, options, media_end, tag_width)
    if options.extend_for_reading:
        hard_end = transcript.duration if (not options.hold_last_cue and transcript.duration) else math.inf
        raw = _Restructure(options, hard_end, names, tag_width).run(raw)
    for r in raw:
        _set_emotion(r, options)

    cues = _time_cues([(r.start, r.end, r.lines) for r in raw], options, None if options.hold_last_cue else transcript.duration)
    out = []
    shown: object = object()  # the speaker of the last line on screen
    for (start, end), r in zip(cues, raw):
        spk = r.words[0].speaker
        if r.line_speakers:
            line_labels = tuple(names.get(s) if s else None for s in r.line_speakers)
            changed, shown = True, r.line_speakers[-1]
        else:
            line_labels = ()
            changed, shown = spk != shown, spk
        out.append(
            Cue(
                start=start,
                end=end,
                lines=r.lines,
                speaker=spk,
                words=_cue_words(r.words),
                label=names.get(spk) if spk else None,
                speaker_changed=changed and spk is not None,
                line_speakers=r.line_speakers,
                line_labels=line_labels,
                emotion=r.emotion,
                line_emotions=r.line_emotions,
            )
        )
    log.debug("built %d cues from %d words", len(out), len(words))
    return out


def _rejoin_fragments(runs: list[list[_W]], o: CaptionOptions) -> list[list[_W]]:
    """A run cut off by a pause that is too short to be read before the next speech ("I'm" just
    before another speaker) goes back to the same speaker's run before it; the cue DP may still
    break at the pause if that reads better."""
    out: list[list[_W]] = []
    for k, run in enumerate(runs):
        if out and out[-1][-1].speaker == run[0].speaker:
            room_end = (runs[k + 1][0].start - o.min_gap) if k + 1 < len(runs) else math.inf
            chars = len(_join([w.text for w in run]))
            if _reading_shortfall(chars, run[0].start, room_end, o) > _TOL:
                out[-1].extend(run)
                continue
        out.append(run)
    return out


@dataclass(slots=True)
class _Raw:
    """A cue before its final timing: speech span, lines, words; line_speakers for a dialogue cue."""

    start: float
    end: float
    lines: tuple[str, ...]
    words: list[_W]
    changed: bool
    line_speakers: tuple[str | None, ...] = ()
    emotion: str | None = None
    line_emotions: tuple[str | None, ...] = ()


def _majority(labels: Iterable[str | None]) -> str | None:
    counts = Counter(x for x in labels if x)
    return counts.most_common(1)[0][0] if counts else None


def _emotion_tag(label: str) -> str:
    return f"[{label}] "


def _set_emotion(r: _Raw, o: CaptionOptions) -> None:
    """The cue's emotion: the label most of its words' segments carry (per line in a dialogue cue);
    with ``emotion_captions="tag"`` the lines get a ``[label] `` prefix (after the dialogue dash)."""
    r.emotion = _majority(w.emotion for w in r.words)
    if r.line_speakers:
        r.line_emotions = tuple(_majority(w.emotion for w in r.words if w.speaker == s) for s in r.line_speakers)
    if o.emotion_captions != "tag":
        return
    if r.line_speakers:
        r.lines = tuple(
            f"- {_emotion_tag(e)}{line[2:]}" if e else line for e, line in zip(r.line_emotions, r.lines)
        )
    elif r.emotion:
        r.lines = (_emotion_tag(r.emotion) + r.lines[0],) + r.lines[1:]


def _pair_dialogue(raw: list[_Raw], o: CaptionOptions, media_end: float, tag_width: int = 0) -> list[_Raw]:
    """Put short turns of a dialogue into two-speaker cues where that makes them readable.

    Netflix/BBC dual-speaker convention: two speakers share a cue, one line each, each line
    starting with a dash.  Two neighbouring cues of different speakers are paired when each fits
    on one line with its dash, they are spoken close together, and pairing lowers the number of
    cues that cannot be read in the time they can have (dynamic programme over the cue sequence;
    a paired cue costs a little more than two readable single ones, so pairs are only made
    where they help).
    """
    if len(raw) < 2:
        return raw
    raw = _split_for_dialogue(raw, o, media_end, tag_width)
    n = len(raw)
    width = o.max_chars_per_line
    texts = [_join(r.lines) for r in raw]

    def room_end(k: int) -> float:
        """Where cue k's time ends at the latest: the next cue's speech, or a little later when the
        next cue has time to spare (it may start up to max_start_delay late; see _time_cues)."""
        if k + 1 >= n:
            return media_end
        nxt = raw[k + 1]
        after = (raw[k + 2].start - o.min_gap) if k + 2 < n else media_end
        spare = (after - nxt.start) - min(max(o.min_duration, len(texts[k + 1]) / o.max_cps), o.max_duration)
        return nxt.start - o.min_gap + max(0.0, min(o.max_start_delay, spare))

    def single_cost(k: int) -> float:
        return 1.0 if _reading_shortfall(len(texts[k]), raw[k].start, room_end(k), o) > _TOL else 0.0

    def pair_cost(k: int) -> float | None:
        a, b = raw[k], raw[k + 1]
        sa, sb = a.words[0].speaker, b.words[0].speaker
        if a.line_speakers or sa == sb or sa is None or sb is None:
            return None
        if len(texts[k]) + 2 + tag_width > width or len(texts[k + 1]) + 2 + tag_width > width:
            return None
        if b.start - a.end > o.dialogue_max_gap or b.end - a.start > o.max_duration:
            return None
        chars = len(texts[k]) + len(texts[k + 1]) + 5
        bad = _reading_shortfall(chars, a.start, room_end(k + 1), o) > _TOL
        return (1.0 if bad else 0.0) + 0.25

    best = [0.0] * (n + 1)
    choice = [1] * (n + 1)
    for k in range(n - 1, -1, -1):
        best[k], choice[k] = best[k + 1] + single_cost(k), 1
        if k + 1 < n:
            pc = pair_cost(k)
            if pc is not None and best[k + 2] + pc < best[k] - 1e-9:
                best[k], choice[k] = best[k + 2] + pc, 2
    out, k = [], 0
    while k < n:
        if choice[k] == 2:
            a, b = raw[k], raw[k + 1]
            out.append(_Raw(a.start, b.end, (f"- {texts[k]}", f"- {texts[k + 1]}"), a.words + b.words, True,
                            (a.words[0].speaker, b.words[0].speaker)))
            k += 2
        else:
            out.append(raw[k])
            k += 1
    return out


def _split_for_dialogue(raw: list[_Raw], o: CaptionOptions, media_end: float, tag_width: int) -> list[_Raw]:
    """A short turn that cannot be read alone, followed by another speaker's cue too long to share
    a cue with it ("Okay," / "does anyone want to see Steve's feedback..."): split the long cue so
    its first words can form the other line of a dialogue cue, where both parts are then readable."""
    out = list(raw)
    k = 0
    limit = o.max_chars_per_line - 2 - tag_width
    while k + 1 < len(out):
        a, b = out[k], out[k + 1]
        after = (out[k + 2].start - o.min_gap) if k + 2 < len(out) else media_end
        ta = _join(a.lines)
        if (
            a.line_speakers or b.line_speakers or a.words[0].speaker == b.words[0].speaker
            or a.words[0].speaker is None or b.words[0].speaker is None
            or len(ta) > limit or len(_join(b.lines)) <= limit or b.start - a.end > o.dialogue_max_gap
            or _reading_shortfall(len(ta), a.start, b.start - o.min_gap, o) <= _TOL
        ):
            k += 1
            continue
        sc = _Scorer(b.words, o)
        best = None
        for m in range(1, len(b.words)):
            head = sc.length(0, m)
            if head > limit:
                break
            lines, cost, fits = sc.break_lines(m, len(b.words))
            tail_start = b.words[m].start
            if not fits or b.words[m - 1].end - a.start > o.max_duration:
                continue
            if _reading_shortfall(len(ta) + head + 5, a.start, tail_start - o.min_gap, o) > _TOL:
                continue
            if _reading_shortfall(len(_join(lines)), tail_start, after, o) > _TOL:
                continue
            c = sc.line_cost[m] + cost
            if best is None or c < best[0]:
                best = (c, m, lines)
        if best is None:
            k += 1
            continue
        _, m, lines = best
        head_lines = (_join([w.text for w in b.words[:m]]),)
        out[k + 1:k + 2] = [
            _Raw(b.words[0].start, b.words[m - 1].end, head_lines, b.words[:m], b.changed),
            _Raw(b.words[m].start, b.end, lines, b.words[m:], False),
        ]
        k += 2
    return out


def _cue_words(ws: Sequence[_W]) -> tuple[Word, ...]:
    """The cue's words in the schema's convention: each with the space written before it (if any)."""
    out, prev = [], None
    for w in ws:
        lead = (" " if not _NO_SPACE.match(w.text[0]) else "") if prev is None else _sep(prev, w.text)
        out.append(Word(w.start, w.end, lead + w.text, w.probability, w.speaker))
        prev = w.text
    return tuple(out)


def _reading_times(
    raw, o: CaptionOptions, hard_end: float, prev_end: float = -math.inf
) -> tuple[list[float], list[float], list[bool]]:
    """Times before gap closing: min_gap kept, then (with ``extend_for_reading``) the reading chain.

    Returns (starts, ends, readable per cue).  *prev_end*: end of the cue before *raw* (windows).
    """
    frame = 1 / 25
    n = len(raw)
    starts = [r[0] for r in raw]
    ends = [r[1] for r in raw]
    if n and starts[0] < prev_end + o.min_gap:
        starts[0] = prev_end + o.min_gap
        ends[0] = max(ends[0], starts[0] + frame)
    speech = [r[0] for r in raw]
    # 1. keep min_gap before the next cue (trim the end of speech, or push the next start)
    for k in range(n - 1):
        limit = starts[k + 1] - o.min_gap
        if ends[k] > limit:
            ends[k] = max(limit, starts[k] + frame)
            starts[k + 1] = max(starts[k + 1], ends[k] + o.min_gap)
            ends[k + 1] = max(ends[k + 1], starts[k + 1] + frame)
    needs = [min(max(o.min_duration, len(_join(r[2])) / o.max_cps), o.max_duration) for r in raw]
    if not o.extend_for_reading:
        return starts, ends, [e - s >= need - _TOL for s, e, need in zip(starts, ends, needs)]
    # 2. reading time (min duration, max cps): each cue extends into the silence after it, and a
    # cue may start up to max_start_delay after its speech so the one before can be read
    return _chain_times(starts, ends, speech, needs, o, hard_end)


def _time_cues(raw, o: CaptionOptions, media_end: float | None) -> list[tuple[float, float]]:
    """Final on-screen times: gaps, reading time (a chain of delayed starts), gap closing, max duration."""
    n = len(raw)
    hard_end = media_end if media_end and media_end > 0 else math.inf
    starts, ends, _ = _reading_times(raw, o, hard_end)
    for k in range(n):
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


def _chain_times(
    starts: list[float], ends: list[float], speech: list[float], needs: list[float], o: CaptionOptions,
    hard_end: float,
) -> tuple[list[float], list[float], list[bool]]:
    """On-screen times that leave the fewest cues without their reading time (*needs*).

    Fast speech is shown as a chain: a cue stays up until it has been read, and the next one starts
    when it ends, but never more than ``max_start_delay`` after its own speech (a later start
    would count as a failure too).  Dynamic programme over the cues with, per cue, the Pareto set
    of (cues failed so far, end of this cue): the earliest end is best for everything after it, so
    the result is the fewest failures for these cues; ties go to the earliest (least delayed)
    times.  Cues that still fail get all the time left before the next cue.
    """
    n = len(starts)
    frame = 1 / 25
    #: a state this many failures above the best one is dropped (bounds the work per cue)
    spread = 3
    # states[k]: list of (failures, end, start, state index in states[k-1], ok)
    states: list[list[tuple[int, float, float, int, bool]]] = []
    prev: list[tuple[int, float, float, int, bool]] = [(0, -math.inf, 0.0, -1, True)]
    for k in range(n):
        latest = max(starts[k], speech[k] + o.max_start_delay)
        cand: list[tuple[int, float, float, int, bool]] = []
        late: list[tuple[int, float, float, int, bool]] = []
        for si, (fails, prev_end, _, _, _) in enumerate(prev):
            a = max(starts[k], prev_end + o.min_gap)
            if a > latest + _TOL:  # too late: the cue before must give way (it fails instead)
                late.append((fails + 1, max(a + frame, ends[k]), a, si, False))
                continue
            room = hard_end if k + 1 == n else math.inf
            ok_end = max(a + needs[k], min(ends[k], a + o.max_duration))
            if ok_end <= room + _TOL:
                cand.append((fails, ok_end, a, si, True))
            cand.append((fails + 1, max(a + frame, ends[k]), a, si, False))
        cand = cand or late
        cand.sort(key=lambda c: (c[0], c[1]))
        front: list[tuple[int, float, float, int, bool]] = []
        for c in cand:  # keep states not dominated by one with fewer failures and an earlier end
            if not front or (c[1] < front[-1][1] - 1e-9 and c[0] <= front[0][0] + spread):
                front.append(c)
        states.append(front)
        prev = front
    best = min(range(len(prev)), key=lambda i: (prev[i][0], prev[i][1]))
    out_s, out_e, oks = [0.0] * n, [0.0] * n, [True] * n
    for k in range(n - 1, -1, -1):
        _, e, a, si, ok = states[k][best]
        out_s[k], out_e[k], oks[k] = a, e, ok
        best = si
    for k in range(n):  # a failed cue keeps what it can get before the next one
        if not oks[k]:
            nxt = out_s[k + 1] - o.min_gap if k + 1 < n else hard_end
            out_e[k] = max(out_e[k], min(out_s[k] + needs[k], nxt))
    return out_s, out_e, oks


def _fails(raw: Sequence[_Raw], o: CaptionOptions, hard_end: float, prev_end: float = -math.inf) -> int:
    return sum(1 for ok in _reading_times([(r.start, r.end, r.lines) for r in raw], o, hard_end, prev_end)[2] if not ok)


class _Restructure:
    """Local changes of cue boundaries where the reading chain (:func:`_chain_times`) leaves cues
    that cannot be read: around each such cue, try splitting the stretch of that speaker's cues
    around it again with the chain's timing in view (:meth:`resplit`), moving a boundary between
    two cues of one speaker by a few words, merging them, splitting a dialogue cue into its two
    turns or pairing two turns into one; keep the change that leaves the fewest unreadable cues
    (then the best breaks), only when it lowers their number over the whole file.

    Cue boundaries chosen one stretch at a time (:func:`_split_run`, :func:`_pair_dialogue`) only
    see the next cue's speech; this sees the timing of the whole chain of cues that follow each
    other closely, so the result does not hinge on one word time or one diarization turn.
    """

    #: cues on each side of an unreadable cue that may change, and the window scored around them
    REACH = (3, 2)
    WINDOW = 8
    SHIFT = 4
    #: one-speaker cues on each side of an unreadable one split again together
    STRETCH = 3

    def __init__(self, o: CaptionOptions, hard_end: float, names: dict[str, str], tag_width: int):
        self.o, self.hard_end, self.names, self.tag_width = o, hard_end, names, tag_width
        #: a new cue never spans a longer silence: its words would be shown that long before they
        #: are spoken (the same bound as a late start)
        self.max_pause = math.inf if o.pause_threshold is None else max(o.pause_threshold, o.max_start_delay)
        #: on-screen end of every cue in the current timing (set by :meth:`run`)
        self.ends: list[float] = []

    def _spans_pause(self, words: Sequence[_W]) -> bool:
        return any(b.start - a.end > self.max_pause for a, b in zip(words, words[1:]))

    # -- building cues
    def single(self, words: list[_W], prev: _Raw | None) -> tuple[_Raw, float] | None:
        """A one-speaker cue of *words* (None when its lines do not fit) and its line cost."""
        spk = words[0].speaker
        if (any(w.speaker != spk for w in words) or words[-1].end - words[0].start > self.o.max_duration
                or self._spans_pause(words)):
            return None
        shown = (prev.line_speakers[-1] if prev.line_speakers else prev.words[0].speaker) if prev else object()
        changed = spk != shown
        label = self.names.get(spk) if spk else None
        reserve = len(_srt_prefix(label)) if (label and changed) else 0
        lines, cost, fits = _Scorer(words, self.o).break_lines(0, len(words), reserve + self.tag_width)
        if not fits:
            return None
        return _Raw(words[0].start, words[-1].end, lines, list(words), changed), cost

    def pair(self, a: _Raw, b: _Raw) -> _Raw | None:
        o = self.o
        sa, sb = a.words[0].speaker, b.words[0].speaker
        if a.line_speakers or b.line_speakers or sa == sb or sa is None or sb is None:
            return None
        ta, tb = _join(a.lines), _join(b.lines)
        if max(len(ta), len(tb)) + 2 + self.tag_width > o.max_chars_per_line:
            return None
        if b.start - a.end > o.dialogue_max_gap or b.end - a.start > o.max_duration:
            return None
        return _Raw(a.start, b.end, (f"- {ta}", f"- {tb}"), a.words + b.words, True, (sa, sb))

    def unpair(self, d: _Raw, prev: _Raw | None) -> list[tuple[_Raw, float]] | None:
        sa = d.line_speakers[0]
        wa = [w for w in d.words if w.speaker == sa]
        wb = d.words[len(wa):]
        if not wb or any(w.speaker == sa for w in wb):
            return None
        a = self.single(wa, prev)
        b = self.single(wb, a[0]) if a else None
        return [a, b] if a and b else None

    def resplit(self, raw: list[_Raw], f: int):
        """Cue f's stretch of one-speaker cues of the same speaker (a few on each side) split again,
        choosing the boundaries with the reading chain in view: dynamic programme over the words
        whose states are (cost, end on screen of the last cue), Pareto-pruned."""
        o = self.o
        if raw[f].line_speakers:
            return None
        spk = raw[f].words[0].speaker
        same = lambda r: not r.line_speakers and r.words[0].speaker == spk  # noqa: E731
        lo = f
        while lo > 0 and f - lo < self.STRETCH and same(raw[lo - 1]):
            lo -= 1
        hi = f + 1
        while hi < len(raw) and hi - f <= self.STRETCH and same(raw[hi]):
            hi += 1
        words = [w for r in raw[lo:hi] for w in r.words]
        prev = raw[lo - 1] if lo > 0 else None
        prev_end = self.ends[lo - 1] if lo > 0 else -math.inf
        first = self.single(words[:1], prev)
        if first is None:
            return None
        changed = first[0].changed
        label = self.names.get(spk) if spk else None
        reserve = len(_srt_prefix(label)) if (label and changed) else 0
        nxt = raw[hi].start + o.max_start_delay - o.min_gap if hi < len(raw) else math.inf
        sc = _Scorer(words, o)
        n = len(words)
        max_chars = o.max_lines * (o.max_chars_per_line + 1)
        frame = 1 / 25
        # states[j]: (cost, end, i, state index at i, lines)
        states: list[list[tuple[float, float, int, int, tuple[str, ...]]]] = [[(0.0, prev_end, -1, -1, ())]]
        for j in range(1, n + 1):
            cand = []
            inner = 0
            for i in range(j - 1, -1, -1):
                if i < j - 1:
                    if sc.sent_end[i]:
                        inner += 1
                    if (sc.length(i, j) > max_chars + reserve or words[j - 1].end - words[i].start > o.max_duration
                            or words[i + 1].start - words[i].end > self.max_pause):
                        break
                lines, line_cost, fits = sc.break_lines(i, j, (reserve if i == 0 else 0) + self.tag_width)
                if not fits:
                    continue
                need = min(max(o.min_duration, sc.length(i, j) / o.max_cps), o.max_duration)
                base = 3.0 + line_cost + 1.5 * inner + (sc.cue_cost[j] if j < n else 0.0)
                for si, (c0, e0, *_rest) in enumerate(states[i]):
                    a = max(words[i].start, e0 + o.min_gap)
                    end = max(a + need, min(words[j - 1].end, a + o.max_duration))
                    c = c0 + base
                    if a > words[i].start + o.max_start_delay + _TOL:
                        c += 6.0
                        end = max(a + frame, words[j - 1].end)
                    if j == n and end > nxt + _TOL:
                        c += 6.0
                    cand.append((c, end, i, si, lines))
            cand.sort(key=lambda t: (t[0], t[1]))
            front: list[tuple[float, float, int, int, tuple[str, ...]]] = []
            for t in cand:
                if not front or t[1] < front[-1][1] - 1e-9:
                    front.append(t)
                    if len(front) >= 6:
                        break
            if not front:
                return None
            states.append(front)
        cost = states[n][0][0]
        cuts, j, si = [], n, 0
        while j > 0:
            _, _, i, psi, lines = states[j][si]
            cuts.append((i, j, lines))
            j, si = i, psi
        new = []
        for k, (i, j, lines) in enumerate(reversed(cuts)):
            ws = words[i:j]
            new.append(_Raw(ws[0].start, ws[-1].end, lines, ws, changed and k == 0))
        return lo, hi - lo, new, cost

    def candidates(self, raw: list[_Raw], k: int):
        """(first index, number of cues replaced, new cues, cost) for changes at cues k, k+1."""
        o = self.o
        prev = raw[k - 1] if k > 0 else None
        a = raw[k]
        if a.line_speakers:
            parts = self.unpair(a, prev)
            if parts:
                yield k, 1, [r for r, _ in parts], 0.0 + sum(c for _, c in parts)
        if k + 1 >= len(raw):
            return
        b = raw[k + 1]
        if o.dialogue_cues and o.max_lines >= 2:
            d = self.pair(a, b)
            if d is not None:
                yield k, 2, [d], 0.25
        if a.line_speakers or b.line_speakers or a.words[0].speaker != b.words[0].speaker:
            return
        words = a.words + b.words
        sc = _Scorer(words, o)
        m0 = len(a.words)
        merged = self.single(words, prev)
        if merged:
            yield k, 2, [merged[0]], merged[1] - 3.0
        for m in range(max(1, m0 - self.SHIFT), min(len(words) - 1, m0 + self.SHIFT) + 1):
            if m == m0:
                continue
            x = self.single(words[:m], prev)
            y = self.single(words[m:], x[0]) if x else None
            if x and y:
                yield k, 2, [x[0], y[0]], x[1] + y[1] + sc.cue_cost[m]

    def run(self, raw: list[_Raw]) -> list[_Raw]:
        """Sweep the unreadable cues in time order (a few rounds); each change is kept only when it
        lowers the number of unreadable cues of the whole file."""
        o = self.o
        for _ in range(3):
            changed = False
            _, self.ends, oks = _reading_times([(r.start, r.end, r.lines) for r in raw], o, self.hard_end)
            total = oks.count(False)
            f = 0
            while total and f < len(raw):
                if oks[f]:
                    f += 1
                    continue
                trial = self.improve(raw, f)
                if trial is not None:
                    raw, changed = trial
                    _, self.ends, oks = _reading_times([(r.start, r.end, r.lines) for r in raw], o, self.hard_end)
                    total = oks.count(False)
                f += 1
            if not changed or not total:
                break
        return raw

    def improve(self, raw: list[_Raw], f: int) -> tuple[list[_Raw], bool] | None:
        """The best change near unreadable cue f that lowers the file's unreadable cues, or None."""
        o = self.o
        lo = max(0, f - self.WINDOW)
        hi = min(len(raw), f + self.WINDOW)
        prev_end = self.ends[lo - 1] if lo > 0 else -math.inf
        base = _fails(raw[lo:hi], o, self.hard_end, prev_end)
        options = []
        changes = list(self.candidates_at(raw, f))
        for i, n_old, new, cost in changes:
            if i < lo or i + n_old > hi:
                continue
            fails = _fails(raw[lo:i] + new + raw[i + n_old:hi], o, self.hard_end, prev_end)
            if fails < base:
                options.append((fails, cost, i, n_old, new))
        if not options:
            return None
        total = _fails(raw, o, self.hard_end)
        for _, _, i, n_old, new in sorted(options, key=lambda t: (t[0], t[1]))[:3]:
            trial = raw[:i] + new + raw[i + n_old:]
            if _fails(trial, o, self.hard_end) < total:
                return trial, True
        return None

    def candidates_at(self, raw: list[_Raw], f: int):
        rs = self.resplit(raw, f)
        if rs is not None:
            i, n_old, new, cost = rs
            yield i, n_old, new, cost - 3.0 * len(new)
        for k in range(max(0, f - self.REACH[0]), min(len(raw), f + self.REACH[1])):
            yield from self.candidates(raw, k)
