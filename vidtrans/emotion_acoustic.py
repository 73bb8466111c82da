"""The trainable ``acoustic`` emotion backend: features, training, validation, model files.

Features of one stretch of speech (16 kHz mono), chosen by leave-one-speaker-out
cross-validation on EmoDB (see ``bench/emotion.py``):

* **Whisper encoder states** of the packaged ``tiny.en`` CTranslate2 model
  (``vidtrans.models``), mean-pooled over the stretch's frames.  Stretches of
  one speaker are packed in order, 0.1 s apart, into 30 s windows (the input
  length Whisper was trained on) and each window is encoded once, so the cost
  is one encoder pass per 30 s of speech, and a stretch is encoded in the
  context of the same speaker's other speech, as in a conversation.
* **prosody / spectrum statistics** (librosa): MFCC + deltas, spectral
  contrast, energy, zero-crossing rate, centroid, flatness, and pitch (YIN)
  level/range/slope and voicing, as mean/std/percentiles.

Features are standardised **per speaker** (the speaker's own mean and standard
deviation over all the stretches being predicted, no labels needed) when a
speaker has at least :data:`MIN_GROUP` stretches, which removes much of the
voice's own colour; otherwise a second classifier trained on globally
standardised features is used.  The classifier is multinomial logistic
regression; a model file is a plain ``.npz`` (no pickle): weights, the label
set, the feature version and what it was trained on.

What a model recognises is what it was trained on: a model trained on the
EmoDB folder has learnt *acted German* emotion from 8 actors; it does not
claim to recognise emotion in English conversation.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigurationError, MediaError, MissingDependencyError, ModelError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: bump when features change: models trained on another version refuse to load
FEATURE_VERSION = 1
#: Whisper model whose encoder gives the paralinguistic features (ships offline)
ENCODER_MODEL = "tiny.en"
WINDOW_S = 30.0
GAP_S = 0.1
#: a speaker needs this many stretches for per-speaker standardisation
MIN_GROUP = 5
#: feature groups of this version, in column order
FEATURE_SETS = ("whisper", "prosody")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".mp4", ".mkv")


class EmotionModelError(ModelError):
    """An emotion model file is missing, unreadable or of another feature version."""


class EmotionDataError(MediaError):
    """A training folder or label file cannot be used."""


# --------------------------------------------------------------------------- labels from names
#: EmoDB letter codes (German): W Wut, L Langeweile, E Ekel, A Angst, F Freude, T Trauer, N neutral
EMODB_CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
RAVDESS_CODES = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness", "05": "anger", "06": "fear",
                 "07": "disgust", "08": "surprise"}
CREMAD_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"}

_EMODB = re.compile(r"^(?:emodb_)?(\d\d)[a-z]\d\d([WLEAFTN])[a-z]$")
_RAVDESS = re.compile(r"^\d\d-\d\d-(\d\d)-\d\d-\d\d-\d\d-(\d\d)$")
_CREMAD = re.compile(r"^(\d{4})_[A-Z]{3}_([A-Z]{3})_[A-Z]{1,2}$")


def label_from_name(path: str | os.PathLike) -> tuple[str, str] | None:
    """(emotion, speaker) from an EmoDB, RAVDESS or CREMA-D file name, else None."""
    stem = Path(path).stem
    if m := _EMODB.match(stem):
        return EMODB_CODES[m.group(2)], m.group(1)
    if (m := _RAVDESS.match(stem)) and m.group(1) in RAVDESS_CODES:
        return RAVDESS_CODES[m.group(1)], m.group(2)
    if (m := _CREMAD.match(stem)) and m.group(2) in CREMAD_CODES:
        return CREMAD_CODES[m.group(2)], m.group(1)
    return None


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    label: str
    speaker: str | None


def read_labelled_folder(
    folder: str | os.PathLike,
    labels_csv: str | os.PathLike | None = None,
    label_column: str = "emotion",
    speaker_column: str = "speaker",
    file_column: str = "file",
) -> list[LabelledClip]:
    """Clips of *folder* with their labels: from *labels_csv* (default ``folder/labels.csv``
    when present) or from EmoDB/RAVDESS/CREMA-D file names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EmotionDataError(f"training folder not found: {folder}")
    csv_path = Path(labels_csv) if labels_csv else (folder / "labels.csv" if (folder / "labels.csv").is_file() else None)
    clips: list[LabelledClip] = []
    if csv_path is not None:
        if not csv_path.is_file():
            raise EmotionDataError(f"label file not found: {csv_path}")
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            for col in (file_column, label_column):
                if col not in cols:
                    raise EmotionDataError(f"{csv_path.name} has no column {col!r} (columns: {', '.join(cols)})")
            has_speaker = speaker_column in cols
            for row in reader:
                p = Path(row[file_column])
                p = p if p.is_absolute() else folder / p
                if not p.is_file():
                    raise EmotionDataError(f"{csv_path.name} lists {row[file_column]!r}, which is not in {folder}")
                clips.append(LabelledClip(p, row[label_column].strip(), (row[speaker_column].strip() or None) if has_speaker else None))
    else:
        for p in sorted(folder.rglob("*")):
            if p.suffix.lower() in AUDIO_EXTENSIONS and (lab := label_from_name(p)):
                clips.append(LabelledClip(p, lab[0], lab[1]))
        if not clips:
            raise EmotionDataError(
                f"no labels for {folder}: give --labels CSV (columns {file_column},{label_column}[,{speaker_column}]) "
                "or use EmoDB/RAVDESS/CREMA-D file names"
            )
    if len({c.label for c in clips}) < 2:
        raise EmotionDataError(f"{folder}: need at least two emotion labels to train, found {sorted({c.label for c in clips})}")
    return clips


