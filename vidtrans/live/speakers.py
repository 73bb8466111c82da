"""Live speaker labels: CAM++ embeddings of short stretches matched against the voices heard so far.

Every ``hop`` seconds a ``window``-long stretch centred on the next point of
the timeline is embedded with CAM++ (the offline model of
:mod:`vidtrans.diarize_models`) when the VAD says it is mostly speech.  Its
*core* (the ``hop`` around the centre) is labelled with the known voice
(enrolled or seen before) whose running centroid is most similar, at or
above ``speaker_threshold``.  A voice that matches nobody is held as a
candidate; ``new_speaker_windows`` consecutive candidate stretches that
agree with each other open a new speaker, otherwise they go to the closest
known voice.  The timeline is *settled* up to the first undecided core: the
runner holds committed words newer than that in a lag buffer, so every word
is written once, with its final speaker.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigurationError, VidtransError
from ..schema import Word
from .options import LiveOptions
from .streaming import SAMPLE_RATE, VadTracker

log = logging.getLogger(__name__)


class EnrollmentError(VidtransError):
    """An enrollment clip has no usable speech."""

    exit_code = 2


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-9)


def enroll_voices(clips: Mapping[str, str | os.PathLike | np.ndarray], embedder=None) -> dict[str, np.ndarray]:
    """Unit-norm mean CAM++ embedding of 1.5 s windows of each reference clip."""
    from ..audio import as_samples

    if embedder is None:
        from ..diarize_models import load_embedding_model

        embedder = load_embedding_model("cpu")
    out = {}
    for name, clip in clips.items():
        if not str(name).strip():
            raise ConfigurationError("enrolled speaker names must not be empty")
        wav = as_samples(clip)
        win, hop = int(1.5 * SAMPLE_RATE), int(0.75 * SAMPLE_RATE)
        if wav.size < win:
            raise EnrollmentError(f"enrollment clip for {name!r} is too short ({wav.size / SAMPLE_RATE:.1f} s); give 3 s or more")
        pieces = [wav[i : i + win] for i in range(0, wav.size - win + 1, hop)]
        pieces = [p for p in pieces if float(np.sqrt(np.mean(p**2))) > 1e-3]
        if not pieces:
            raise EnrollmentError(f"enrollment clip for {name!r} is silent")
        vecs = embedder.embed_many(pieces)
        vecs = vecs[~np.isnan(vecs).any(1)]
        if not len(vecs):
            raise EnrollmentError(f"no usable speech in the enrollment clip for {name!r}")
        out[str(name)] = _unit(_unit(vecs).mean(0))
    return out


@dataclass
class LiveSpeaker:
    label: str
    centroid_sum: np.ndarray
    count: int
    enrolled: bool = False
    #: seconds of speech labelled with this voice so far
    talk_time: float = 0.0

    @property
    def centroid(self) -> np.ndarray:
        return _unit(self.centroid_sum)


class LiveSpeakers:
    """Online speaker timeline; feed it the same audio as the transcriber."""

    def __init__(self, options: LiveOptions, vad: VadTracker, embedder=None):
        self.options = options
        self.vad = vad
        if embedder is None:
            from ..diarize_models import load_embedding_model

            # onnxruntime's float32 embeddings: the online thresholds (speaker_threshold, ...) were set on
            # them, and with OpenVINO's bfloat16 ones the pyannote sample's second voice was not found at
            # real-time pace (tests/test_live.py); one 1.5 s window at a time costs little either way
            embedder = load_embedding_model("cpu", "onnx", options.speaker_threads)
        self.embedder = embedder
        self.speakers: list[LiveSpeaker] = []
        for name, vec in (enroll_voices(options.enroll, embedder) if options.enroll else {}).items():
            self.speakers.append(LiveSpeaker(name, vec.copy(), 1, enrolled=True))
        self._unnamed = 0
        self.win = options.speaker_window
        self.hop = options.speaker_hop
        keep = int((self.win + 2 * self.hop + 30.0) * SAMPLE_RATE)
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_t0 = 0.0
        self._keep = keep
        self.audio_end = 0.0
        #: centre of the next window to embed
        self._next = self.hop / 2
        #: (core start, core end, label or None for non-speech), settled, oldest pruned
        self.timeline: deque[tuple[float, float, str | None]] = deque()
        #: undecided cores: (t0, t1, embedding)
        self._candidates: list[tuple[float, float, np.ndarray]] = []
        #: the timeline is final up to here
        self.settled = 0.0

    # -- audio ---------------------------------------------------------------------
    def insert(self, audio: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, audio])
        self.audio_end += audio.size / SAMPLE_RATE
        extra = self._audio.size - self._keep
        if extra > 0:
            self._audio = self._audio[extra:]
            self._audio_t0 += extra / SAMPLE_RATE

    def _slice(self, t0: float, t1: float) -> np.ndarray:
        i0 = max(int(round((t0 - self._audio_t0) * SAMPLE_RATE)), 0)
        i1 = max(int(round((t1 - self._audio_t0) * SAMPLE_RATE)), 0)
        return self._audio[i0:i1]

    # -- labelling -------------------------------------------------------------------
    def _new_label(self) -> str:
        self._unnamed += 1
        return f"Speaker {self._unnamed}"

    def _best(self, emb: np.ndarray) -> tuple[LiveSpeaker | None, float]:
        if not self.speakers:
            return None, -1.0
        sims = [float(s.centroid @ emb) for s in self.speakers]
        k = int(np.argmax(sims))
        return self.speakers[k], sims[k]

    def _label(self, t0: float, t1: float, spk: LiveSpeaker | None, emb: np.ndarray | None) -> None:
        label = spk.label if spk else None
        if spk is not None and emb is not None and (
            spk.count == 0 or float(spk.centroid @ emb) >= self.options.speaker_threshold + self.options.speaker_update_margin
        ):  # only clear matches move a voice's centroid, so it does not drift towards a neighbour
            spk.centroid_sum = spk.centroid_sum + emb
            spk.count += 1
        if spk is not None:
            spk.talk_time += self.vad.speech_seconds(t0, t1)
        self.timeline.append((t0, t1, label))
        self.settled = t1

    def _resolve_candidates(self, open_new: bool) -> None:
        cands, self._candidates = self._candidates, []
        if not cands:
            return
        if open_new and len(self.speakers) < self.options.max_speakers:
            mean = _unit(np.mean([e for _, _, e in cands], axis=0))
            spk = LiveSpeaker(self._new_label(), np.zeros_like(mean), 0)
            self.speakers.append(spk)
            log.info("live: new voice %s at %.1f s", spk.label, cands[0][0])
            for t0, t1, e in cands:
                self._label(t0, t1, spk, e)
            return
        for t0, t1, e in cands:
            spk, _ = self._best(e)
            self._label(t0, t1, spk, None)

    def update(self, final: bool = False) -> None:
        """Embed every window that has fully arrived; settle the timeline as far as possible."""
        o = self.options
        ready = min(self.audio_end, self.vad.time)  # windows the VAD has fully scored
        while self._next + self.win / 2 <= ready + 1e-9:
            c = self._next
            self._next += self.hop
            t0, t1 = max(c - self.hop / 2, 0.0), c + self.hop / 2
            w0 = max(c - self.win / 2, 0.0)
            speech = self.vad.speech_seconds(w0, c + self.win / 2)
            if speech < 0.3 * (c + self.win / 2 - w0) or self.vad.speech_seconds(t0, t1) < 0.1:
                # non-speech: close any candidate run (it was too short to be a new voice)
                self._resolve_candidates(open_new=False)
                self._label(t0, t1, None, None)
                continue
            emb = self.embedder.embed(self._slice(w0, c + self.win / 2))
            if np.isnan(emb).any():
                self._resolve_candidates(open_new=False)
                self._label(t0, t1, None, None)
                continue
            emb = _unit(emb)
            spk, sim = self._best(emb)
            if spk is not None and sim >= o.speaker_threshold:
                self._resolve_candidates(open_new=False)
                self._label(t0, t1, spk, emb)
                continue
            if spk is None and o.new_speaker_windows <= 1:
                self._candidates.append((t0, t1, emb))
                self._resolve_candidates(open_new=True)
                continue
            # an unknown voice: a candidate run grows while its stretches agree
            if self._candidates:
                mean = _unit(np.mean([e for _, _, e in self._candidates], axis=0))
                if float(mean @ emb) < o.speaker_threshold:
                    self._resolve_candidates(open_new=False)
            self._candidates.append((t0, t1, emb))
            if len(self._candidates) >= o.new_speaker_windows:
                self._resolve_candidates(open_new=True)
        if final:
            self._resolve_candidates(open_new=not self.speakers)
            self.settled = max(self.settled, self.audio_end)
        self._prune()

    def _prune(self) -> None:
        horizon = self.settled - 120.0
        while self.timeline and self.timeline[0][1] < horizon:
            self.timeline.popleft()

    # -- words -----------------------------------------------------------------------
    @property
    def labelled_until(self) -> float:
        """Words ending before this can be labelled now: the settled timeline, plus
        ``speaker_lookahead`` when the latest stretch is a known voice and no new voice is pending
        (the latest window heard that far; a word there takes that stretch's voice)."""
        if self._candidates or not self.timeline or self.timeline[-1][2] is None:
            return self.settled
        return self.settled + min(self.options.speaker_lookahead, self.win / 2 - self.hop / 2)

    def speaker_of(self, word: Word) -> str | None:
        """The voice that overlaps *word* most; the nearest labelled stretch otherwise."""
        best: dict[str, float] = {}
        nearest: tuple[float, str] | None = None
        for t0, t1, label in self.timeline:
            if label is None:
                continue
            ov = min(word.end, t1) - max(word.start, t0)
            if ov > 0:
                best[label] = best.get(label, 0.0) + ov
            d = max(t0 - word.end, word.start - t1, 0.0)
            if nearest is None or d < nearest[0]:
                nearest = (d, label)
        if best:
            return max(best, key=best.get)
        return nearest[1] if nearest else None

    @property
    def talk_time(self) -> dict[str, float]:
        return {s.label: round(s.talk_time, 2) for s in self.speakers if s.count or s.talk_time}
