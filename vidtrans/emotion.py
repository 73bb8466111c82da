"""Speech emotion per segment and per speaker.

``analyze(transcript, audio, options) -> Transcript`` gives every segment long
and loud enough an :class:`vidtrans.schema.Emotion` (label, score, all scores,
source) and records in ``Segment.meta["emotion_skipped"]`` why any other
segment got none.  Segments are the transcript's sentences, already split at
speaker changes by diarization, so each carries one speaker.

Backends (by name, ``EmotionOptions.backend``; the CLI's ``--emotion-backend``
takes ``heuristic``, ``acoustic:MODEL.npz`` or ``pretrained:NAME_OR_DIR``):

``heuristic`` (default, offline, no training)
    **arousal** from prosody -- loudness, pitch range and speaking rate of the
    segment, each standardised against the same speaker's other segments --
    and **valence** from the words with VADER's lexicon (ships in the
    ``vaderSentiment`` wheel).  Both in [-1, 1], reported as such
    (``scores = {"arousal": a, "valence": v}``); the label is only a name for
    the quadrant (``aroused-positive``, ``calm-negative``, ``neutral``,
    ``aroused``, ...), *not* a recognised emotion category.
``acoustic``
    a classifier trained with ``vidtrans emotion train`` (see
    :mod:`vidtrans.emotion_acoustic`); it knows the classes of its training
    data and nothing else -- a model trained on EmoDB has learnt acted German
    speech.
``pretrained``
    a Hugging Face audio-classification model (``AutoModelForAudioClassification``)
    by hub name or local directory; labels are mapped onto a common set
    (:data:`COMMON_LABELS`) plus ``other``.  GPU when present.

Per-speaker summaries (:func:`speaker_summary`), emotion-change points
(:func:`change_points`) and plots (:func:`plot_timeline`,
:func:`plot_distribution`, :func:`plot_confusion`) work on the result.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigurationError, MissingDependencyError, ModelError
from .schema import Emotion, Segment, Transcript

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: the classes pretrained models' labels are mapped onto (anything else -> "other")
COMMON_LABELS = ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "calm", "other")
_ALIASES = {
    "ang": "anger", "angry": "anger", "anger": "anger", "mad": "anger",
    "bor": "boredom", "bored": "boredom", "boredom": "boredom",
    "dis": "disgust", "disgust": "disgust", "disgusted": "disgust",
    "fea": "fear", "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "hap": "happiness", "happy": "happiness", "happiness": "happiness", "joy": "happiness", "exc": "happiness",
    "excited": "happiness",
    "neu": "neutral", "neutral": "neutral",
    "sad": "sadness", "sadness": "sadness",
    "sur": "surprise", "surprise": "surprise", "surprised": "surprise",
    "calm": "calm",
}


class EmotionError(ModelError):
    """An emotion backend could not load or run."""


@dataclass
class EmotionOptions:
    """What ``analyze`` does; every field has a CLI flag / notebook parameter of the same name."""

    #: "heuristic" (offline default), "acoustic" or "pretrained"; "acoustic:PATH" / "pretrained:NAME" also work
    backend: str = "heuristic"
    #: acoustic: a model file from ``vidtrans emotion train``; pretrained: hub name or local directory
    model: str | None = None
    #: stretches shorter than this (seconds) get no emotion (reason in ``meta["emotion_skipped"]``)
    min_duration: float = 0.5
    #: stretches quieter than this RMS level (dBFS) are treated as silence and skipped
    silence_db: float = -50.0
    #: pretrained models: stretches longer than this are cut to their first ``max_duration`` seconds
    max_duration: float = 30.0
    #: "auto" (GPU when present), "cpu" or "cuda" (pretrained backend)
    device: str = "auto"
    #: heuristic: |arousal| / |valence| below this is "neutral" on that axis
    neutral_band: float = 0.25


# --------------------------------------------------------------------------- stretches
@dataclass(frozen=True)
class Stretch:
    """A piece of audio to label: one segment (or turn) of one speaker."""

    index: int
    start: float
    end: float
    audio: np.ndarray
    speaker: str | None
    text: str = ""
    n_words: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start


def rms_db(y: np.ndarray) -> float:
    if y.size == 0:
        return -math.inf
    return 20 * math.log10(max(float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))), 1e-12))


# --------------------------------------------------------------------------- backends
class Backend:
    """Labels a batch of stretches (all of one recording)."""

    name = "?"
    #: shortest stretch the backend can label (seconds)
    min_duration = 0.3

    def predict(self, stretches: Sequence[Stretch]) -> list[Emotion]:
        raise NotImplementedError


class HeuristicBackend(Backend):
    """Arousal from prosody normalised per speaker, valence from the text (VADER)."""

    name = "heuristic"
    min_duration = 0.3

    def __init__(self, options: EmotionOptions):
        self.band = options.neutral_band
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:
            raise MissingDependencyError("vaderSentiment", extra="emotion", purpose="text valence") from exc
        self.vader = SentimentIntensityAnalyzer()

    @staticmethod
    def prosody(y: np.ndarray, n_words: int, duration: float) -> tuple[float, float, float]:
        """(loudness dB of voiced frames, pitch range in semitones, speaking rate)."""
        import librosa

        y = np.asarray(y, dtype=np.float32)
        if y.size < 1024:
            y = np.pad(y, (0, 1024 - y.size))
        rms = librosa.feature.rms(y=y, frame_length=400, hop_length=160)[0]
        active = rms > 0.1 * (rms.max() + 1e-12)
        loud = 20 * np.log10(np.mean(rms[active]) + 1e-9)
        f0, voiced, _ = None, None, None
        f0 = librosa.yin(y, fmin=60, fmax=500, sr=SAMPLE_RATE, frame_length=1024, hop_length=160)
        n = min(len(f0), len(rms))
        flat = librosa.feature.spectral_flatness(y=y, n_fft=1024, hop_length=160)[0][:n]
        voiced = active[:n] & (flat < 0.3)
        if voiced.sum() > 3:
            st = 12 * np.log2(f0[:n][voiced])
            prange = float(np.percentile(st, 90) - np.percentile(st, 10))
        else:
            prange = 0.0
        if n_words > 0:
            rate = n_words / max(duration, 1e-3)
        else:  # syllable-ish rate: peaks of the onset envelope per second
            env = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=160)
            rate = len(librosa.util.peak_pick(env, pre_max=3, post_max=3, pre_avg=3, post_avg=5, delta=0.5, wait=8)) / max(duration, 1e-3)
        return float(loud), prange, float(rate)

    def predict(self, stretches: Sequence[Stretch]) -> list[Emotion]:
        feats = np.array([self.prosody(s.audio, s.n_words, s.duration) for s in stretches], dtype=np.float64).reshape(-1, 3)
        z = np.zeros_like(feats)
        speakers = np.array([s.speaker or "" for s in stretches])
        for spk in np.unique(speakers):
            m = speakers == spk
            ref = feats[m] if m.sum() >= 2 else feats  # one stretch only: compare with everybody
            if len(ref) < 2:
                continue
            z[m] = (feats[m] - ref.mean(0)) / (ref.std(0) + np.array([1.0, 1.0, 0.5]))
        # loudness and pitch range carry most of arousal; rate helps when words are timed
        arousal = np.tanh(0.6 * z[:, 0] + 0.45 * z[:, 1] + 0.25 * z[:, 2])
        out = []
        for s, a in zip(stretches, arousal):
            v = float(self.vader.polarity_scores(s.text)["compound"]) if s.text.strip() else 0.0
            out.append(Emotion(label=self.label(float(a), v, self.band), score=round(max(abs(float(a)), abs(v)), 4),
                               scores={"arousal": round(float(a), 4), "valence": round(v, 4)},
                               source="heuristic:prosody+vader"))
        return out

    @staticmethod
    def label(arousal: float, valence: float, band: float = 0.25) -> str:
        """Quadrant name: ``aroused``/``calm`` and ``positive``/``negative``, or ``neutral``."""
        parts = []
        if arousal >= band:
            parts.append("aroused")
        elif arousal <= -band:
            parts.append("calm")
        if valence >= band:
            parts.append("positive")
        elif valence <= -band:
            parts.append("negative")
        return "-".join(parts) or "neutral"


class AcousticBackend(Backend):
    """A model trained with ``vidtrans emotion train`` (per-speaker standardisation)."""

    name = "acoustic"
    min_duration = 0.5

    def __init__(self, options: EmotionOptions):
        from . import emotion_acoustic as ea

        if not options.model:
            raise ConfigurationError("the acoustic emotion backend needs a model: --emotion-backend acoustic:MODEL.npz "
                                     "(train one with `vidtrans emotion train DIR --out MODEL.npz`)")
        self.model = ea.AcousticModel.load(options.model)
        self.source = f"acoustic:{Path(options.model).name}"

    def predict(self, stretches: Sequence[Stretch]) -> list[Emotion]:
        P = self.model.predict([s.audio for s in stretches], [s.speaker for s in stretches])
        labels = self.model.labels
        out = []
        for p in P:
            k = int(p.argmax())
            out.append(Emotion(label=labels[k], score=round(float(p[k]), 4),
                               scores={lab: round(float(x), 4) for lab, x in zip(labels, p)}, source=self.source))
        return out


def map_label(label: str) -> str:
    """A model's class name on the common set (``COMMON_LABELS``), else ``other``."""
    key = re.sub(r"[^a-z]", "", label.lower())
    return _ALIASES.get(key, _ALIASES.get(key[:3], "other"))


