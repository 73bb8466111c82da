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


def idle_process() -> str:
    """Run the calling (helper) process only on cycles nothing else wants; returns how.

    Linux: ``SCHED_IDLE``.  A process that is merely nicer still takes its
    slices beside the OpenVINO encoder's threads, which then wait at their
    barriers: on 2 cores the encoder's 30 s windows took 0.19-0.21 s beside a
    nice-10 aligner process, 0.12-0.15 s beside an idle-class one (the sonnet,
    three runs each), and the run finished 0.1-0.2 s sooner.  An idle-class
    process still gets every core the decoder leaves free.  Elsewhere (or
    where the policy is refused) the process is made ``HELPER_NICE`` nicer.
    """
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except OSError as exc:
            log.debug("cannot make this process idle-class: %s", exc)
    try:
        os.nice(HELPER_NICE)
    except (AttributeError, OSError):
        return "unchanged"
    return "nice"
