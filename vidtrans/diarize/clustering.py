"""Clustering and speaker counting of window embeddings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._base import _unit


# --------------------------------------------------------------------------- clustering
def spectral_cluster(
    embeddings: np.ndarray,
    num_clusters: int | None = None,
    min_clusters: int = 1,
    max_clusters: int = 12,
    pval: float = 0.1,
    min_pnum: int = 12,
) -> np.ndarray:
    """Spectral clustering of embeddings (rows) on a p-pruned cosine affinity.

    Speaker count from the largest eigengap of the unnormalised Laplacian
    within ``[min_clusters, max_clusters]`` unless *num_clusters* is given.
    """
    from sklearn.cluster import KMeans

    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    if num_clusters == 1 or max_clusters <= 1 or n < 3:
        return np.zeros(n, dtype=int)
    x = _unit(embeddings.astype(np.float64))
    a = x @ x.T
    # keep at least min_pnum neighbours per row (fewer on very short audio, where there are few windows)
    keep = min(min_pnum, max(6, n // 3))
    n_prune = min(int((1 - pval) * n), n - keep)
    if n_prune > 0:
        low = np.argpartition(a, n_prune, axis=1)[:, :n_prune]
        np.put_along_axis(a, low, 0.0, axis=1)
    a = 0.5 * (a + a.T)
    np.fill_diagonal(a, 0.0)
    lap = np.diag(a.sum(1)) - a
    lam, vec = np.linalg.eigh(lap)
    if num_clusters is None:
        hi = min(max_clusters, n - 1)
        lo = max(1, min(min_clusters, hi))
        gaps = np.diff(lam[: hi + 1])
        k = int(np.argmax(gaps[lo - 1 : hi])) + lo
    else:
        k = min(num_clusters, n)
    if k <= 1:
        return np.zeros(n, dtype=int)
    return KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(vec[:, :k]).astype(int)


def _merge_similar(labels: np.ndarray, x: np.ndarray, threshold: float, min_clusters: int) -> np.ndarray:
    """Merge clusters whose centroids have cosine similarity above *threshold*."""
    labels = labels.copy()
    while True:
        ks = np.unique(labels)
        if len(ks) <= max(1, min_clusters):
            return labels
        c = _unit(np.stack([x[labels == k].mean(0) for k in ks]))
        sim = np.triu(c @ c.T, 1)
        i, j = np.unravel_index(np.argmax(sim), sim.shape)
        if sim[i, j] < threshold:
            return labels
        labels[labels == ks[j]] = ks[i]


def _bounded_cluster(
    x: np.ndarray, max_points: int, cluster: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Cluster *x* (rows) with at most *max_points* rows in the O(n^2) step.

    Above the bound, an evenly spaced subset of windows (spread over the whole
    recording, so every block and speaker is represented) is clustered, and
    every window then joins the nearest centroid.  Memory and time of the
    clustering step stay fixed however long the audio is, and speakers are
    the same across blocks because one set of centroids labels them all.
    Returns (labels, unit centroids, info).
    """
    n = len(x)
    xu = _unit(x)
    if n <= max_points:
        lab = cluster(x)
        info = {"cluster_points": n, "subsampled": False}
    else:
        idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
        lab_sub = cluster(x[idx])
        ks = np.unique(lab_sub)
        cent = _unit(np.stack([xu[idx][lab_sub == k].mean(0) for k in ks]))
        lab = np.argmax(xu @ cent.T, axis=1)
        info = {"cluster_points": int(len(idx)), "subsampled": True}
    ks = np.unique(lab)
    centroids = _unit(np.stack([xu[lab == k].mean(0) for k in ks]))
    # final assignment: every window to its nearest centroid (one speaker set for all blocks)
    lab = np.argmax(xu @ centroids.T, axis=1)
    used = np.unique(lab)
    return np.searchsorted(used, lab), centroids[used], info


