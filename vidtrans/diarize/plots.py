"""Plots: speaker timeline and talk time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..schema import SpeakerTurn
from .stats import SpeakerStats


# --------------------------------------------------------------------------- plots
def plot_timeline(turns: Iterable[SpeakerTurn], ax=None, overlaps: Iterable[tuple[float, float]] = (), title: str | None = None):
    """Speaker timeline: one row per speaker, a bar per turn; overlaps shaded."""
    import matplotlib.pyplot as plt

    turns = list(turns)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * max(1, len({t.speaker for t in turns}))))
    speakers: list[str] = []
    for t in sorted(turns, key=lambda t: t.start):
        if t.speaker not in speakers:
            speakers.append(t.speaker)
    colors = plt.get_cmap("tab10")
    for i, s in enumerate(speakers):
        bars = [(t.start, t.duration) for t in turns if t.speaker == s]
        ax.broken_barh(bars, (i - 0.4, 0.8), color=colors(i % 10))
    for a, b in overlaps:
        ax.axvspan(a, b, color="0.5", alpha=0.25, lw=0)
    ax.set_yticks(range(len(speakers)), speakers)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    return ax


def plot_talk_time(stats: Sequence[SpeakerStats], ax=None):
    """Horizontal bars of talk time per speaker, labelled with the share."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.6 + 0.45 * max(1, len(stats))))
    names = [s.speaker for s in stats]
    vals = [s.talk_time for s in stats]
    bars = ax.barh(names, vals, color=[plt.get_cmap("tab10")(i % 10) for i in range(len(stats))])
    for b, s in zip(bars, stats):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {100 * s.share:.0f}%", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("talk time (s)")
    return ax