# --------------------------------------------------------------------------- features
def _stats(m: np.ndarray) -> np.ndarray:
    return np.concatenate([m.mean(1), m.std(1), np.percentile(m, 10, axis=1), np.percentile(m, 90, axis=1)])


def prosody_features(y: np.ndarray) -> np.ndarray:
    """Spectral and prosodic statistics of one stretch (fixed length vector)."""
    try:
        import librosa
    except ImportError as exc:
        raise MissingDependencyError("librosa", extra="emotion", purpose="acoustic emotion features") from exc
    y = np.asarray(y, dtype=np.float32)
    if y.size < 1024:
        y = np.pad(y, (0, 1024 - y.size))
    mag = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400))
    power = mag**2
    logmel = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=40))
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=20)
    d1 = librosa.feature.delta(mfcc, width=5, mode="nearest")
    d2 = librosa.feature.delta(mfcc, width=5, order=2, mode="nearest")
    contrast = librosa.feature.spectral_contrast(S=mag, sr=SAMPLE_RATE, n_fft=512)
    rms = librosa.feature.rms(S=mag, frame_length=512)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=160)[0]
    cent = librosa.feature.spectral_centroid(S=mag, sr=SAMPLE_RATE)[0]
    flat = librosa.feature.spectral_flatness(S=mag)[0]
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=SAMPLE_RATE, frame_length=1024, hop_length=160)
    n = min(len(f0), len(rms), len(zcr))
    voiced = (rms[:n] > 0.1 * (rms.max() + 1e-9)) & (flat[:n] < 0.3)
    lf0 = np.log(f0[:n][voiced]) if voiced.sum() > 2 else np.zeros(3)
    df0 = np.abs(np.diff(lf0)) if lf0.size > 2 else np.zeros(2)
    p5, p95 = np.percentile(lf0, [5, 95])
    pitch = np.array([lf0.mean(), lf0.std(), p5, p95, p95 - p5, df0.mean(), voiced.mean()])
    spec = np.vstack([np.log(rms[:n] + 1e-6), zcr[:n], np.log(cent[:n] + 1), np.log(flat[:n] + 1e-8)])
    out = np.concatenate([_stats(mfcc), _stats(d1)[:40], _stats(d2)[:40], _stats(contrast), _stats(spec), pitch])
    return np.nan_to_num(out.astype(np.float32))


