"""Audio stage: probe and decode any container ffmpeg reads to 16 kHz mono float32.

Decoding goes through an ``ffmpeg`` subprocess that writes raw 16-bit
(``s16le``) samples to a pipe, scaled to float32 in [-1, 1) as they arrive:
the same numbers openai-whisper's ``load_audio`` and faster-whisper's PyAV
``decode_audio`` produce (ffmpeg's float output downmixes stereo differently,
by up to 0.4 full scale, which changed Whisper's words on stereo clips).  Samples are read straight into one preallocated array sized from
the probed duration (grown geometrically only if the probe under-estimated), so
peak memory is one copy of the decoded audio (~230 MB per hour) no matter the
container.  :func:`iter_chunks` streams fixed-size blocks for consumers that
never need the whole signal.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import (
    CorruptMediaError,
    EmptyAudioError,
    MediaError,
    MediaNotFoundError,
    MissingDependencyError,
    NoAudioStreamError,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
_READ_BLOCK = 1 << 20  # bytes per pipe read
_S16_SCALE = np.float32(1.0 / 32768.0)


@dataclass(frozen=True)
class AudioOptions:
    """Optional preprocessing, all off by default (Whisper does best on raw audio)."""

    #: target sample rate of the decoded signal
    sample_rate: int = SAMPLE_RATE
    #: EBU R128 loudness normalisation (ffmpeg ``loudnorm``, single pass)
    normalize: bool = False
    #: high-pass cut-off in Hz (removes rumble / hum), None = off
    highpass_hz: float | None = None
    #: low-pass cut-off in Hz (removes hiss), None = off
    lowpass_hz: float | None = None
    #: decode only from this time (seconds)
    start: float | None = None
    #: decode at most this many seconds
    duration: float | None = None

    def filters(self) -> list[str]:
        f = []
        if self.highpass_hz:
            f.append(f"highpass=f={self.highpass_hz:g}")
        if self.lowpass_hz:
            f.append(f"lowpass=f={self.lowpass_hz:g}")
        if self.normalize:
            f.append("loudnorm=I=-16:TP=-1.5:LRA=11")
        return f


@dataclass(frozen=True)
class ProbeInfo:
    """What ffprobe says about a media file."""

    path: str
    format_name: str
    duration: float | None
    has_video: bool
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None
    tags: dict = field(default_factory=dict)


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise MissingDependencyError(
            name, purpose="decoding audio (install ffmpeg: `apt-get install ffmpeg` or `brew install ffmpeg`)"
        )
    return exe


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaNotFoundError(f"media file not found: {p}")
    if p.is_dir():
        raise MediaError(f"expected a media file, got a directory: {p}")
    if p.stat().st_size == 0:
        raise EmptyAudioError(f"media file is empty (0 bytes): {p}")
    return p


def probe(path: str | os.PathLike) -> ProbeInfo:
    """Return container and first-audio-stream facts; raise a specific MediaError."""
    p = _check_file(path)
    cmd = [_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(p)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise CorruptMediaError(f"cannot read {p.name}: not a media file ffmpeg understands ({msg})")
    data = json.loads(proc.stdout or "{}")
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    video = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not audio:
        raise NoAudioStreamError(f"{p.name} has no audio stream (streams: {[s.get('codec_type') for s in streams]})")
    a = audio[0]

    def _f(x):
        try:
            return float(x)
        except (TypeError, ValueError):
            return None

    duration = _f(a.get("duration")) or _f(fmt.get("duration"))
    return ProbeInfo(
        path=str(p),
        format_name=fmt.get("format_name", ""),
        duration=duration,
        has_video=bool(video),
        audio_codec=a.get("codec_name"),
        sample_rate=int(a["sample_rate"]) if a.get("sample_rate") else None,
        channels=a.get("channels"),
        tags=fmt.get("tags", {}) or {},
    )


def _ffmpeg_cmd(path: Path, options: AudioOptions, output: str | None = None) -> list[str]:
    """ffmpeg command decoding the first audio stream of *path*.

    Raw 16-bit samples go to stdout, or 16-bit WAV to *output* when given.
    """
    cmd = [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0"]
    if options.start:
        cmd += ["-ss", f"{options.start:.3f}"]
    cmd += ["-i", str(path)]
    if options.duration:
        cmd += ["-t", f"{options.duration:.3f}"]
    cmd += ["-vn", "-sn", "-dn", "-map", "0:a:0"]
    filters = options.filters()
    if filters:
        cmd += ["-af", ",".join(filters)]
    cmd += ["-ac", "1", "-ar", str(options.sample_rate)]
    if output is None:
        return cmd + ["-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]
    return cmd + ["-f", "wav", "-acodec", "pcm_s16le", "-y", output]


def _decode_error(path: Path, stderr: bytes) -> CorruptMediaError:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return CorruptMediaError(f"cannot decode audio from {path.name}: {lines[-1] if lines else 'ffmpeg failed'}")


class _Decoder:
    """An ffmpeg process writing raw 16-bit samples to ``.stdout``.

    stderr goes to a temporary file: a pipe read only after stdout could fill
    up and stall ffmpeg on a noisy corrupt file.  ``finish()`` waits and raises
    CorruptMediaError on failure; leaving the ``with`` block early kills it.
    """

    def __init__(self, path: Path, options: AudioOptions):
        self.path = path
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(_ffmpeg_cmd(path, options), stdout=subprocess.PIPE, stderr=self._err)
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout

    def __enter__(self) -> _Decoder:
        return self

    def finish(self) -> bytes:
        """Wait for ffmpeg; return its stderr, or raise CorruptMediaError if it failed."""
        rc = self.proc.wait()
        self._err.seek(0)
        stderr = self._err.read()
        if rc != 0:
            raise _decode_error(self.path, stderr)
        return stderr

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stdout.close()
        self._err.close()


def load_audio(
    path: str | os.PathLike, options: AudioOptions | None = None, *, info: ProbeInfo | None = None
) -> np.ndarray:
    """Decode *path* to a mono float32 array at ``options.sample_rate`` (16 kHz).

    Raises MediaNotFoundError, NoAudioStreamError, CorruptMediaError or
    EmptyAudioError with a message that names the file.
    """
    options = options or AudioOptions()
    p = _check_file(path)
    # ffmpeg starts at once and ffprobe runs meanwhile (it only sizes the buffer and names
    # errors): saves most of a process start-up per file; a probe error stops the decoder.
    with _Decoder(p, options) as dec:
        info = info or probe(p)
        expected = info.duration or 0.0
        if options.start:
            expected = max(0.0, expected - options.start)
        if options.duration:
            expected = min(expected, options.duration) if expected else options.duration
        buf = np.empty(int(expected * options.sample_rate) + options.sample_rate, dtype=np.float32)
        n = 0  # samples filled
        pending = b""
        while True:
            chunk = dec.stdout.read(_READ_BLOCK)
            if not chunk:
                break
            if pending:
                chunk = pending + chunk
                pending = b""
            usable = len(chunk) - len(chunk) % 2
            pending = chunk[usable:]
            k = usable // 2
            if n + k > buf.size:
                buf = np.resize(buf, max(buf.size * 3 // 2, n + k))
            np.multiply(np.frombuffer(chunk[:usable], dtype=np.int16), _S16_SCALE, out=buf[n : n + k], casting="unsafe")
            n += k
        stderr = dec.finish()
    if n == 0:
        raise EmptyAudioError(f"{p.name} contains no audio samples (zero-length audio)")
    if stderr.strip():
        log.warning("ffmpeg reported problems decoding %s: %s", p.name, stderr.decode("utf-8", "replace").strip()[:300])
    # shrink only when the probe over-estimated a lot (a view would pin the big buffer)
    return buf[:n].copy() if buf.size - n > 10 * options.sample_rate else buf[:n]


def iter_chunks(
    path: str | os.PathLike, chunk_seconds: float = 30.0, options: AudioOptions | None = None
) -> Iterator[np.ndarray]:
    """Yield consecutive float32 blocks of *chunk_seconds* (the last may be shorter).

    Memory stays at one block regardless of file length.
    """
    options = options or AudioOptions()
    p = _check_file(path)
    probe(p)
    block = int(chunk_seconds * options.sample_rate) * 2
    total = 0
    with _Decoder(p, options) as dec:
        while True:
            data = dec.stdout.read(block)
            if not data:
                break
            data = data[: len(data) - len(data) % 2]
            total += len(data)
            yield np.frombuffer(data, dtype=np.int16).astype(np.float32) * _S16_SCALE
        dec.finish()
    if total == 0:
        raise EmptyAudioError(f"{p.name} contains no audio samples (zero-length audio)")


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float audio as 16-bit PCM WAV, atomically."""
    import soundfile as sf

    from ._io import atomic_path

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.asarray(audio, dtype=np.float32), sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)


