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

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> np.ndarray:
        if chunk_length is not None:
            self.n_samples = chunk_length * self.sampling_rate
            self.nb_max_frames = self.n_samples // self.hop_length
        x = np.asarray(waveform, dtype=np.float32)
        n_fft, hop = self.n_fft, self.hop_length
        half = n_fft // 2
        m = x.size + (padding or 0)  # length after the zero padding at the end
        if m <= half:  # too short for the reflect padding: the original handles (or rejects) it
            return super().__call__(waveform, padding=padding, chunk_length=None)
        n_frames = 1 + (m + 2 * half - n_fft) // hop
        n_out = n_frames - 1  # the original drops the last frame
        window = np.hanning(n_fft + 1)[:-1].astype("float32")
        out = np.empty((self.mel_filters.shape[0], max(n_out, 0)), dtype=np.float32)
        for f0 in range(0, n_out, BLOCK_FRAMES):
            f1 = min(f0 + BLOCK_FRAMES, n_out)
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
            out[:, f0:f1] = np.log10(np.clip(mel, a_min=1e-10, a_max=None))
        if out.size:
            np.maximum(out, out.max() - 8.0, out=out)
            out += 4.0
            out /= 4.0
        return out