class PretrainedBackend(Backend):
    """Hugging Face ``AutoModelForAudioClassification`` by name or local directory."""

    name = "pretrained"
    min_duration = 0.5

    def __init__(self, options: EmotionOptions):
        if not options.model:
            raise ConfigurationError("the pretrained emotion backend needs a model: --emotion-backend pretrained:NAME_OR_DIR")
        self.max_samples = int(options.max_duration * SAMPLE_RATE)
        self.extractor, self.model, self.device = _load_pretrained(options.model, options.device)
        self.source = f"pretrained:{options.model}"
        id2label = getattr(self.model.config, "id2label", None) or {}
        self.raw_labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(self.model.config.num_labels)]
        self.common = [map_label(x) for x in self.raw_labels]

    def predict(self, stretches: Sequence[Stretch]) -> list[Emotion]:
        import torch

        out = []
        with torch.inference_mode():
            for s in stretches:
                y = np.asarray(s.audio[: self.max_samples], dtype=np.float32)
                inputs = self.extractor(y, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                probs = torch.softmax(self.model(**inputs).logits[0].float(), -1).cpu().numpy()
                scores: dict[str, float] = {}
                for lab, p in zip(self.common, probs):
                    scores[lab] = scores.get(lab, 0.0) + float(p)
                best = max(scores, key=scores.__getitem__)
                raw = self.raw_labels[int(probs.argmax())]
                out.append(Emotion(label=best, score=round(scores[best], 4),
                                   scores={k: round(v, 4) for k, v in scores.items()}, source=f"{self.source}#{raw}"))
        return out


@lru_cache(maxsize=2)
def _load_pretrained(name: str, device: str = "auto"):
    try:
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
    except ImportError as exc:
        raise MissingDependencyError("transformers", purpose="the pretrained emotion backend") from exc
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    local = Path(name).expanduser()
    offline = local.is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        extractor = AutoFeatureExtractor.from_pretrained(str(local) if local.is_dir() else name, local_files_only=offline)
        model = AutoModelForAudioClassification.from_pretrained(str(local) if local.is_dir() else name, local_files_only=offline)
    except (OSError, ValueError) as exc:
        hint = "" if local.is_dir() else " (offline: download it once with network, or pass a local directory)"
        raise EmotionError(f"cannot load audio-classification model {name!r}{hint}: {exc}") from exc
    model.eval().to(device)
    return extractor, model, device


#: backend name -> factory
BACKENDS: dict[str, Callable[[EmotionOptions], Backend]] = {
    "heuristic": HeuristicBackend,
    "acoustic": AcousticBackend,
    "pretrained": PretrainedBackend,
}


def parse_backend(spec: str) -> tuple[str, str | None]:
    """``"acoustic:model.npz"`` -> ("acoustic", "model.npz"); ``"heuristic"`` -> ("heuristic", None)."""
    name, sep, model = spec.partition(":")
    name = name.strip().lower()
    if name not in BACKENDS:
        raise ConfigurationError(f"unknown emotion backend {name!r}; choose from {', '.join(BACKENDS)}")
    return name, (model.strip() or None) if sep else None


def get_backend(options: EmotionOptions) -> Backend:
    name, model = parse_backend(options.backend)
    if model:
        options = dataclasses.replace(options, backend=name, model=model)
    return BACKENDS[name](options)


# --------------------------------------------------------------------------- the stage
def _stretches(transcript: Transcript, audio: np.ndarray, options: EmotionOptions, min_duration: float
               ) -> tuple[list[Stretch], dict[int, str]]:
    keep, skipped = [], {}
    for i, seg in enumerate(transcript.segments):
        dur = seg.end - seg.start
        if dur < min_duration:
            skipped[i] = f"too short ({dur:.2f} s < {min_duration:.2f} s)"
            continue
        a, z = max(0, int(seg.start * SAMPLE_RATE)), min(len(audio), int(math.ceil(seg.end * SAMPLE_RATE)))
        y = audio[a:z]
        if y.size < min_duration * SAMPLE_RATE:
            skipped[i] = "outside the audio"
            continue
        level = rms_db(y)
        if level < options.silence_db:
            skipped[i] = f"silent ({level:.0f} dBFS < {options.silence_db:.0f})"
            continue
        keep.append(Stretch(i, seg.start, seg.end, y, seg.speaker, seg.text, len(seg.words) or len(seg.text.split())))
    return keep, skipped


def analyze(
    transcript: Transcript,
    audio: Any,
    options: EmotionOptions | None = None,
    progress: Callable[[float, float | None], None] | None = None,
) -> Transcript:
    """Set ``Segment.emotion`` on each segment the backend can label; returns a new transcript.

    *audio*: a media path or 16 kHz mono float samples of the same recording.
    Skipped segments get ``meta["emotion_skipped"]`` (the reason); the
    per-speaker summary goes to ``transcript.insights["emotion"]``.
    """
    from .audio import as_samples

    options = options or EmotionOptions()
    backend = get_backend(options)
    samples = as_samples(audio)
    min_dur = max(options.min_duration, backend.min_duration)
    stretches, skipped = _stretches(transcript, samples, options, min_dur)
    emotions: dict[int, Emotion] = {}
    if stretches:
        for s, e in zip(stretches, backend.predict(stretches)):
            emotions[s.index] = e
    if progress is not None:
        progress(float(transcript.duration or len(samples) / SAMPLE_RATE), float(transcript.duration or len(samples) / SAMPLE_RATE))
    segments = []
    for i, seg in enumerate(transcript.segments):
        if i in emotions:
            meta = {k: v for k, v in seg.meta.items() if k != "emotion_skipped"}
            segments.append(dataclasses.replace(seg, emotion=emotions[i], meta=meta))
        else:
            segments.append(dataclasses.replace(seg, emotion=None, meta={**seg.meta, "emotion_skipped": skipped.get(i, "not labelled")}))
    out = transcript.replace(segments=tuple(segments))
    summary = {"backend": backend.name, "source": next(iter(emotions.values())).source if emotions else backend.name,
               "labelled": len(emotions), "skipped": len(skipped), "speakers": speaker_summary(out),
               "change_points": change_points(out)}
    if backend.name == "acoustic":
        summary["trained_on"] = backend.model.trained_on  # type: ignore[attr-defined]
    log.info("emotion (%s): %d segments labelled, %d skipped", backend.name, len(emotions), len(skipped))
    return out.replace(insights={**out.insights, "emotion": summary})


# --------------------------------------------------------------------------- aggregation
def _labelled(transcript: Transcript) -> list[Segment]:
    return [s for s in transcript.segments if s.emotion is not None]


def speaker_summary(transcript: Transcript) -> dict[str, dict[str, Any]]:
    """Per speaker: labelled time, time share of each label, duration-weighted mean scores."""
    out: dict[str, dict[str, Any]] = {}
    for seg in _labelled(transcript):
        spk = seg.speaker or "unknown"
        d = out.setdefault(spk, {"seconds": 0.0, "labels": {}, "mean_scores": {}})
        d["seconds"] += seg.duration
        d["labels"][seg.emotion.label] = d["labels"].get(seg.emotion.label, 0.0) + seg.duration
        for k, v in seg.emotion.scores.items():
            d["mean_scores"][k] = d["mean_scores"].get(k, 0.0) + v * seg.duration
    for d in out.values():
        total = d["seconds"] or 1.0
        d["labels"] = {k: round(v / total, 4) for k, v in sorted(d["labels"].items(), key=lambda kv: -kv[1])}
        d["mean_scores"] = {k: round(v / total, 4) for k, v in d["mean_scores"].items()}
        d["dominant"] = next(iter(d["labels"]), None)
        d["seconds"] = round(d["seconds"], 3)
    return out


def change_points(transcript: Transcript, min_stay: int = 2) -> list[dict[str, Any]]:
    """Times where a speaker's emotion label changes and then holds for ``min_stay`` labelled segments.

    One-segment blips are not changes; each speaker is followed separately.
    """
    by_speaker: dict[str, list[Segment]] = {}
    for seg in _labelled(transcript):
        by_speaker.setdefault(seg.speaker or "unknown", []).append(seg)
    points = []
    for spk, segs in by_speaker.items():
        current = segs[0].emotion.label
        for i in range(1, len(segs)):
            lab = segs[i].emotion.label
            if lab != current and all(s.emotion.label == lab for s in segs[i : i + min_stay]) and i + min_stay <= len(segs):
                points.append({"time": segs[i].start, "speaker": spk, "from": current, "to": lab})
                current = lab
    return sorted(points, key=lambda p: p["time"])


# --------------------------------------------------------------------------- plots
def plot_timeline(transcript: Transcript, ax=None):
    """Per speaker, one row: arousal/valence lines (heuristic) or label bars (classifiers) over time."""
    import matplotlib.pyplot as plt

    segs = _labelled(transcript)
    speakers = list(dict.fromkeys(s.speaker or "unknown" for s in segs)) or ["unknown"]
    dimensional = bool(segs) and {"arousal", "valence"} <= set(segs[0].emotion.scores)
    if ax is None:
        fig, axes = plt.subplots(len(speakers), 1, figsize=(10, 1.8 * len(speakers) + 0.6), sharex=True, squeeze=False)
        axes = axes[:, 0]
    else:
        fig, axes = ax.figure, [ax] * len(speakers)
    labels = sorted({s.emotion.label for s in segs})
    colours = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
    for a, spk in zip(axes, speakers):
        mine = [s for s in segs if (s.speaker or "unknown") == spk]
        if dimensional:
            t = [(s.start + s.end) / 2 for s in mine]
            a.plot(t, [s.emotion.scores["arousal"] for s in mine], "o-", label="arousal")
            a.plot(t, [s.emotion.scores["valence"] for s in mine], "s-", label="valence")
            a.axhline(0, color="grey", lw=0.5)
            a.set_ylim(-1.05, 1.05)
        else:
            for s in mine:
                a.barh(0, s.duration, left=s.start, color=colours[s.emotion.label], alpha=0.35 + 0.65 * s.emotion.score)
            a.set_yticks([])
        a.set_ylabel(spk)
    if dimensional:
        axes[0].legend(loc="upper right", fontsize="small")
    else:
        from matplotlib.patches import Patch

        axes[0].legend(handles=[Patch(color=c, label=lab) for lab, c in colours.items()], loc="upper right",
                       fontsize="small", ncol=min(4, len(colours) or 1))
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("emotion over time per speaker")
    return fig


def plot_distribution(transcript: Transcript, ax=None):
    """Stacked bar per speaker: share of labelled speaking time per label."""
    import matplotlib.pyplot as plt

    summary = speaker_summary(transcript)
    labels = sorted({lab for d in summary.values() for lab in d["labels"]})
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 0.6 * max(2, len(summary)) + 1.2))
    bottom = np.zeros(len(summary))
    names = list(summary)
    for i, lab in enumerate(labels):
        vals = np.array([summary[s]["labels"].get(lab, 0.0) for s in names])
        ax.barh(names, vals, left=bottom, label=lab, color=plt.cm.tab10(i % 10))
        bottom += vals
    ax.set_xlabel("share of labelled speaking time")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("emotion distribution per speaker")
    return ax.figure


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], ax=None, title: str = ""):
    """Confusion matrix (rows: true, columns: predicted) with row-normalised colours and counts."""
    import matplotlib.pyplot as plt

    c = np.asarray(confusion, dtype=float)
    norm = c / np.maximum(1, c.sum(1, keepdims=True))
    if ax is None:
        fig, ax = plt.subplots(figsize=(1 + 0.7 * len(labels), 0.8 + 0.6 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(c[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (leave one speaker out)")
    ax.figure.tight_layout()
    return ax.figure
