"""Per-speaker statistics (talk time, turns, overlap, interruptions)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..schema import SpeakerTurn
from ._base import _merge_intervals


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class SpeakerStats:
    speaker: str
    #: seconds spoken (overlapped speech counts for every speaker in it)
    talk_time: float
    #: talk_time / total speech time of all speakers
    share: float
    turns: int
    longest_turn: float
    mean_turn: float
    #: seconds this speaker talked over someone else
    overlap_time: float
    #: turns that started while another speaker was talking
    interruptions: int
    first_start: float
    #: talk_time / recording duration (when the duration is given)
    recording_share: float | None = None


def speaker_stats(turns: Iterable[SpeakerTurn], duration: float | None = None, merge_gap: float = 0.5) -> list[SpeakerStats]:
    """Per-speaker talk time, share, turn counts and overlap, sorted by talk time.

    Consecutive turns of one speaker separated by less than *merge_gap*
    seconds count as one turn (diarizers split turns at short pauses).
    """
    turns = sorted(turns, key=lambda t: (t.start, t.end))
    by: dict[str, list[tuple[float, float]]] = {}
    for t in turns:
        by.setdefault(t.speaker, []).append((t.start, t.end))
    merged = {s: _merge_intervals(iv, gap=merge_gap) for s, iv in by.items()}
    talk = {s: sum(e - b for b, e in _merge_intervals(iv)) for s, iv in by.items()}
    total = sum(talk.values()) or 1.0
    out = []
    for s, iv in merged.items():
        others = _merge_intervals([x for o, ivs in by.items() if o != s for x in ivs])
        own = _merge_intervals(by[s])
        ov = _intersection_length(own, others)
        inter = sum(1 for b, _ in iv if any(ob < b < oe for ob, oe in others))
        lens = [e - b for b, e in iv]
        out.append(
            SpeakerStats(
                speaker=s, talk_time=round(talk[s], 3), share=round(talk[s] / total, 4), turns=len(iv),
                longest_turn=round(max(lens), 3), mean_turn=round(float(np.mean(lens)), 3),
                overlap_time=round(ov, 3), interruptions=inter, first_start=round(iv[0][0], 3),
                recording_share=round(talk[s] / duration, 4) if duration else None,
            )
        )
    return sorted(out, key=lambda st: -st.talk_time)


def _intersection_length(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


