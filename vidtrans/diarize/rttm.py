"""RTTM (NIST) reading and atomic writing."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..schema import SpeakerTurn
from ._base import RTTMError


# --------------------------------------------------------------------------- RTTM
_RTTM_LINE = re.compile(r"^\s*SPEAKER\s")


def write_rttm(turns: Iterable[SpeakerTurn], path: str | os.PathLike, uri: str = "audio") -> Path:
    """Write turns as RTTM (NIST) atomically; spaces in the uri/labels become underscores."""
    from .._io import atomic_write_text

    uri = re.sub(r"\s+", "_", str(uri)) or "audio"
    lines = []
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        label = re.sub(r"\s+", "_", t.speaker)
        lines.append(f"SPEAKER {uri} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {label} <NA> <NA>")
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_rttm(path: str | os.PathLike) -> dict[str, list[SpeakerTurn]]:
    """Read an RTTM file into {uri: [SpeakerTurn, ...]} (speaker "Speaker_1" -> "Speaker 1")."""
    p = Path(path)
    if not p.is_file():
        raise RTTMError(f"RTTM file not found: {p}")
    out: dict[str, list[SpeakerTurn]] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith((";", "#")):
            continue
        if not _RTTM_LINE.match(line):
            continue  # other RTTM record types (SPKR-INFO, ...) carry no turns
        parts = line.split()
        if len(parts) < 8:
            raise RTTMError(f"{p.name}:{n}: expected at least 8 fields in a SPEAKER line, got {len(parts)}")
        try:
            start, dur = float(parts[3]), float(parts[4])
        except ValueError as exc:
            raise RTTMError(f"{p.name}:{n}: onset/duration are not numbers: {parts[3]!r} {parts[4]!r}") from exc
        if dur < 0 or start < 0:
            raise RTTMError(f"{p.name}:{n}: negative onset or duration")
        label = re.sub(r"^Speaker_(\d+)$", r"Speaker \1", parts[7])
        out.setdefault(parts[1], []).append(SpeakerTurn(start, start + dur, label))
    for v in out.values():
        v.sort(key=lambda t: (t.start, t.end))
    return out


