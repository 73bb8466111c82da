"""Speech and overlap detection with pyannote segmentation-3.0 (10 s sliding chunks).

The model gives, per chunk, up to 3 *local* speakers frame by frame (powerset,
so overlapped speech is explicit).  Aggregated over the overlapping chunks it
gives the instantaneous number of speakers per frame (0 = silence, 2 =
overlap), which decides where speech is and how many speakers each frame gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._base import SAMPLE_RATE


@dataclass(frozen=True)
class FrameGrid:
    """The global frame grid of the segmentation model (about 17 ms frames)."""

    #: start of frame 0's cell and frame step (seconds)
    start: float
    step: float
    #: number of frames covering the recording
    size: int

    @classmethod
    def for_model(cls, model, duration: float) -> "FrameGrid":
        rf = model.receptive_field
        step = float(rf.step)
        start = float(rf.start + rf.duration / 2 - step / 2)
        return cls(start=start, step=step, size=int(math.ceil((duration - start) / step)) + 1)

    @property
    def centers(self) -> np.ndarray:
        return self.start + self.step / 2 + np.arange(self.size) * self.step

    def index(self, t: np.ndarray | float, how: str = "round") -> np.ndarray:
        f = getattr(np, "ceil" if how == "ceil" else "round")
        return np.clip(f((np.asarray(t) - self.start - self.step / 2) / self.step).astype(int), 0, self.size)


@dataclass
class SegmentationBlock:
    """Segmentation of one block of audio, placed on the global frame grid."""

    #: index of this block's first count frame on the global grid
    count_start: int
    #: instantaneous speaker count per frame (uint8)
    count: np.ndarray
    #: binarized local-speaker activity (chunks, frames, 3) uint8 and global chunk start times
    seg: np.ndarray
    chunk_starts: np.ndarray
    #: speech regions (global seconds) where the count is >= 1
    regions: list[tuple[float, float]]


class Segmenter:
    """Slides segmentation-3.0 over blocks of samples (as pyannote's ``Inference`` does, without it).

    10 s chunks every ``step_ratio`` x 10 s; a last partial chunk is zero-padded.
    Each chunk's frames are binarized local-speaker activity; the speaker count
    per frame is the rounded mean over the chunks covering it (pyannote's
    ``speaker_count``).  One instance per diarize call: not shared across threads.
    """

    def __init__(self, model, device: str = "cpu", step_ratio: float = 0.1, batch_size: int | None = None):
        self.model = model
        self.rf = model.receptive_field
        self.chunk = float(model.chunk_seconds)
        self.window = int(round(self.chunk * SAMPLE_RATE))
        self.step = int(round(step_ratio * self.chunk * SAMPLE_RATE))
        self.batch_size = batch_size or getattr(model, "batch_size", 8)

    def chunk_offsets(self, num_samples: int) -> list[int]:
        """Sample offsets of the chunks covering *num_samples* samples."""
        n_full = 1 + (num_samples - self.window) // self.step if num_samples >= self.window else 0
        starts = [i * self.step for i in range(n_full)]
        if num_samples < self.window or (num_samples - self.window) % self.step > 0:
            starts.append(n_full * self.step)
        return starts

    def segment(self, wav: np.ndarray) -> np.ndarray:
        """(chunks, frames, 3) uint8 activity of every chunk of *wav*."""
        starts = self.chunk_offsets(wav.size)
        out = None
        for b0 in range(0, len(starts), self.batch_size):
            batch = np.zeros((min(self.batch_size, len(starts) - b0), self.window), dtype=np.float32)
            for j, s in enumerate(starts[b0 : b0 + self.batch_size]):
                piece = wav[s : s + self.window]
                batch[j, : piece.size] = piece
            act = self.model(batch)
            if out is None:
                out = np.empty((len(starts),) + act.shape[1:], dtype=np.uint8)
            out[b0 : b0 + len(batch)] = act
        return out

    def count(self, seg: np.ndarray) -> np.ndarray:
        """Instantaneous speaker count on the block's frame grid (frame i centred at
        ``rf.start + rf.duration / 2 + i * rf.step``): mean active local speakers over the
        chunks covering a frame, rounded (0 where no chunk covers it)."""
        n_chunks, n_frames = seg.shape[:2]
        fstep = self.rf.step
        cstep = self.step / SAMPLE_RATE
        total_frames = int(np.rint((self.chunk + (n_chunks - 1) * cstep) / fstep)) + 1
        first = np.rint(np.arange(n_chunks) * cstep / fstep).astype(int)
        total_frames = max(total_frames, int(first[-1]) + n_frames)
        acc = np.zeros(total_frames, dtype=np.float32)
        hits = np.zeros(total_frames, dtype=np.float32)
        active = seg.sum(axis=2, dtype=np.float32)
        for f0, a in zip(first, active):
            acc[f0 : f0 + n_frames] += a
            hits[f0 : f0 + n_frames] += 1.0
        return np.rint(acc / np.maximum(hits, 1e-12)).astype(np.uint8)

    def __call__(self, wav: np.ndarray, offset: float, grid: FrameGrid, min_region: float = 0.2) -> SegmentationBlock:
        seg = self.segment(wav)
        cnt = self.count(seg)
        rf = self.rf
        first = int(round((offset + rf.start + rf.duration / 2 - grid.step / 2 - grid.start) / grid.step))
        # speech regions from the count (each frame spans its receptive field)
        centers = rf.start + rf.duration / 2 + np.arange(cnt.size) * rf.step
        edges = np.flatnonzero(np.diff(np.r_[0, (cnt > 0).astype(np.int8), 0]))
        end = wav.size / SAMPLE_RATE
        regions = [
            (offset + max(0.0, centers[s] - rf.duration / 2), offset + min(end, centers[e - 1] + rf.duration / 2))
            for s, e in zip(edges[::2], edges[1::2])
        ]
        starts = np.asarray(self.chunk_offsets(wav.size), dtype=np.float64) / SAMPLE_RATE
        return SegmentationBlock(
            count_start=first,
            count=cnt,
            seg=seg,
            chunk_starts=offset + starts,
            regions=[(s, e) for s, e in regions if e - s >= min_region],
        )

    def frame_offsets(self, num_frames: int) -> np.ndarray:
        """Centre of each segmentation frame relative to its chunk start (seconds)."""
        return self.rf.start + self.rf.duration / 2 + np.arange(num_frames) * self.rf.step


def global_count(blocks: list[SegmentationBlock], grid: FrameGrid) -> np.ndarray:
    """Per-frame speaker count over the whole recording (max where blocks meet)."""
    out = np.zeros(grid.size, dtype=np.uint8)
    for b in blocks:
        lo = max(0, b.count_start)
        hi = min(grid.size, b.count_start + b.count.size)
        if hi > lo:
            out[lo:hi] = np.maximum(out[lo:hi], b.count[lo - b.count_start : hi - b.count_start])
    return out
