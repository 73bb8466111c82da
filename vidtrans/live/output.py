"""Live outputs: a WebVTT file that is valid whenever it is read, and a JSON-lines word log.

The VTT file is created (atomically) holding only the ``WEBVTT`` header, then
grows cue by cue: each cue block is appended with **one** ``write`` on an
``O_APPEND`` descriptor, so a reader sees either the whole cue or none of it.
(Linux updates a file's size after each page of a write is copied, so a
block that would straddle a page boundary is preceded by blank lines that
pad up to the boundary; blank lines between cues are valid WebVTT.)

Cues follow :func:`vidtrans.captions.build_cues` rules as far as live allows:
the cue builder runs over the committed words not yet written, every cue but
the last is final as soon as it is built (more words follow it), and the
last one is written when the speech pauses (or at the end).  Start times
never go back: a cue never starts before the previous one ends plus the
minimum gap, so the file never has overlapping or out-of-order cues.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from .._io import atomic_write_text
from ..captions import CaptionOptions, Cue, build_cues, to_vtt
from ..schema import Segment, Transcript, Word, join_words

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class LiveVttWriter:
    """Append caption cues to *path* as committed (and speaker-labelled) words arrive."""

    def __init__(self, path: str | os.PathLike, options: CaptionOptions | None = None, labels: bool = False):
        self.path = Path(path)
        self.options = options or CaptionOptions()
        self.labels = labels
        header = "WEBVTT\n\n"
        atomic_write_text(self.path, header)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = len(header.encode("utf-8"))
        self._pending: list[Word] = []
        self._last_end = -math.inf
        self.cues: list[Cue] = []

    # -- words -> cues -----------------------------------------------------------------
    def add(self, words: Iterable[Word]) -> None:
        self._pending.extend(words)

    def _build(self, horizon: float | None) -> list[Cue]:
        words = tuple(self._pending)
        opts = self.options
        if self.labels:
            names = {w.speaker: w.speaker for w in words if w.speaker}
            opts = replace(opts, speaker_labels="on", speaker_names={**opts.speaker_names, **names})
        else:
            opts = replace(opts, speaker_labels="off")
        t = Transcript(
            segments=(Segment(words[0].start, words[-1].end, join_words(words), words=words),),
            duration=horizon,
        )
        return build_cues(t, opts)

    def emit(self, horizon: float | None = None, close_last: bool = False) -> int:
        """Write the cues that are final; *close_last* also writes the last one.

        *horizon*: audio time before which no later word can start (limits how far
        the last cue is extended for reading time).  Returns the number of cues written.
        """
        if not self._pending:
            return 0
        cues = self._build(horizon)
        if not cues:
            self._pending.clear()
            return 0
        final = cues if close_last else cues[:-1]
        if not final:
            return 0
        used = sum(len(c.words) for c in final)
        self._pending = self._pending[used:]
        for c in final:
            self._write(c)
        return len(final)

    def _write(self, cue: Cue) -> None:
        o = self.options
        start = max(cue.start, self._last_end + (o.min_gap if self.cues else 0.0), 0.0)
        end = cue.end
        if end < start + 0.25:  # pushed later by an earlier cue: keep it on screen a little
            end = start + max(o.min_duration, 0.25)
        cue = replace(cue, start=round(start, 3), end=round(end, 3))
        text = to_vtt([cue])
        block = text.split("\n\n", 1)[1].strip("\n") + "\n\n"
        data = block.encode("utf-8")
        if len(data) <= _PAGE and self._size // _PAGE != (self._size + len(data) - 1) // _PAGE:
            pad = b"\n" * (_PAGE - self._size % _PAGE)
            os.write(self._fd, pad)
            self._size += len(pad)
        n = os.write(self._fd, data)
        if n != len(data):  # a short write on a regular file means the disk is full
            raise OSError(f"short write to {self.path} ({n} of {len(data)} bytes)")
        self._size += n
        self._last_end = cue.end
        self.cues.append(cue)

    def close(self, horizon: float | None = None) -> None:
        """Write everything still pending and close the file."""
        if self._fd < 0:
            return
        try:
            self.emit(horizon, close_last=True)
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LiveVttWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventWriter:
    """One JSON line per committed word: text, start, end, speaker, committed_at, audio_at, probability."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w", encoding="utf-8")

    def write(self, words: Sequence[Word], committed_at: float, audio_at: float) -> None:
        if not words:
            return
        lines = "".join(
            json.dumps(
                {
                    "text": w.text, "start": w.start, "end": w.end, "speaker": w.speaker,
                    "committed_at": round(committed_at, 3), "audio_at": round(audio_at, 3),
                    "probability": w.probability,
                },
                ensure_ascii=False,
            )
            + "\n"
            for w in words
        )
        self._f.write(lines)
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


def read_events(path: str | os.PathLike) -> list[dict]:
    """The word events of a JSON-lines log written by :class:`EventWriter`."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out
