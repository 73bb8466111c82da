"""Whisper's log-mel spectrogram computed block by block (same numbers, flat memory).

faster-whisper computes the features of its whole input at once
(``FeatureExtractor.__call__``): the framed signal, its complex spectrum and
the power spectrum of every frame exist together, about 3 GB per hour of
audio.  :class:`LeanFeatureExtractor` computes the same frames a block at a
time and only keeps the (80 or 128) x frames float32 result (~115 MB per
hour of audio for 80 mels).  Each frame depends only on its own 400 samples
and the final clamp uses the global maximum, so the output equals the
original's; ``tests/test_transcribe_local.py`` checks it on real speech.
This lets vidtrans hand faster-whisper whole files (decoded exactly as plain
faster-whisper decodes them) instead of cutting long files into pieces.
"""

from __future__ import annotations

import numpy as np

try:  # faster-whisper is an optional dependency of the package as a whole
    from faster_whisper.feature_extractor import FeatureExtractor
except ImportError:  # pragma: no cover - the local engine reports the missing package
    FeatureExtractor = object  # type: ignore[assignment,misc]

#: frames computed per block (30 s of audio at the 10 ms hop)
BLOCK_FRAMES = 3000


class LeanFeatureExtractor(FeatureExtractor):  # type: ignore[misc,valid-type]
    """Drop-in ``FeatureExtractor`` whose ``__call__`` works block by block."""

    def _geometry(self, waveform: np.ndarray, padding: int, chunk_length: int | None):
        if chunk_length is not None:
            self.n_samples = chunk_length * self.sampling_rate
            self.nb_max_frames = self.n_samples // self.hop_length
        x = np.asarray(waveform, dtype=np.float32)
        m = x.size + (padding or 0)  # length after the zero padding at the end
        n_frames = 1 + (m + 2 * (self.n_fft // 2) - self.n_fft) // self.hop_length
        return x, m, n_frames - 1  # the original drops the last frame

    def _log_mel(self, x: np.ndarray, m: int, f0: int, f1: int) -> np.ndarray:
        """log10 mel power (not yet clamped/scaled) of frames ``[f0, f1)``."""
        n_fft, hop = self.n_fft, self.hop_length
        half = n_fft // 2
        window = np.hanning(n_fft + 1)[:-1].astype("float32")
        # samples of the reflect-padded, zero-extended signal that frames f0..f1 cover
        idx = np.arange(f0 * hop, (f1 - 1) * hop + n_fft) - half
        idx = np.where(idx < 0, -idx, idx)
        idx = np.where(idx >= m, 2 * (m - 1) - idx, idx)
        seg = np.zeros(idx.size, dtype=np.float32)
        inside = idx < x.size
        seg[inside] = x[idx[inside]]
        frames = np.lib.stride_tricks.as_strided(
            seg, (f1 - f0, n_fft), (hop * seg.strides[0], seg.strides[0]), writeable=False
        )
        spec = np.fft.rfft(frames * window, n=n_fft, axis=-1).astype("complex64")
        power = np.abs(spec.T) ** 2
        mel = self.mel_filters @ power
        return np.log10(np.clip(mel, a_min=1e-10, a_max=None))

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> np.ndarray:
        x, m, n_out = self._geometry(waveform, padding, chunk_length)
        if m <= self.n_fft // 2:  # too short for the reflect padding: the original handles (or rejects) it
            return super().__call__(waveform, padding=padding, chunk_length=None)
        out = np.empty((self.mel_filters.shape[0], max(n_out, 0)), dtype=np.float32)
        for f0 in range(0, n_out, BLOCK_FRAMES):
            f1 = min(f0 + BLOCK_FRAMES, n_out)
            out[:, f0:f1] = self._log_mel(x, m, f0, f1)
        if out.size:
            np.maximum(out, out.max() - 8.0, out=out)
            out += 4.0
            out /= 4.0
        return out


class LazyFeatureExtractor(LeanFeatureExtractor):
    """``__call__`` returns a :class:`LazyLogMel`: nothing but the global maximum is kept, and each
    30 s window faster-whisper reads is computed when it reads it (same numbers as the original).

    For hours of audio this saves the whole-file spectrogram (~115 MB per hour) at the cost of
    computing the log-mel twice (a few seconds per hour, against tens of minutes of decoding).
    """

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None):
        x, m, n_out = self._geometry(waveform, padding, chunk_length)
        if m <= self.n_fft // 2 or n_out <= 0:
            return super().__call__(waveform, padding=padding, chunk_length=None)
        top = max(float(self._log_mel(x, m, f0, min(f0 + BLOCK_FRAMES, n_out)).max())
                  for f0 in range(0, n_out, BLOCK_FRAMES))
        return LazyLogMel(self, x, m, top, 0, n_out)


class LazyLogMel:
    """A (mels, frames) float32 log-mel spectrogram computed slice by slice when read.

    Supports what faster-whisper does with its features: ``.shape``, slicing the
    frame axis (``f[..., a:]``, ``f[:, a:b]``: another lazy view) and conversion to
    an array (``np.asarray``, ``np.pad``, ``np.expand_dims``), which computes the view.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, ext: LeanFeatureExtractor, x: np.ndarray, m: int, top: float, f0: int, f1: int):
        self._ext, self._x, self._m, self._top, self._f0, self._f1 = ext, x, m, top, f0, f1
        self.shape = (ext.mel_filters.shape[0], f1 - f0)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2 and (key[0] is Ellipsis or key[0] == slice(None)) \
                and isinstance(key[1], slice) and key[1].step in (None, 1):
            a, b, _ = key[1].indices(self.shape[1])
            b = max(a, b)
            return LazyLogMel(self._ext, self._x, self._m, self._top, self._f0 + a, self._f0 + b)
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=np.float32)
        for f0 in range(self._f0, self._f1, BLOCK_FRAMES):
            f1 = min(f0 + BLOCK_FRAMES, self._f1)
            out[:, f0 - self._f0 : f1 - self._f0] = self._ext._log_mel(self._x, self._m, f0, f1)
        np.maximum(out, self._top - 8.0, out=out)
        out += 4.0
        out /= 4.0
        return out if dtype is None else out.astype(dtype)
