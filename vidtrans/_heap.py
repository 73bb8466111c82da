"""Give freed heap memory back to the operating system between the phases of a long run (glibc only).

glibc keeps the pages a program frees, in the arena of the thread that freed
them, for the next allocation.  A long ``vidtrans run`` frees a lot that is
not needed again: the Silero VAD's buffers once the speech regions are
known, the diarization models' activations once every block is embedded,
the transcription buffers of windows that needed more than the current one.
Measured with ``bench/memory.py``: after the VAD of 10 minutes and one 30 s
window, ``malloc_trim`` released about 220 MB that nothing used any more.

:func:`release_freed_memory` trims at those points for inputs of
:data:`TRIM_FROM_SECONDS` or more; the 2-hour pipeline run's peak fell from
1343 to 1268 MB (1429 -> 1365 MB with the word aligner's process).  The
aligner's process trims after every segment (:mod:`vidtrans._align_procs`).

Tried, not kept: trimming every second from a helper thread for the whole
run gave 1169 MB (1280 MB with the aligner) but slowed a 12-minute run with
speakers by 3.5 % (4 alternating pairs): every trim makes the decoder fault
its buffers in again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

#: inputs at least this long (seconds) trim between phases; shorter ones finish before retained pages
#: matter, and their wall time is left alone
TRIM_FROM_SECONDS = 600.0


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS, Windows)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory(seconds: float, phase: str) -> bool:
    """After *phase* of an input of *seconds*, hand the heap pages every thread has freed back to the OS.

    Does nothing (returns False) for inputs under :data:`TRIM_FROM_SECONDS` or without glibc.
    """
    if seconds < TRIM_FROM_SECONDS:
        return False
    trim = malloc_trim()
    if trim is None:
        return False
    released = bool(trim(0))
    log.debug("heap trimmed after %s (%s)", phase, "pages released" if released else "nothing to release")
    return True
