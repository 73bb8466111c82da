"""Forced-alignment worker processes for :class:`vidtrans.timing.SegmentAligner`.

PocketSphinx holds the GIL while it aligns, so aligners in threads take
turns; beside a GPU decoder one aligner became the bottleneck
(``bench/gpu.py``).  Each worker is a ``python -m vidtrans._align_procs``
child reading pickled tasks on its stdin and writing results on its stdout
(length-prefixed frames), fed by one thread here that owns it.

Plain child processes rather than :mod:`multiprocessing`: its ``spawn``
start re-runs the caller's main script in every child (a user script
without an ``if __name__ == "__main__"`` guard would transcribe again in
each), and ``fork`` copies a process that holds CUDA and the decoder's
threads.  A worker that dies fails its task and every later one it takes
(:class:`AlignWorkerError`); :func:`vidtrans.timing.refine_words` then
aligns those segments in the main process.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .errors import VidtransError

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<Q")
#: seconds interpreter exit waits for workers shut down without waiting (their own wait is 10 s)
_EXIT_WAIT = 15.0


class AlignWorkerError(VidtransError):
    """An alignment worker process could not be started or stopped answering."""


def _send(stream, obj: Any) -> None:
    _write_frame(stream, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _write_frame(stream, data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_exactly(stream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError(f"stream closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _recv(stream) -> Any:
    (n,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return pickle.loads(_read_exactly(stream, n))


class AlignProcesses:
    """*workers* child processes that run ``fn(*args)`` for :meth:`submit`; ``fn`` is a
    module-level function (pickled by name) that the child can import."""

    def __init__(self, workers: int):
        self._tasks: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._alive = workers
        # one object for atexit.register / unregister (a bound method is a new object at each access)
        self._at_exit = lambda: self._join(_EXIT_WAIT)
        self._threads = [threading.Thread(target=self._serve, name=f"vidtrans-align-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self._tasks.put((fut, fn, args))
        return fut

    def _start(self) -> subprocess.Popen:
        import vidtrans

        root = str(Path(vidtrans.__file__).resolve().parents[1])  # importable even when only on sys.path here
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        return subprocess.Popen([sys.executable, "-m", "vidtrans._align_procs"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env)

    def _serve(self) -> None:
        proc = None
        error: Exception | None = None
        while (item := self._tasks.get()) is not None:
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            if error is not None:
                fut.set_exception(error)
                continue
            try:  # pickled before anything is written: a task that cannot be sent fails alone
                data = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PickleError, TypeError, AttributeError) as exc:
                fut.set_exception(AlignWorkerError(f"cannot send the task to the alignment worker: {exc}"))
                continue
            try:
                proc = proc or self._start()
                _write_frame(proc.stdin, data)
                ok, value = _recv(proc.stdout)
            except (OSError, EOFError, pickle.PickleError, struct.error) as exc:
                error = AlignWorkerError(f"alignment worker process failed: {exc.__class__.__name__}: {exc}")
                error.__cause__ = exc
                log.warning("%s; its segments are aligned in the main process", error)
                fut.set_exception(error)
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        if proc is not None:
            try:
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
        with self._lock:
            self._alive -= 1
            if not self._alive:  # every worker reaped: nothing left for interpreter exit to wait for
                atexit.unregister(self._at_exit)

    def shutdown(self, cancel_futures: bool = True, wait: bool = True) -> None:
        """Stop the workers (after the task each is on); queued tasks are cancelled with *cancel_futures*.

        *wait* False returns at once: each worker's thread still closes its process's stdin and waits
        for it to exit (≈ 0.06 s of interpreter teardown at idle priority), off the caller's path; at
        interpreter exit this process waits for those threads (up to _EXIT_WAIT s), so no worker outlives it
        unwaited.
        """
        if cancel_futures:
            while True:
                try:
                    item = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        if not wait:  # reaped by interpreter exit at the latest: the process's CPU time then counts as ours
            atexit.register(self._at_exit)
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            self._join()

    def _join(self, timeout: float | None = None) -> None:
        for t in self._threads:
            t.join(timeout)


def main() -> None:
    """The worker loop: (fn, args) frames in on stdin, (ok, result or exception) frames out on stdout."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    from ._threads import idle_process

    idle_process()  # the decoder's process comes first (see vidtrans._threads)
    trim = _malloc_trim()
    while True:
        try:
            fn, args = _recv(inp)
        except EOFError:
            return
        try:
            reply = (True, fn(*args))
        except Exception as exc:  # noqa: BLE001 - sent back and raised in the parent
            reply = (False, exc)
        try:
            _send(out, reply)
        except (pickle.PickleError, TypeError, AttributeError) as exc:  # pickled before anything is written
            _send(out, (False, AlignWorkerError(f"unpicklable result: {exc}")))
        if trim is not None:
            trim(0)


def _malloc_trim():
    """glibc's ``malloc_trim``, or None elsewhere.  PocketSphinx allocates and frees its search
    structures for every utterance and glibc keeps the freed pages: the worker grew from 123 MB
    (models loaded) to 179 MB over 30 minutes of aligned speech, 219 MB in a 2-hour pipeline run
    (bench/memory.py).  Trimming after each task keeps it at 124 MB, with no measurable time cost."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


if __name__ == "__main__":
    main()
