"""Clustering and speaker counting of window embeddings."""

from __future__ import annotations

from dataclasses import dataclass
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


# --------------------------------------------------------------------------- AHC with a calibrated threshold
@dataclass(frozen=True)
class ClusterParams:
    """Speaker counting and clustering parameters of the local backend (chosen by leave-one-clip-out CV)."""

    #: average-linkage AHC stops merging window clusters below this cosine similarity
    threshold: float = 0.4
    #: a cluster is a speaker only with at least this much clean speech (seconds) ...
    min_speaker_seconds: float = 0.25
    #: ... and at least this fraction of the clean windows
    min_speaker_fraction: float = 0.03
    #: speakers whose centroids are more similar than this are merged (count estimated only); no effect on
    #: the 30 s dev clips (a tie in LOO), 0.8 keeps far-field voices of long meetings apart (bench long inputs)
    merge: float = 0.80
    #: windows with at least this fraction of single-speaker frames drive the clustering
    min_purity: float = 0.9
    #: centroid re-estimation / reassignment rounds after AHC
    refine_iterations: int = 3
    #: a frame has k speakers when the segmentation chunks covering it average more than k - 1 + this
    speech_threshold: float = 0.5
    #: at least k speakers when, in ``min_chunks`` 10 s chunks, the segmentation model hears k local
    #: speakers each talking this long (seconds; 0 = off): speakers heard only in overlap still count
    local_seconds: float = 1.0
    min_chunks: int = 3
    #: how speakers beyond the estimated count are made when more are asked for (``num/min_speakers``
    #: or the segmentation bound): "outlier" = the most distinct of a group of the windows the found
    #: speakers explain worst and a found speaker cut in two (see ``_grow``); "tree" = a finer cut of
    #: the AHC tree (the former method: it cuts the biggest speakers first)
    grow: str = "outlier"
    #: a grown speaker's seed needs this many windows closer to it than to any found speaker
    grow_support: int = 6
    #: how the candidate speaker is chosen (see ``_grow``): "segmentation" = the one that keeps apart most
    #: pairs of local speakers the segmentation model hears in one chunk, then the least similar to the
    #: others; "distinct" = the least similar only
    grow_choice: str = "segmentation"
    #: a local speaker takes part in that test with this much solo speech in its chunk (seconds)
    local_group_seconds: float = 2.0
    #: a grown speaker takes a window only when this much more similar to it than to the found speakers
    grow_margin: float = 0.0


