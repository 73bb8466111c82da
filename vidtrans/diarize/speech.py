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
    """Runs segmentation-3.0 on blocks of samples (one instance per diarize call: not shared across threads)."""

    def __init__(self, model, device: str, step_ratio: float, batch_size: int = 8):
        import torch
        from pyannote.audio import Inference

        self.model = model
        self.rf = model.receptive_field
        self.chunk = float(model.specifications.duration)
        self.inference = Inference(
            model, duration=self.chunk, step=step_ratio * self.chunk, skip_aggregation=True,
            batch_size=batch_size, device=torch.device(device),
        )

    def __call__(self, wav: np.ndarray, offset: float, grid: FrameGrid, min_region: float = 0.2) -> SegmentationBlock:
        import torch
        from pyannote.audio.pipelines.utils import SpeakerDiarizationMixin

        segs = self.inference({"waveform": torch.from_numpy(np.ascontiguousarray(wav))[None], "sample_rate": SAMPLE_RATE})
        count = SpeakerDiarizationMixin.speaker_count(segs, self.rf, warm_up=(0.0, 0.0))
        cnt = count.data[:, 0].astype(np.uint8)
        cw = count.sliding_window
        first = int(round((offset + cw.start + cw.duration / 2 - grid.step / 2 - grid.start) / grid.step))
        # speech regions from the count (each frame spans its receptive field)
        centers = cw.start + cw.duration / 2 + np.arange(cnt.size) * cw.step
        edges = np.flatnonzero(np.diff(np.r_[0, (cnt > 0).astype(np.int8), 0]))
        end = wav.size / SAMPLE_RATE
        regions = [
            (offset + max(0.0, centers[s] - cw.duration / 2), offset + min(end, centers[e - 1] + cw.duration / 2))
            for s, e in zip(edges[::2], edges[1::2])
        ]
        return SegmentationBlock(
            count_start=first,
            count=cnt,
            seg=(segs.data > 0.5).astype(np.uint8),
            chunk_starts=np.array([offset + c.start for c, _ in segs], dtype=np.float64),
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
