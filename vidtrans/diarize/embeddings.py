"""CAM++ speaker embeddings of short windows over the detected speech."""

from __future__ import annotations

import numpy as np

from ..diarize_models import FBANK_LENGTH, FBANK_SHIFT
from ._base import _windows


def window_embeddings(
    embedder, wav: np.ndarray, offset: float, regions: list[tuple[float, float]], win: float, hop: float
) -> tuple[np.ndarray, np.ndarray]:
    """(windows (N, 2) in global seconds, embeddings (N, 192)) for windows covering *regions*.

    *wav* holds the block's samples starting at *offset* seconds; fbank
    features are computed once per block and each window is a slice of them.
    Windows that give no embedding (too short) are dropped.
    """
    local = [(s - offset, e - offset) for s, e in regions]
    wins = _windows(local, win, hop)
    if not wins:
        return np.zeros((0, 2)), np.zeros((0, embedder.dimension), np.float32)
    feats = embedder.fbank(wav)
    views = []
    for s, e in wins:
        a = int(s / FBANK_SHIFT)
        b = max(a + 1, int((e - FBANK_LENGTH) / FBANK_SHIFT) + 1)
        views.append(feats[a:b])
    emb = embedder._forward(views)
    ok = ~np.isnan(emb).any(axis=1)
    return np.asarray(wins, dtype=np.float64).reshape(-1, 2)[ok] + offset, emb[ok]


def window_purity(windows: np.ndarray, count: np.ndarray, grid) -> np.ndarray:
    """Fraction of each window's frames where exactly one speaker talks (1.0 = no overlap, no silence)."""
    if not len(windows):
        return np.zeros(0)
    single = np.r_[0, np.cumsum(count == 1)]
    i0 = grid.index(windows[:, 0], "ceil")
    i1 = np.maximum(grid.index(windows[:, 1], "ceil"), i0 + 1)
    i1 = np.minimum(i1, count.size)
    return (single[i1] - single[np.minimum(i0, count.size)]) / np.maximum(i1 - i0, 1)