class WhisperEncoder:
    """Mean-pooled Whisper encoder states of stretches, packed per speaker into 30 s windows."""

    def __init__(self, model: str = ENCODER_MODEL, device: str = "cpu", threads: int = 0):
        try:
            import ctranslate2
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as exc:
            raise MissingDependencyError("faster-whisper", purpose="acoustic emotion features") from exc
        from .models import resolve_model

        path = resolve_model(model)
        try:
            self.model = ctranslate2.models.Whisper(str(path), device=device, compute_type="int8" if device == "cpu" else "default",
                                                    intra_threads=threads)
        except Exception as exc:  # noqa: BLE001 - any load failure is a model problem
            raise EmotionModelError(f"cannot load the Whisper encoder {path}: {exc}") from exc
        n_mels = 128 if "large-v3" in str(path) else 80
        self.extractor = FeatureExtractor(feature_size=n_mels)
        self._sv = ctranslate2.StorageView
        self.name = model

    def _encode(self, window: np.ndarray) -> np.ndarray:
        feats = self.extractor(window)[:, :3000]
        if feats.shape[1] < 3000:
            feats = np.pad(feats, ((0, 0), (0, 3000 - feats.shape[1])))
        out = self.model.encode(self._sv.from_array(np.ascontiguousarray(feats[None], dtype=np.float32)), to_cpu=True)
        return np.asarray(out)[0]  # (1500, d): 20 ms per state

    def pool(self, stretches: Sequence[np.ndarray], groups: Sequence[Any] | None = None) -> np.ndarray:
        """One mean-pooled vector per stretch; stretches of a group are packed in the given order."""
        total = int(WINDOW_S * SAMPLE_RATE)
        gap = int(GAP_S * SAMPLE_RATE)
        groups = list(groups) if groups is not None else [None] * len(stretches)
        out: list[np.ndarray | None] = [None] * len(stretches)
        order: dict[Any, list[int]] = {}
        for i, g in enumerate(groups):
            order.setdefault(g, []).append(i)
        for idx in order.values():
            pending: list[tuple[int, int, int]] = []  # (stretch index, start, end) in the window buffer
            buf = np.zeros(total, dtype=np.float32)
            pos = 0

            def flush() -> None:
                nonlocal pending, pos, buf
                if not pending:
                    return
                states = self._encode(buf)
                for i, a, z in pending:
                    sl = states[a // 320 : max(a // 320 + 1, (z + 319) // 320)]
                    out[i] = sl.mean(0) if out[i] is None else (out[i] + sl.mean(0)) / 2
                pending, pos, buf = [], 0, np.zeros(total, dtype=np.float32)

            for i in idx:
                y = np.asarray(stretches[i], dtype=np.float32)
                for p0 in range(0, max(1, y.size), total - gap):  # longer than a window: pieces
                    piece = y[p0 : p0 + total - gap]
                    if pos + piece.size > total:
                        flush()
                    buf[pos : pos + piece.size] = piece
                    pending.append((i, pos, pos + piece.size))
                    pos += piece.size + gap
            flush()
        return np.vstack(out).astype(np.float32)


@lru_cache(maxsize=2)
def load_encoder(model: str = ENCODER_MODEL, device: str = "cpu") -> WhisperEncoder:
    return WhisperEncoder(model, device)


def extract_features(
    stretches: Sequence[np.ndarray],
    groups: Sequence[Any] | None = None,
    feature_sets: Sequence[str] = FEATURE_SETS,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Feature matrix (one row per stretch) of the given feature groups, in :data:`FEATURE_SETS` order."""
    unknown = set(feature_sets) - set(FEATURE_SETS)
    if unknown:
        raise ConfigurationError(f"unknown emotion feature set(s) {sorted(unknown)}; choose from {FEATURE_SETS}")
    parts = []
    if "whisper" in feature_sets:
        parts.append(load_encoder().pool(stretches, groups))
    if "prosody" in feature_sets:
        rows = []
        for k, y in enumerate(stretches):
            rows.append(prosody_features(y))
            if progress is not None:
                progress(k + 1, len(stretches))
        parts.append(np.vstack(rows))
    return np.hstack(parts).astype(np.float32)


# --------------------------------------------------------------------------- classifier
def speaker_standardise(X: np.ndarray, groups: Sequence[Any] | None, min_group: int = MIN_GROUP) -> tuple[np.ndarray, np.ndarray]:
    """Z-score rows of each group (speaker) by that group's own mean/std.

    Returns (features, mask of rows that were standardised); rows of groups
    smaller than *min_group* (or without a group) are left as they are.
    """
    X = np.asarray(X, dtype=np.float64).copy()
    done = np.zeros(len(X), dtype=bool)
    if groups is None:
        return X, done
    g = np.array([str(x) if x is not None else "\0none" for x in groups])
    for name in np.unique(g):
        m = g == name
        if name == "\0none" or m.sum() < min_group:
            continue
        X[m] = (X[m] - X[m].mean(0)) / (X[m].std(0) + 1e-6)
        done[m] = True
    return X, done


@dataclass
class LinearSoftmax:
    """Standardise, then multinomial logistic regression; plain arrays so a model file needs no pickle."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, labels: Sequence[str], C: float, seed: int = 0) -> LinearSoftmax:
        try:
            from sklearn.linear_model import LogisticRegression
        except ImportError as exc:
            raise MissingDependencyError("scikit-learn", purpose="training the acoustic emotion model") from exc
        mean = X.mean(0)
        scale = X.std(0) + 1e-6
        clf = LogisticRegression(C=C, max_iter=3000, random_state=seed)
        clf.fit((X - mean) / scale, y)
        coef = np.zeros((len(labels), X.shape[1]))
        intercept = np.full(len(labels), -1e9)
        for k, lab in enumerate(clf.classes_):
            j = list(labels).index(lab)
            coef[j], intercept[j] = (clf.coef_[k], clf.intercept_[k]) if len(clf.classes_) > 2 else (
                (clf.coef_[0], clf.intercept_[0]) if k == 1 else (-clf.coef_[0], -clf.intercept_[0]))
        if len(clf.classes_) == 2:  # binary LR: split the single logit symmetrically
            coef /= 2
            intercept = np.where(intercept > -1e8, intercept / 2, intercept)
        return cls(mean, scale, coef, intercept)

    def proba(self, X: np.ndarray) -> np.ndarray:
        z = ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


@dataclass
class Validation:
    """Leave-one-speaker-out result."""

    labels: list[str]
    per_speaker: dict[str, float]
    confusion: list[list[int]]  # rows: true label, columns: predicted
    predictions: list[str]

    @property
    def mean_accuracy(self) -> float:
        """Mean of the per-speaker accuracies (each held-out speaker counts once)."""
        return float(np.mean(list(self.per_speaker.values()))) if self.per_speaker else float("nan")

    @property
    def accuracy(self) -> float:
        c = np.asarray(self.confusion)
        return float(np.trace(c) / max(1, c.sum()))

    def format(self) -> str:
        lines = [f"leave-one-speaker-out accuracy: {self.mean_accuracy:.1%} (mean over {len(self.per_speaker)} speakers; "
                 f"{self.accuracy:.1%} over all clips)"]
        lines += [f"  speaker {s}: {a:.1%}" for s, a in self.per_speaker.items()]
        w = max(8, *(len(x) for x in self.labels))
        lines.append("confusion (rows: true, columns: predicted):")
        lines.append(" " * (w + 1) + " ".join(f"{x[:6]:>6}" for x in self.labels))
        for lab, row in zip(self.labels, self.confusion):
            lines.append(f"{lab:<{w}} " + " ".join(f"{v:>6d}" for v in row))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "per_speaker": self.per_speaker, "confusion": self.confusion,
                "mean_accuracy": self.mean_accuracy, "accuracy": self.accuracy}


@dataclass
class AcousticModel:
    """A trained acoustic emotion model (both classifiers + what it knows about itself)."""

    labels: list[str]
    speaker_clf: LinearSoftmax | None
    global_clf: LinearSoftmax
    feature_sets: tuple[str, ...] = FEATURE_SETS
    feature_version: int = FEATURE_VERSION
    encoder: str = ENCODER_MODEL
    #: free text: what data the model learnt from (shown wherever its labels are shown)
    trained_on: str = ""
    C: float = 0.1
    validation: dict[str, Any] = field(default_factory=dict)

    # -- prediction ----------------------------------------------------------------
    def predict_features(self, X: np.ndarray, groups: Sequence[Any] | None = None) -> np.ndarray:
        """Class probabilities (rows follow ``labels``); speaker-standardised where a group is big enough."""
        X = np.asarray(X, dtype=np.float64)
        P = self.global_clf.proba(X)
        if self.speaker_clf is not None and groups is not None:
            Xs, done = speaker_standardise(X, groups)
            if done.any():
                P[done] = self.speaker_clf.proba(Xs[done])
        return P

    def predict(self, stretches: Sequence[np.ndarray], groups: Sequence[Any] | None = None) -> np.ndarray:
        return self.predict_features(extract_features(stretches, groups, self.feature_sets), groups)

    # -- files -------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        from ._io import atomic_path

        meta = {"kind": "vidtrans-emotion-acoustic", "feature_version": self.feature_version, "labels": self.labels,
                "feature_sets": list(self.feature_sets), "encoder": self.encoder, "trained_on": self.trained_on,
                "C": self.C, "validation": self.validation}
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
        for name, clf in (("global", self.global_clf), ("speaker", self.speaker_clf)):
            if clf is not None:
                for k in ("mean", "scale", "coef", "intercept"):
                    arrays[f"{name}_{k}"] = getattr(clf, k)
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        with atomic_path(path) as tmp:
            with tmp.open("wb") as fh:
                np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> AcousticModel:
        path = Path(path)
        if not path.is_file() and Path(str(path) + ".npz").is_file():
            path = Path(str(path) + ".npz")
        if not path.is_file():
            raise EmotionModelError(f"emotion model not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k] for k in z.files if k != "meta"}
        except (OSError, ValueError, KeyError) as exc:
            raise EmotionModelError(f"{path} is not a vidtrans emotion model: {exc}") from exc
        if meta.get("kind") != "vidtrans-emotion-acoustic":
            raise EmotionModelError(f"{path} is not a vidtrans acoustic emotion model")
        if meta.get("feature_version") != FEATURE_VERSION:
            raise EmotionModelError(
                f"{path} was trained on emotion features version {meta.get('feature_version')}, but this vidtrans "
                f"computes version {FEATURE_VERSION}; retrain it with `vidtrans emotion train`"
            )

        def clf(name: str) -> LinearSoftmax | None:
            if f"{name}_coef" not in arrays:
                return None
            return LinearSoftmax(*(arrays[f"{name}_{k}"] for k in ("mean", "scale", "coef", "intercept")))

        g = clf("global")
        if g is None:
            raise EmotionModelError(f"{path} has no classifier weights")
        return cls(labels=list(meta["labels"]), speaker_clf=clf("speaker"), global_clf=g,
                   feature_sets=tuple(meta["feature_sets"]), feature_version=meta["feature_version"],
                   encoder=meta.get("encoder", ENCODER_MODEL), trained_on=meta.get("trained_on", ""),
                   C=float(meta.get("C", 0.1)), validation=meta.get("validation", {}))


# --------------------------------------------------------------------------- training
def read_clip(path: str | os.PathLike) -> np.ndarray:
    """16 kHz mono samples of a clip: soundfile for WAV/FLAC/OGG (no process start), else ffmpeg."""
    from .audio import load_audio

    if Path(path).suffix.lower() in (".wav", ".flac", ".ogg"):
        try:
            import soundfile as sf

            y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception:  # noqa: BLE001 - anything soundfile cannot read goes to ffmpeg
            return load_audio(path)
        y = y.mean(1)
        if sr != SAMPLE_RATE:
            import librosa

            y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE)
        if y.size == 0:
            raise EmotionDataError(f"{Path(path).name} contains no audio samples")
        return np.ascontiguousarray(y, dtype=np.float32)
    return load_audio(path)


def fit_classifiers(X: np.ndarray, y: Sequence[str], groups: Sequence[Any] | None, labels: Sequence[str], C: float
                    ) -> tuple[LinearSoftmax | None, LinearSoftmax]:
    y = np.asarray(y)
    g_clf = LinearSoftmax.fit(np.asarray(X, dtype=np.float64), y, labels, C)
    s_clf = None
    if groups is not None:
        Xs, done = speaker_standardise(X, groups)
        if done.sum() >= 2 * len(labels) and len(set(y[done])) >= 2:
            s_clf = LinearSoftmax.fit(Xs[done], y[done], labels, C)
    return s_clf, g_clf


def leave_one_speaker_out(X: np.ndarray, y: Sequence[str], speakers: Sequence[str], labels: Sequence[str], C: float,
                          speaker_norm: bool = True) -> Validation:
    """Train on all speakers but one, predict that one (its stretches standardised among themselves)."""
    y = np.asarray(y)
    spk = np.asarray(speakers)
    pred = np.empty(len(y), dtype=object)
    per: dict[str, float] = {}
    for s in sorted(set(spk)):
        te = spk == s
        s_clf, g_clf = fit_classifiers(X[~te], y[~te], spk[~te] if speaker_norm else None, labels, C)
        model = AcousticModel(list(labels), s_clf, g_clf)
        P = model.predict_features(X[te], spk[te] if speaker_norm else None)
        pred[te] = np.asarray(labels)[P.argmax(1)]
        per[str(s)] = float(np.mean(pred[te] == y[te]))
    conf = [[int(np.sum((y == a) & (pred == b))) for b in labels] for a in labels]
    return Validation(list(labels), per, conf, [str(p) for p in pred])


def train(
    clips: Sequence[LabelledClip],
    C: float = 0.1,
    validate: bool = True,
    trained_on: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[AcousticModel, Validation | None]:
    """Train on labelled clips; leave-one-speaker-out validation when there are ≥ 2 speakers."""
    if not clips:
        raise EmotionDataError("no clips to train on")
    t0 = time.perf_counter()
    audio = [read_clip(c.path) for c in clips]
    speakers = [c.speaker for c in clips]
    have_speakers = all(s is not None for s in speakers)
    X = extract_features(audio, speakers if have_speakers else None, progress=progress)
    y = np.array([c.label for c in clips])
    labels = sorted(set(y))
    log.info("emotion features of %d clips in %.1f s", len(clips), time.perf_counter() - t0)
    validation = None
    if validate and have_speakers and len(set(speakers)) >= 2:
        validation = leave_one_speaker_out(X, y, speakers, labels, C)
    elif validate:
        log.warning("no speaker for every clip: skipping speaker-independent validation")
    s_clf, g_clf = fit_classifiers(X, y, speakers if have_speakers else None, labels, C)
    model = AcousticModel(labels, s_clf, g_clf, trained_on=trained_on, C=C,
                          validation=validation.to_dict() if validation else {})
    return model, validation
