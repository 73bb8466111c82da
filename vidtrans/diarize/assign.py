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


def assign_speakers(transcript: Transcript, turns: Sequence[SpeakerTurn] | Diarization) -> Transcript:
    """Give every word a speaker and split segments where the speaker changes.

    Each word takes the speaker whose turns overlap it most; words in gaps
    between turns take the nearest turn.  No word is dropped or reordered.
    Segments without word timings take the speaker overlapping them most.
    The result's ``speaker_turns`` holds *turns*.
    """
    if isinstance(turns, Diarization):
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
