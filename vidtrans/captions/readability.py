"""Readability report per cue (chars per line, lines, duration, cps, gaps) and its plot."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import MissingDependencyError
from .cues import Cue
from .options import _TOL, CaptionOptions, _join


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


def plot_readability(data: Any, ax: Any = None, options: CaptionOptions | None = None) -> Any:
    """Plot reading speed over time: one bar per cue at its cps, the limit line, violations marked.

    *data* is a :class:`ReadabilityReport`, a :class:`ValidationReport` or a
    sequence of :class:`Cue` (checked with *options*).  Returns the axes.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", extra="notebooks", purpose="plotting readability") from exc
    if isinstance(getattr(data, "readability", None), ReadabilityReport):  # a ValidationReport
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
