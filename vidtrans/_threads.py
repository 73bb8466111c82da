"""Scheduling of the helper threads that work beside the decoder (diarization, word alignment)."""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

#: how much nicer than the decoder a helper thread runs (Linux nice steps)
HELPER_NICE = 10


def yield_to_decoder(step: int = HELPER_NICE) -> bool:
    """Lower the calling thread's scheduling priority by *step* nice levels (Linux; elsewhere a no-op).

    The decoder and its encoder are the critical path of a run: the encoder's
    threads meet at a barrier after every operation, so a helper thread that
    takes one of their cores stalls them all (on 2 cores, an OpenVINO encoder
    call took 0.4-0.8 s beside diarization instead of 0.13 s alone).  A
    nicer helper still gets every cycle the decoder leaves idle.  On Linux the
    nice value is a per-thread attribute, so only this thread changes.
    Returns whether it did.
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + int(step)))
    except OSError as exc:
        log.debug("cannot lower the priority of thread %d: %s", tid, exc)
        return False
    return True
