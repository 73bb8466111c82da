"""Average-linkage agglomerative clustering on cosine distances, in numpy.

The same tree as ``scipy.cluster.hierarchy.linkage(x, "average", "cosine")``
(nearest-neighbour chain, as scipy computes it) and the same flat clusters
as ``fcluster(..., "distance")`` / ``fcluster(..., "maxclust")``, without
importing ``scipy.cluster``: that import pulls in ``scipy.spatial`` and
``scipy.special`` and costs about a CPU-second per process, as much as
diarizing a short clip.  ``tests/test_diarize_runtime.py`` checks it against
scipy on real speaker embeddings.
"""

from __future__ import annotations

import numpy as np


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """(n, n) float64 cosine distances between the rows of *x* (``1 - cos``)."""
    x = np.asarray(x, dtype=np.float64)
    u = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    d = 1.0 - u @ u.T
    np.clip(d, 0.0, 2.0, out=d)
    return d


def average_linkage(x: np.ndarray) -> np.ndarray:
    """Linkage matrix ``Z`` ((n-1, 4): cluster a, cluster b, distance, size) of average-linkage AHC
    with cosine distance, in scipy's format (merges sorted by distance, new clusters numbered n, n+1, ...)."""
    n = len(x)
    if n < 2:
        return np.zeros((0, 4))
    d = cosine_distances(x)
    np.fill_diagonal(d, np.inf)
    size = np.ones(n)
    merges: list[tuple[int, int, float]] = []
    chain: list[int] = []
    alive = np.ones(n, dtype=bool)
    for _ in range(n - 1):
        if not chain:
            chain.append(int(np.flatnonzero(alive)[0]))
        while True:  # follow nearest neighbours until two clusters are each other's nearest
            a = chain[-1]
            row = d[a]
            b = int(np.argmin(row))
            if len(chain) > 1 and row[chain[-2]] <= row[b]:
                b = chain[-2]
            if len(chain) > 1 and b == chain[-2]:
                break
            chain.append(b)
        chain.pop()
        chain.pop()
        a, b = min(a, b), max(a, b)
        merges.append((a, b, float(d[a, b])))
        na, nb = size[a], size[b]
        new = (na * d[a] + nb * d[b]) / (na + nb)  # Lance-Williams for average linkage
        d[b, :] = new
        d[:, b] = new
        d[b, b] = np.inf
        d[a, :] = np.inf
        d[:, a] = np.inf
        size[b] = na + nb
        alive[a] = False
    # merges sorted by height; union-find over the points gives scipy's cluster numbers (n, n+1, ...)
    order = np.argsort([m[2] for m in merges], kind="stable")
    parent = list(range(2 * n - 1))
    csize = [1.0] * (2 * n - 1)
    z = np.zeros((n - 1, 4))
    for k, m in enumerate(order):
        a, b, dist = merges[m]
        ra, rb = _root(parent, a), _root(parent, b)
        parent[ra] = parent[rb] = n + k
        csize[n + k] = csize[ra] + csize[rb]
        z[k] = (min(ra, rb), max(ra, rb), dist, csize[n + k])
    return z


def _root(parent: list[int], i: int) -> int:
    """Union-find root of *i* (with path halving)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _flat(z: np.ndarray, n: int, merges: int) -> np.ndarray:
    """Labels 1..k after applying the first *merges* rows of *z*; numbered by first appearance."""
    parent = list(range(2 * n - 1))
    for k in range(merges):
        a, b = int(z[k, 0]), int(z[k, 1])
        parent[_root(parent, a)] = parent[_root(parent, b)] = n + k
    ids: dict[int, int] = {}
    return np.array([ids.setdefault(_root(parent, i), len(ids) + 1) for i in range(n)], dtype=int)


def fcluster_distance(z: np.ndarray, t: float) -> np.ndarray:
    """Flat clusters whose merges are all at distance <= *t* (scipy's ``criterion="distance"``)."""
    n = len(z) + 1
    return _flat(z, n, int(np.searchsorted(z[:, 2], t, side="right")) if len(z) else 0)


def fcluster_maxclust(z: np.ndarray, k: int) -> np.ndarray:
    """At most *k* flat clusters, cutting the tree as low as possible (scipy's ``criterion="maxclust"``)."""
    n = len(z) + 1
    k = max(1, min(int(k), n))
    m = n - k
    # merges at the same height as the last one needed are applied together (scipy cuts at a distance)
    while 0 < m < len(z) and z[m, 2] == z[m - 1, 2]:
        m += 1
    return _flat(z, n, m)
