"""Word-level speaker assignment: every word gets a speaker, segments split at speaker changes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from ..schema import Segment, SpeakerTurn, Transcript, Word, join_words
from ._base import Diarization


# --------------------------------------------------------------------------- word assignment
def exclusive_turns(turns: Iterable[SpeakerTurn]) -> list[SpeakerTurn]:
    """One speaker at a time: in overlaps the turn that started last wins until it ends."""
    turns = sorted(turns, key=lambda t: (t.start, t.end))
    cuts = sorted({x for t in turns for x in (t.start, t.end)})
    out: list[SpeakerTurn] = []
    for a, b in zip(cuts, cuts[1:]):
        active = [t for t in turns if t.start <= a and t.end >= b]
        if not active:
            continue
        who = max(active, key=lambda t: t.start).speaker
        if out and out[-1].speaker == who and abs(out[-1].end - a) < 1e-9:
            out[-1] = SpeakerTurn(out[-1].start, b, who)
        else:
            out.append(SpeakerTurn(a, b, who))
    return out


def _word_speaker(w: Word, turns: Sequence[SpeakerTurn], starts: np.ndarray) -> str | None:
    if not turns:
        return None
    lo = max(0, int(np.searchsorted(starts, w.start, side="right")) - 8)
    overlap_by: dict[str, float] = {}
    for t in turns[lo:]:
        if t.start >= w.end:
            break
        ov = min(w.end, t.end) - max(w.start, t.start)
        if ov > 0:
            overlap_by[t.speaker] = overlap_by.get(t.speaker, 0.0) + ov
    if overlap_by:
        return max(overlap_by.items(), key=lambda kv: kv[1])[0]
    # in a gap: nearest turn by distance to the word's midpoint
    mid = 0.5 * (w.start + w.end)
    i = int(np.searchsorted(starts, mid))
    cands = turns[max(0, i - 8) : i + 2]
    return min(cands, key=lambda t: max(t.start - mid, mid - t.end, 0.0)).speaker


def _in_overlap(w: Word, overlaps: np.ndarray) -> bool:
    """At least half of the word lies in overlapped speech."""
    if not len(overlaps) or w.end <= w.start:
        return False
    ov = np.clip(np.minimum(overlaps[:, 1], w.end) - np.maximum(overlaps[:, 0], w.start), 0.0, None).sum()
    return ov >= 0.5 * (w.end - w.start)


def _resolve_overlaps(words: list[Word], full: Sequence[SpeakerTurn], overlaps: np.ndarray) -> list[Word]:
    """Words said while two people talk go to the one who is saying them, where the evidence allows.

    The exclusive speaker of an overlap is the voice that dominates the
    embeddings there, which is often the interrupter rather than the person
    whose sentence the word belongs to.  A speech recogniser transcribes one
    stream, so when the words of the same segment just before (else just
    after) the overlap belong to a speaker who is also talking during it,
    the word stays with that speaker; otherwise the exclusive choice stands.
    """
    fs = np.array([t.start for t in full]) if full else np.zeros(0)
    fe = np.array([t.end for t in full]) if full else np.zeros(0)
    inside = [_in_overlap(w, overlaps) for w in words]
    if not any(inside):
        return words
    out = list(words)
    for i, w in enumerate(words):
        if not inside[i]:
            continue
        mid = 0.5 * (w.start + w.end)
        active = {full[j].speaker for j in np.flatnonzero((fs <= mid) & (fe >= mid))}
        before = next((words[j].speaker for j in range(i - 1, -1, -1) if not inside[j]), None)
        after = next((words[j].speaker for j in range(i + 1, len(words)) if not inside[j]), None)
        context = before if before in active else after if after in active else None
        if context is not None and context != w.speaker:
            out[i] = replace(w, speaker=context)
    return out


def assign_speakers(transcript: Transcript, turns: Sequence[SpeakerTurn] | Diarization) -> Transcript:
    """Give every word a speaker and split segments where the speaker changes.

    Each word takes the speaker whose turns overlap it most; words in gaps
    between turns take the nearest turn.  No word is dropped or reordered.
    Segments without word timings take the speaker overlapping them most.
    Given a :class:`Diarization`, its exclusive turns are used and words in
    overlapped speech go to the overlapping speaker whose sentence they
    continue (see :func:`_resolve_overlaps`).  The result's
    ``speaker_turns`` holds the exclusive turns.
    """
    full: Sequence[SpeakerTurn] = ()
    overlaps = np.zeros((0, 2))
    if isinstance(turns, Diarization):
        full, overlaps = turns.turns, np.asarray(turns.overlaps, dtype=np.float64).reshape(-1, 2)
        turns = turns.exclusive
    turns = sorted(turns, key=lambda t: (t.start, t.end))
    starts = np.array([t.start for t in turns], dtype=np.float64)
    new_segments: list[Segment] = []
    for seg in transcript.segments:
        if not seg.words:
            spk = _word_speaker(Word(seg.start, seg.end, seg.text), turns, starts)
            new_segments.append(replace(seg, speaker=spk))
            continue
        words = [replace(w, speaker=_word_speaker(w, turns, starts)) for w in seg.words]
        if len(overlaps):
            words = _resolve_overlaps(words, full, overlaps)
        groups: list[list[Word]] = []
        for w in words:
            if groups and groups[-1][-1].speaker == w.speaker:
                groups[-1].append(w)
            else:
                groups.append([w])
        if len(groups) == 1:
            new_segments.append(replace(seg, words=tuple(words), speaker=words[0].speaker))
            continue
        for gi, g in enumerate(groups):
            text = join_words(g)
            new_segments.append(
                Segment(
                    start=seg.start if gi == 0 else g[0].start,
                    end=seg.end if gi == len(groups) - 1 else g[-1].end,
                    text=text, words=tuple(g), speaker=g[0].speaker, emotion=seg.emotion,
                    meta={**seg.meta, "split_from": [seg.start, seg.end]},
                )
            )
    return transcript.replace(segments=tuple(new_segments), speaker_turns=tuple(turns))