def to_wav(src: str | os.PathLike, dst: str | os.PathLike, options: AudioOptions | None = None) -> Path:
    """Convert any media file to a 16 kHz mono 16-bit WAV with ffmpeg (streams; no RAM copy)."""
    from ._io import atomic_path

    options = options or AudioOptions()
    p = _check_file(src)
    probe(p)
    with atomic_path(dst, suffix=".wav") as tmp:
        proc = subprocess.run(_ffmpeg_cmd(p, options, output=str(tmp)), capture_output=True)
        if proc.returncode != 0:
            raise _decode_error(p, proc.stderr)
    return Path(dst)


def is_silent(audio: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS level of *audio* is below *threshold_db* dBFS."""
    if audio.size == 0:
        return True
    # block by block: a float64 square of a 2-hour file alone would be 920 MB
    total = 0.0
    for i in range(0, audio.size, 1 << 20):
        block = audio[i : i + (1 << 20)].astype(np.float64)
        total += float(block @ block)
    rms = float(np.sqrt(total / audio.size))
    return 20 * np.log10(max(rms, 1e-12)) < threshold_db


def check_samples(audio: np.ndarray, error: type[MediaError] = MediaError) -> np.ndarray:
    """Validate in-memory samples: 1-D (or 1xN) floats in [-1, 1], finite, non-empty.

    Returns a contiguous float32 view/copy; raises *error* (a MediaError
    subclass chosen by the calling stage) or EmptyAudioError.
    """
    a = np.asarray(audio)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise error(
            f"audio array must be 1-D mono 16 kHz samples, got shape {a.shape}; "
            "pass a file path, or downmix first (e.g. audio.mean(axis=...))"
        )
    if a.size == 0:
        raise EmptyAudioError("audio array is empty (zero samples)")
    if not np.issubdtype(a.dtype, np.floating):
        raise error(f"audio array must hold floats in [-1, 1], got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not (np.isfinite(a.min()) and np.isfinite(a.max())):  # NaN/inf propagate; no full-size temporary
        raise error("audio array contains NaN or infinite samples")
    return a


def as_samples(audio: object, error: type[MediaError] = MediaError) -> np.ndarray:
    """16 kHz mono float32 samples from a media path (decoded) or an array (validated)."""
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio)
    if isinstance(audio, np.ndarray):
        return check_samples(audio, error)
    raise error(f"audio must be a file path or a numpy float array, got {type(audio).__name__}")