def _centroids(xu: np.ndarray, labels: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    out = np.zeros((k, xu.shape[1]))
    for j in range(k):
        sel = labels == j
        if mask is not None and (sel & mask).any():
            sel = sel & mask
        if sel.any():
            out[j] = xu[sel].mean(0)
    return _unit(out)


def _merge_closest(cent: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Merge the two most similar centroids (weighted mean); returns (centroids, weights, similarity)."""
    sim = cent @ cent.T
    np.fill_diagonal(sim, -np.inf)
    i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
    s = float(sim[i, j])
    merged = _unit(weight[i] * cent[i] + weight[j] * cent[j])
    keep = [m for m in range(len(cent)) if m not in (i, j)]
    return np.vstack([cent[keep], merged[None]]), np.r_[weight[keep], weight[i] + weight[j]], s


def ahc_cluster(
    embeddings: np.ndarray,
    purity: np.ndarray | None = None,
    params: ClusterParams = ClusterParams(),
    seconds_per_window: float = 0.25,
    num_clusters: int | None = None,
    min_clusters: int = 1,
    max_clusters: int = 20,
    groups: list[list[np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Cluster window embeddings and count speakers; returns (labels, unit centroids, info).

    1. Average-linkage AHC (cosine) on the *clean* windows (no overlap, no
       silence) stopped at ``params.threshold``.
    2. Clusters with too little clean speech are not speakers: their windows
       join the nearest real speaker (one voice on thin evidence stays one).
    3. Centroids are re-estimated and every window reassigned a few times;
       speakers whose centroids are closer than ``params.merge`` are merged.
    4. ``min/max/num_clusters`` are honoured by adding the most distinct
       speakers the windows allow (``_grow``: the worst explained windows, or a
       found speaker cut in two only when its halves are clearly two voices)
       or by merging the closest speakers, so a given count that equals the
       estimated one changes nothing.
    """
    from .linkage import average_linkage, fcluster_distance, fcluster_maxclust

    n = len(embeddings)
    if num_clusters:
        min_clusters = max_clusters = num_clusters
    if n == 0:
        return np.zeros(0, dtype=int), np.zeros((0, embeddings.shape[1] if embeddings.ndim == 2 else 192)), {}
    xu = _unit(embeddings.astype(np.float64))
    purity = np.ones(n) if purity is None else np.asarray(purity)
    clean = purity >= params.min_purity
    if clean.sum() < max(4, min(n, 2 * min_clusters)):
        clean = np.ones(n, dtype=bool)
    xc = xu[clean]
    nc = len(xc)
    info: dict[str, Any] = {"clean_windows": int(nc)}
    if nc < 2 or max_clusters <= 1:
        cent = _unit(xu[clean].mean(0, keepdims=True))
        return np.zeros(n, dtype=int), cent, info | {"ahc_clusters": 1}
    z = average_linkage(xc)
    min_windows = max(params.min_speaker_seconds / seconds_per_window, params.min_speaker_fraction * nc, 1.0)

    def speakers_of(lab: np.ndarray) -> np.ndarray:
        ids, sizes = np.unique(lab, return_counts=True)
        big = ids[sizes >= min_windows]
        if not len(big):
            big = ids[[int(np.argmax(sizes))]]
        return np.stack([xc[lab == i].mean(0) for i in big])

    lab = fcluster_distance(z, 1.0 - params.threshold)
    info["ahc_clusters"] = int(lab.max())
    cent = _unit(speakers_of(lab))
    # refine: nearest-centroid reassignment, centroids from clean windows
    for _ in range(params.refine_iterations):
        a = np.argmax(xu @ cent.T, axis=1)
        used = np.unique(a)
        cent = _centroids(xu, np.searchsorted(used, a), len(used), clean)
    weight = np.array([(np.argmax(xc @ cent.T, axis=1) == j).sum() for j in range(len(cent))], dtype=float)
    # merge speakers that are not clearly separate
    while len(cent) > max(1, min_clusters):
        sim = cent @ cent.T
        np.fill_diagonal(sim, -np.inf)
        if sim.max() < params.merge and len(cent) <= max_clusters:
            break
        cent, weight, _ = _merge_closest(cent, weight)
    found = len(cent)
    if len(cent) < min_clusters:
        if params.grow == "tree":  # a finer cut of the same tree (splits the biggest speakers first)
            cent = _finer_cut(z, xc, xu, clean, min_clusters, min_windows, params)
        else:  # new speakers from the windows the found ones explain worst
            cent = _grow(xu, clean, cent, min_clusters, params, groups)
    if params.grow != "tree":
        info["grown_from"] = found  # centroids from this index on were added to reach the count asked for
    labels = np.argmax(xu @ cent.T, axis=1)
    info["num_speakers_estimated"] = int(len(cent))
    return labels, cent, info


def assign(xu: np.ndarray, cent: np.ndarray, found: int | None = None, margin: float = 0.0) -> np.ndarray:
    """Nearest centroid of every (unit) row; the centroids from *found* on were added to reach a given
    count and take a row only when ``margin`` closer than the found ones (and at least their nearest)."""
    sim = xu @ cent.T
    if found is None or found >= len(cent) or not margin or not len(xu):
        return np.argmax(sim, axis=1)
    sim[:, found:] -= margin
    labels = np.argmax(sim, axis=1)
    for j in range(found, len(cent)):
        if not (labels == j).any():
            labels[int(np.argmax(sim[:, j] - sim[:, :found].max(1)))] = j
    return labels


def _finer_cut(z, xc, xu, clean, k, min_windows, params) -> np.ndarray:
    from .linkage import fcluster_maxclust

    nc = len(xc)
    for m in range(k, nc + 1):
        lab = fcluster_maxclust(z, m)
        ids, sizes = np.unique(lab, return_counts=True)
        order = ids[np.argsort(-sizes)]
        if (sizes >= min(min_windows, 2)).sum() >= k or m == nc:
            cent = _unit(np.stack([xc[lab == i].mean(0) for i in order[:k]]))
            break
    for _ in range(params.refine_iterations):
        a = np.argmax(xu @ cent.T, axis=1)
        cent_new = _centroids(xu, a, len(cent), clean)
        cent = np.where(np.linalg.norm(cent_new, axis=1, keepdims=True) > 0, cent_new, cent)
    return cent


def _outlier_group(xu: np.ndarray, cent: np.ndarray, support: int) -> np.ndarray:
    """Rows closer to a seed row than to any centroid, the seed being the worst explained row with at
    least *support* such rows (the worst explained row if none has)."""
    best = (xu @ cent.T).max(1)
    for i in np.argsort(best):
        grp = (xu @ xu[i]) > best
        if grp.sum() >= support:
            return grp
    return (xu @ xu[int(np.argmin(best))]) > best


def _split(xu: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Two unit centroids of *rows* cut in two by average-linkage AHC, or None when it cannot be split."""
    from .linkage import average_linkage, fcluster_maxclust

    if len(rows) < 4:
        return None
    lab = fcluster_maxclust(average_linkage(xu[rows]), 2)
    if lab.max() < 2:
        return None
    return _unit(xu[rows][lab == 1].mean(0)), _unit(xu[rows][lab == 2].mean(0))


def _grow(
    xu: np.ndarray, clean: np.ndarray, cent: np.ndarray, k: int, params: ClusterParams,
    groups: list[list[np.ndarray]] | None = None,
) -> np.ndarray:
    """Add speakers until there are *k*, one at a time, keeping the found ones.

    Two kinds of candidate: a group of the windows the found speakers explain
    worst (a short or overlapped speaker the count missed), or a found speaker
    cut in two (two voices the clustering merged).  With ``grow_choice`` =
    "segmentation" the candidate that keeps most pairs of the segmentation
    model's local speakers of one chunk on different speakers wins (cannot-link
    evidence, as pyannote's constrained assignment), ties going to the one
    least similar to the others; with "distinct" only the similarity counts.
    So forcing more speakers than the evidence shows does not cut a dominant
    speaker in halves unless the segmentation model hears two voices there.
    """
    links = _cannot_links(groups) if params.grow_choice == "segmentation" and groups else None
    while len(cent) < k:
        # from all windows, not only the clean ones: the speakers a count misses mostly talk in overlap
        new = _unit(xu[_outlier_group(xu, cent, params.grow_support)].mean(0))
        options = [(float((cent @ new).max()), np.vstack([cent, new[None]]))]
        lab = np.argmax(xu @ cent.T, axis=1)
        for j in range(len(cent)):
            parts = _split(xu, np.flatnonzero((lab == j) & clean))
            if parts is None:
                continue
            a, b = parts
            rest = np.delete(cent, j, axis=0)
            options.append((float(np.max(np.r_[a @ b, rest @ a, rest @ b])), np.vstack([rest, a[None], b[None]])))
        if links is not None:
            cent = min(options, key=lambda o: (-_apart(xu, o[1], links), o[0]))[1]
        else:
            cent = min(options, key=lambda o: o[0])[1]
    return cent


def _cannot_links(groups: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window index, group id) of every group member and the (P, 2) group pairs heard in one chunk."""
    win, gid, pairs, g = [], [], [], 0
    for ch in groups:
        ids = list(range(g, g + len(ch)))
        for k, members in zip(ids, ch):
            win.append(members)
            gid.append(np.full(len(members), k))
        pairs += [(a, b) for n, a in enumerate(ids) for b in ids[n + 1:]]
        g += len(ch)
    if not win:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 2), int)
    return np.concatenate(win), np.concatenate(gid), np.asarray(pairs, dtype=int).reshape(-1, 2)


def _apart(xu: np.ndarray, cent: np.ndarray, links: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
    """How many pairs of local-speaker groups of one chunk fall on different speakers (majority label)."""
    win, gid, pairs = links
    if not len(pairs):
        return 0
    lab = np.argmax(xu[win] @ cent.T, axis=1)
    votes = np.zeros((int(gid.max()) + 1, len(cent)))
    np.add.at(votes, (gid, lab), 1.0)
    maj = np.argmax(votes, axis=1)
    return int((maj[pairs[:, 0]] != maj[pairs[:, 1]]).sum())