"""Live audio sources: a microphone, a live URL read by ffmpeg, or a file (real-time pace or as fast as possible).

Every source is an iterable of 16 kHz mono float32 blocks plus ``close()``
(which may be called from another thread to stop it) and ``live`` (True
when audio arrives at the pace it is spoken, so the runner's self-monitor
applies).  :func:`open_source` picks one from a string:

* ``"mic"``, ``"mic:2"`` or ``"mic:USB"`` — the default or a named/numbered
  input device (``sounddevice``, an optional extra: ``pip install 'vidtrans[live]'``);
* anything with ``://`` — ffmpeg reads it (HLS ``.m3u8``, RTMP, RTSP, SRT,
  HTTP(S), ``udp://``...), reconnecting on HTTP hiccups;
* otherwise a media file, decoded by ffmpeg, at real-time pace with ``realtime``.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import MediaError, MediaNotFoundError, MissingDependencyError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


class SourceError(MediaError):
    """A live source cannot be opened or read."""


class FileSource:
    """A media file decoded by ffmpeg; paced to the wall clock when *realtime*."""

    def __init__(self, path: str | os.PathLike, realtime: bool = False, chunk_seconds: float = 0.1):
        self.path = Path(path)
        if not self.path.is_file():
            raise MediaNotFoundError(f"media file not found: {self.path}")
        self.realtime = realtime
        self.live = realtime
        self.chunk_seconds = chunk_seconds
        self._stop = threading.Event()
        self.description = f"{self.path.name} ({'real-time pace' if realtime else 'as fast as possible'})"

    def close(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[np.ndarray]:
        from ..audio import iter_chunks

        t0 = None
        done = 0
        for block in iter_chunks(self.path, chunk_seconds=self.chunk_seconds):
            if self._stop.is_set():
                return
            if self.realtime:
                if t0 is None:
                    t0 = time.monotonic()
                # a block is available once it has been "spoken" in full
                wait = t0 + (done + block.size) / SAMPLE_RATE - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
            done += block.size
            yield block


class _FfmpegReader:
    """Run ffmpeg on *url* and yield its raw float32 output as it arrives."""

    def __init__(self, url: str, chunk_seconds: float, realtime: bool):
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise MissingDependencyError(
                "ffmpeg", purpose="reading live streams (install it: `apt-get install ffmpeg` or `brew install ffmpeg`)"
            )
        cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error"]
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("http", "https"):
            cmd += ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "2"]
        if realtime:
            cmd += ["-re"]
        cmd += ["-i", url, "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
        self.cmd = cmd
        self.url = url
        self.block = max(int(chunk_seconds * SAMPLE_RATE) * 4, 4096)
        self._err = tempfile.TemporaryFile()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def __iter__(self) -> Iterator[np.ndarray]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        pending = b""
        got = 0
        try:
            while True:
                data = os.read(fd, self.block)
                if not data:
                    break
                data = pending + data
                usable = len(data) - len(data) % 4
                pending = data[usable:]
                if usable:
                    got += usable
                    yield np.frombuffer(data[:usable], dtype=np.float32).copy()
        finally:
            rc = self.proc.wait()
            self._err.seek(0)
            err = self._err.read().decode("utf-8", "replace").strip()
            self._err.close()
            self.proc.stdout.close()
        if rc not in (0, -9, 255) and got == 0:
            last = err.splitlines()[-1] if err else f"ffmpeg exited with {rc}"
            raise SourceError(f"cannot read live stream {self.url}: {last}")
        if rc not in (0, -9) and err:
            log.warning("live stream %s ended: %s", self.url, err.splitlines()[-1][:300])


class UrlSource:
    """A live URL read by ffmpeg (HLS, RTMP, RTSP, SRT, HTTP...): ends when the stream ends or is closed."""

    live = True

    def __init__(self, url: str, chunk_seconds: float = 0.1, realtime: bool = False):
        self.url = url
        self._reader = _FfmpegReader(url, chunk_seconds, realtime)
        self._closed = threading.Event()
        self.description = f"{url} (ffmpeg)"

    def close(self) -> None:
        self._closed.set()
        self._reader.stop()

    def __iter__(self) -> Iterator[np.ndarray]:
        self._reader.start()
        if self._closed.is_set():
            self._reader.stop()
        yield from self._reader


class MicSource:
    """The default (or a chosen) microphone through ``sounddevice`` (PortAudio)."""

    live = True

    def __init__(self, device: int | str | None = None, chunk_seconds: float = 0.1):
        try:
            import sounddevice
        except ImportError as exc:
            raise MissingDependencyError("sounddevice", extra="live", purpose="microphone input") from exc
        except OSError as exc:  # the wheel is there but PortAudio is not
            raise MissingDependencyError(
                "PortAudio", purpose=f"microphone input (apt-get install libportaudio2): {exc}"
            ) from exc
        self._sd = sounddevice
        self.device = device
        self.blocksize = max(int(chunk_seconds * SAMPLE_RATE), 160)
        self._q: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self.overflows = 0
        self.description = f"microphone {device if device is not None else '(default)'}"

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio thread
        if status and status.input_overflow:
            self.overflows += 1
        self._q.put(np.asarray(indata, dtype=np.float32).reshape(-1).copy())

    def close(self) -> None:
        self._closed.set()
        self._q.put(None)

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            stream = self._sd.InputStream(
                samplerate=SAMPLE_RATE, channels=1, dtype="float32", blocksize=self.blocksize,
                device=self.device, callback=self._callback,
            )
        except Exception as exc:  # sounddevice.PortAudioError and friends
            raise SourceError(f"cannot open the microphone {self.device!r}: {exc}") from exc
        with stream:
            while not self._closed.is_set():
                block = self._q.get()
                if block is None:
                    break
                yield block
        if self.overflows:
            log.warning("microphone: %d input overflows (audio was dropped by PortAudio)", self.overflows)


def open_source(spec: str | os.PathLike, realtime: bool = False, chunk_seconds: float = 0.1):
    """A source for *spec*: ``mic[:device]``, a URL (anything with ``://``) or a media file."""
    s = str(spec)
    if s == "mic" or s.startswith("mic:"):
        dev: int | str | None = s[4:] or None
        if isinstance(dev, str) and dev.isdigit():
            dev = int(dev)
        return MicSource(dev, chunk_seconds)
    if "://" in s:
        return UrlSource(s, chunk_seconds, realtime=realtime)
    return FileSource(s, realtime=realtime, chunk_seconds=chunk_seconds)
