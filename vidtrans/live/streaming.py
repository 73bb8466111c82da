"""Streaming Whisper: LocalAgreement-2 over successive decodes of a bounded audio buffer.

The policy is the one of ufal's *whisper_streaming* (Macháček et al., 2023),
re-implemented on faster-whisper word timestamps:

* audio is appended to a buffer; every *step* seconds the whole buffer is
  decoded, with the committed text before the buffer as Whisper's prompt;
* a word is **committed** when two successive hypotheses agree on it (the
  longest common prefix of the previous and the new uncommitted tail);
  committed words are final: they are handed out once and never revised;
* words of the new hypothesis that lie before the last committed word, and a
  repeat of the last 1-5 committed words at the start of the new tail, are
  dropped, so a chunk border never repeats a word;
* the buffer is cut at the end of the last committed sentence once it is
  longer than ``trim_seconds`` and never grows past ``max_buffer``, so one
  decode costs the same after an hour as after a minute.

Additions over the reference:

* a Silero-VAD gate (the ONNX model inside faster-whisper, run frame by frame
  as audio arrives): a buffer without speech is never decoded and is dropped;
* end-of-utterance flush: after ``silence_flush`` seconds of silence the
  pending hypothesis is committed at once (lower latency at phrase ends, as
  whisper_streaming's VAC mode does);
* self-monitoring: the decode time per second of new audio is tracked; above
  ``max_decode_ratio`` the step grows up to ``max_step``, then the model falls
  back to a smaller one (see :meth:`StreamingTranscriber.adapt`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import ConfigurationError, EngineError, MissingDependencyError, ModelError
from ..schema import Word, join_words
from .options import LiveOptions

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Silero VAD frame (32 ms at 16 kHz)
VAD_FRAME = 512
#: frames scored per model call: the model carries its state across the frames of one call and
#: starts afresh with the next, so calls cover fixed groups counted from the stream start and the
#: decisions do not depend on how the source happened to chunk the audio (they did: 17-36 of 375
#: frames of the pyannote sample changed between 0.1 s and 1 s chunks, enough to open a third
#: live speaker now and then)
VAD_GROUP = 4
#: longest a word may last (s); faster-whisper's own hallucination check treats longer words as anomalies
MAX_WORD_SECONDS = 2.0
#: a word shorter than this (s) that the next word repeats is an alignment artefact, not speech
SQUEEZED = 0.1
_SENTENCE_END = re.compile(r"[.!?…。！？]['\"”’)\]]*$")
_NORM = re.compile(r"[^\w']+", re.UNICODE)


class LiveEngineError(EngineError):
    """faster-whisper failed while decoding a live stream."""

    def __init__(self, message: str):
        super().__init__(message, engine="faster-whisper")


def _norm(text: str) -> str:
    """Word identity for agreement: case and punctuation do not count."""
    n = _NORM.sub("", text.casefold())
    return n or text.strip()


def _drop_loops(committed: list[Word], new: list[Word], min_n: int = 4) -> list[Word]:
    """Drop words of *new* that repeat, back to back, the >= *min_n* words just before them.

    Whisper decoding a buffer that ends in silence, with the committed text as its prompt, loops on
    the last sentence ("... New Jersey now. I don't hear that New Jersey now. I don't hear ...");
    such a loop is never speech worth a caption, and committed words must never repeat (issue #14).
    """
    seq = [_norm(w.text) for w in committed]
    out: list[Word] = []
    for w in new:
        cand = seq + [_norm(w.text)]
        loop = False
        for n in range(min_n, len(cand) // 2 + 1):
            if cand[-n:] == cand[-2 * n : -n]:
                loop = True
                break
        if loop:
            # the repeat began n-1 words back; a looping decode is garbage from there on
            keep = max(0, len(out) - (n - 1))
            log.debug("live: dropped a looping hypothesis from %r", join_words(out[keep:] + [w]))
            return out[:keep]
        seq.append(_norm(w.text))
        out.append(w)
    return out


def _squeezed(w: Word) -> bool:
    """Whisper's alignment gave the word (almost) no audio."""
    return w.end - w.start < SQUEEZED


def _drop_squeezed_repeats(words: list[Word]) -> list[Word]:
    """Drop squeezed copies: words Whisper's alignment gave (almost) no audio that repeat a neighbour.

    * a squeezed word the next word repeats: at a buffer start after a pause, or over a repeated call
      ("Hello? Hello? Oh, hello."), Whisper writes an extra copy of the next word squeezed into
      < SQUEEZED seconds (JFK: "ask not ... What? What your country", the first "What?" 60 ms long in
      the silence);
    * squeezed words that repeat the words right before them: tiny.en on JFK decoded "Ask[2.22-3.86]
      not.[3.86-4.36] Ask[4.36-4.36] not.[4.36-4.36] Yeah." and "S[2.22-3.82] s[3.82-3.86] not";
    * a squeezed copy of a phrase whose last word took the audio that was left
      (:func:`_squeezed_copy_with_its_last_word`): that audio goes to the real last word.
    Two decodes agree on such copies, so they were committed twice.  A word that is really said twice
    has audio for both copies.
    """
    out: list[Word] = []
    i = 0
    while i < len(words):
        w = words[i]
        if _squeezed(w):
            nxt = words[i + 1] if i + 1 < len(words) else None
            if nxt is not None and _norm(w.text) == _norm(nxt.text):
                log.debug("live: dropped a squeezed repeat %r at %.2f s", w.text, w.start)
                i += 1
                continue
            run = i
            while run < len(words) and _squeezed(words[run]):
                run += 1
            for n in range(min(run - i, len(out)), 0, -1):  # the longest copy of the words before it
                if [_norm(x.text) for x in words[i : i + n]] == [_norm(x.text) for x in out[-n:]]:
                    log.debug("live: dropped a squeezed copy %r at %.2f s", join_words(words[i : i + n]), w.start)
                    i += n
                    break
            else:
                if _squeezed_copy_with_its_last_word(words, i, run, out):
                    # the copy's last word took the audio the real one was left without: it goes to the real one
                    log.debug("live: dropped a squeezed copy %r at %.2f s", join_words(words[i : run + 1]), w.start)
                    out[-1] = replace(out[-1], end=max(out[-1].end, words[run].end))
                    i = run + 1
                else:
                    out.append(w)
                    i += 1
            continue
        out.append(w)
        i += 1
    return out


def _squeezed_copy_with_its_last_word(words: list[Word], i: int, run: int, out: list[Word]) -> bool:
    """Whether the squeezed words ``words[i:run]`` (two or more) and the word right after them repeat the
    last words of *out*: a copy of a phrase whose last word took the audio that was left.  tiny.en on
    JFK (AMD EPYC) ended "... for your[9.90-10.16] country.[10.16-10.22] Ask what you can do for
    your[all at 10.22] country.[10.22-10.42]"."""
    n = run - i + 1
    if run - i < 2 or run >= len(words) or n > len(out) or words[run].start - words[run - 1].end >= SQUEEZED:
        return False
    return [_norm(x.text) for x in words[i : run + 1]] == [_norm(x.text) for x in out[-n:]]


def _drop_squeezed_tail(words: list[Word]) -> list[Word]:
    """Drop the words at the end of a hypothesis that Whisper's alignment gave (almost) no audio.

    The last word of a decode is either cut by the buffer end (the next decode, with more audio, gives it
    its real length) or written past the speech with no audio of its own: JFK with tiny.en ended "... for
    your country. Ask", the "Ask" 0 ms long after "country", copied from the speech's earlier "ask not";
    at the end of the stream nothing corrects it and it was committed.  Waiting for a word that is really
    said costs one step; committing one that is not costs a wrong word on screen.
    """
    end = len(words)
    while end and _squeezed(words[end - 1]):
        end -= 1
    if end < len(words):
        log.debug("live: held back %d squeezed word(s) at the hypothesis end: %r", len(words) - end, join_words(words[end:]))
    return words[:end]


# --------------------------------------------------------------------------- VAD
class VadTracker:
    """Silero VAD speech probabilities, 32 ms frame by frame, as audio arrives.

    Each call scores only the new whole frames (with the previous frame as
    context), so the cost per second of audio is constant.  The last
    ``keep_seconds`` of frame decisions are kept for queries.
    """

    def __init__(self, threshold: float = 0.5, keep_seconds: float = 120.0):
        try:
            from faster_whisper.vad import get_vad_model
        except ImportError as exc:
            raise MissingDependencyError("faster-whisper", purpose="live captions (Silero VAD)") from exc
        self.model = get_vad_model()
        self.threshold = threshold
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(VAD_FRAME, dtype=np.float32)
        self._speech: deque[bool] = deque(maxlen=int(keep_seconds * SAMPLE_RATE / VAD_FRAME))
        #: frames scored so far
        self.frames = 0
        #: audio seconds at the end of the last speech frame (-1 = none yet)
        self.last_speech_end = -1.0

    @property
    def frame_seconds(self) -> float:
        return VAD_FRAME / SAMPLE_RATE

    @property
    def time(self) -> float:
        """Audio seconds scored so far."""
        return self.frames * self.frame_seconds

    def update(self, audio: np.ndarray) -> None:
        self._pending = np.concatenate([self._pending, audio]) if self._pending.size else audio
        n = self._pending.size // (VAD_FRAME * VAD_GROUP) * VAD_GROUP
        if n == 0:
            return
        block = self._pending[: n * VAD_FRAME]
        self._pending = self._pending[n * VAD_FRAME :].copy()
        step = VAD_FRAME * VAD_GROUP
        probs = np.concatenate([  # one call per group, the frame before it as context (its output dropped)
            self.model(np.concatenate([block[i - VAD_FRAME : i] if i else self._context, block[i : i + step]])
                       .astype(np.float32, copy=False))[1:].reshape(-1)
            for i in range(0, block.size, step)
        ])
        self._context = block[-VAD_FRAME:].copy()
        speech = probs >= self.threshold
        self._speech.extend(bool(s) for s in speech)
        hits = np.flatnonzero(speech)
        if hits.size:
            self.last_speech_end = (self.frames + int(hits[-1]) + 1) * self.frame_seconds
        self.frames += n

    def speech_seconds(self, t0: float, t1: float | None = None) -> float:
        """Seconds of speech frames between audio times *t0* and *t1* (default: now)."""
        first = self.frames - len(self._speech)
        i0 = max(int(t0 / self.frame_seconds), first)
        i1 = self.frames if t1 is None else min(int(np.ceil(t1 / self.frame_seconds)), self.frames)
        if i1 <= i0:
            return 0.0
        flags = list(self._speech)[i0 - first : i1 - first]
        return sum(flags) * self.frame_seconds

    def trailing_silence(self) -> float:
        """Seconds since the last speech frame (everything scored, when no speech yet)."""
        return self.time - max(self.last_speech_end, 0.0)


# --------------------------------------------------------------------------- model
def _device(options: LiveOptions) -> tuple[str, str, int]:
    try:
        import ctranslate2
    except ImportError as exc:
        raise MissingDependencyError("faster-whisper", purpose="live captions") from exc
    device = options.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    elif device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise ConfigurationError("device 'cuda' was requested but CTranslate2 sees no CUDA GPU; use 'auto' or 'cpu'")
    compute = options.compute_type
    if compute in ("", "default", "auto"):
        compute = "float16" if device == "cuda" else "int8"
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return device, compute, options.cpu_threads or usable


def load_whisper(name: str, options: LiveOptions):
    """A ``faster_whisper.WhisperModel`` for *name* (packaged models work offline)."""
    from ..models import resolve_model
    from ..transcribe.ct2_int8 import weights_dir

    path = resolve_model(name)
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise MissingDependencyError("faster-whisper", purpose="live captions") from exc
    device, compute, threads = _device(options)
    path = weights_dir(path, device, compute)  # on the CPU: weights quantized once, not at every start
    log.info("live: loading Whisper %s on %s (%s, %d threads)", name, device, compute, threads)
    try:
        return WhisperModel(str(path), device=device, compute_type=compute, cpu_threads=threads, local_files_only=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"cannot load Whisper model {name!r} from {path}: {exc}") from exc


def _fallback_for(model: str, language: str | None, fallback: str | None) -> str | None:
    if fallback is None or fallback == "":
        return None
    if fallback != "auto":
        return None if fallback == model else fallback
    if model == "tiny.en" or model.startswith("tiny"):
        return None
    return "tiny.en" if language == "en" else None


# --------------------------------------------------------------------------- core
@dataclass
class DecodeStats:
    """What one decode cost (for the self-monitor, the widget and the bench)."""

    audio_end: float
    buffer_seconds: float
    new_audio: float
    decode_seconds: float
    #: CPU seconds of this process during the decode (all threads; robust to other jobs' load)
    decode_cpu: float
    model: str
    committed: int
    tentative: int


class StreamingTranscriber:
    """Feed audio with :meth:`insert`, call :meth:`process` after each step, :meth:`finish` at the end.

    ``process`` and ``finish`` return the newly committed :class:`~vidtrans.schema.Word`
    objects (absolute audio times, text with the engine's leading space);
    :attr:`tentative` holds the current uncommitted tail.
    """

    def __init__(self, options: LiveOptions | None = None, model: Any = None):
        self.options = (options or LiveOptions()).validate()
        o = self.options
        self.model_name = str(o.model)
        self.model = model if model is not None else load_whisper(self.model_name, o)
        self.language = o.language or ("en" if self.model_name.endswith(".en") else None)
        if self.language and not self.model_name.endswith(".en") and self.language not in self.model.supported_languages:
            raise ConfigurationError(f"language {self.language!r} is not supported by Whisper model {self.model_name!r}")
        self.vad = VadTracker(o.vad_threshold)
        self.buf = np.zeros(0, dtype=np.float32)
        #: audio time of ``buf[0]``
        self.buf_t0 = 0.0
        #: seconds of audio received
        self.audio_end = 0.0
        #: recent committed words (prompt, de-duplication); all of them are handed out, not kept
        self.recent: deque[Word] = deque(maxlen=64)
        #: end of the last committed word
        self.last_end = 0.0
        #: the previous hypothesis' uncommitted tail
        self.tentative: list[Word] = []
        #: (audio end, uncommitted hypothesis) of recent decodes, for ``agreement_gap``
        self._hyps: deque[tuple[float, list[Word]]] = deque(maxlen=32)
        self.step = o.step
        self._reported_step = o.step
        self.decode_ratio = 0.0
        self.history: deque[DecodeStats] = deque(maxlen=4096)
        self.switches: list[tuple[float, str, str]] = []
        self._last_decode_audio = 0.0
        self._committed_count = 0
        self._short_ok = True

    # -- input -----------------------------------------------------------------
    def insert(self, audio: np.ndarray) -> None:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if not audio.size:
            return
        self.buf = np.concatenate([self.buf, audio])
        self.audio_end += audio.size / SAMPLE_RATE
        self.vad.update(audio)

    @property
    def buffer_seconds(self) -> float:
        return self.buf.size / SAMPLE_RATE

    @property
    def quiet(self) -> bool:
        """Nothing pending: no uncommitted words and no speech since the last committed word."""
        return not self.tentative and self.vad.speech_seconds(self.last_end + 0.1) < 0.1

    # -- decoding ----------------------------------------------------------------
    def _prompt(self) -> str | None:
        before = [w for w in self.recent if w.end <= self.buf_t0 + 0.01]
        text = join_words(before)
        if not text:
            return None
        return text[-self.options.prompt_chars :]

    def _short_context(self, prompt: str | None):
        """Decode the buffer with the encoder sized to it instead of Whisper's fixed 30 s window.

        faster-whisper pads every input to 30 s, so the encoder (most of a decode's
        cost for small models) works on mostly silence when the buffer is a few
        seconds long.  Here the log-mel features are padded only to the buffer plus
        at least 2 s, rounded up to 5 s, encoded once, and handed to faster-whisper's
        own segment generator (which then decodes and aligns words as usual); about
        3-5x less encoder work for a 5 s buffer.  Returns None when this
        faster-whisper version lacks the internals used (the caller falls back).
        """
        try:
            from faster_whisper.audio import pad_or_trim
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens
        except ImportError:
            return None
        m = self.model
        fe = m.feature_extractor
        seconds = self.buf.size / SAMPLE_RATE
        ctx = min(30.0, 5.0 * np.ceil((seconds + 2.0) / 5.0))
        frames = int(round(ctx * fe.sampling_rate / fe.hop_length))
        try:
            features = fe(self.buf)
            tok = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, task="transcribe", language=self.language)
            opts = TranscriptionOptions(
                beam_size=self.options.beam_size, best_of=1, patience=1.0, length_penalty=1.0, repetition_penalty=1.0,
                no_repeat_ngram_size=0, log_prob_threshold=-1.0, no_speech_threshold=0.6,
                compression_ratio_threshold=2.4, condition_on_previous_text=False, prompt_reset_on_temperature=0.5,
                temperatures=[0.0], initial_prompt=prompt, prefix=None, suppress_blank=True,
                suppress_tokens=get_suppressed_tokens(tok, [-1]), without_timestamps=False,
                max_initial_timestamp=1.0, word_timestamps=True, prepend_punctuations="\"'“¿([{-",
                append_punctuations="\"'.。,，!！?？:：”)]}、", multilingual=False, max_new_tokens=None,
                clip_timestamps="0", hallucination_silence_threshold=None, hotwords=None,
            )
            encoder_output = m.encode(pad_or_trim(features[:, : features.shape[-1] - 1], frames))
        except (TypeError, AttributeError) as exc:  # internals changed in another faster-whisper version
            log.warning("live: short-context decoding unavailable (%s); using full 30 s windows", exc)
            self._short_ok = False
            return None
        return m.generate_segments(features, tok, opts, False, encoder_output)

    def _decode(self) -> list[Word]:
        o = self.options
        t = time.perf_counter()
        c = time.process_time()
        try:
            prompt = self._prompt()
            segments = None
            if o.short_context and self._short_ok and self.language is not None:
                segments = self._short_context(prompt)
            if segments is None:
                segments, info = self.model.transcribe(
                    self.buf, language=self.language, beam_size=o.beam_size, best_of=1,
                    temperature=0.0, word_timestamps=True, condition_on_previous_text=False,
                    initial_prompt=prompt, vad_filter=False, without_timestamps=False,
                )
                if self.language is None:
                    self.language = info.language
                    log.info("live: detected language %s (p=%.2f)", info.language, info.language_probability)
            words = []
            for seg in segments:
                for w in seg.words or ():
                    if not w.word.strip():
                        continue
                    s = self.buf_t0 + float(w.start)
                    # a word stretched over seconds is an alignment failure (speech Whisper left out
                    # of the hypothesis); committed, its end would make the next words look old and drop them
                    e = min(max(self.buf_t0 + float(w.end), s), s + MAX_WORD_SECONDS)
                    words.append(Word(round(s, 3), round(e, 3), w.word, probability=round(float(w.probability), 4)))
        except (RuntimeError, ValueError) as exc:
            raise LiveEngineError(f"faster-whisper failed on the live buffer at {self.buf_t0:.1f} s: {exc}") from exc
        words = _drop_squeezed_tail(_drop_squeezed_repeats(words))
        dt = time.perf_counter() - t
        new_audio = max(self.audio_end - self._last_decode_audio, 1e-3)
        self._last_decode_audio = self.audio_end
        ratio = dt / new_audio
        self.decode_ratio = ratio if not self.history else 0.7 * self.decode_ratio + 0.3 * ratio
        self.history.append(DecodeStats(round(self.audio_end, 3), round(self.buffer_seconds, 3), round(new_audio, 3),
                                        round(dt, 4), round(time.process_time() - c, 4), self.model_name, 0, 0))
        return words

    def _agree(self, words: list[Word]) -> list[Word]:
        """LocalAgreement-2: commit the common prefix of the previous and the new tail."""
        new = [w for w in words if w.start > self.last_end - 0.1]
        # words lying on audio the VAD heard no speech in are the prompt echoed into silence
        # (Whisper repeats the committed sentence it was prompted with): never commit them
        new = [w for w in new if self.vad.speech_seconds(max(w.start - 0.3, 0.0), w.end + 0.3) > 0.0]
        if new and self.recent:
            tail = list(self.recent)
            near = abs(new[0].start - self.last_end) < 1.0
            for n in range(min(16, len(tail), len(new)), 0, -1):
                if n <= 5 and not near:
                    break
                if [_norm(w.text) for w in tail[-n:]] == [_norm(w.text) for w in new[:n]]:
                    # a repeat of the last 1-5 words at the border, or of >= 6 committed words anywhere
                    # after them (a prompt echo, not speech): dropped
                    log.debug("live: dropped %d repeated word(s) at the buffer border: %r", n, join_words(new[:n]))
                    new = new[n:]
                    break
        new = _drop_loops(list(self.recent), new)
        ref = self.tentative
        gap = self.options.agreement_gap
        if gap > 0:  # the latest hypothesis decoded >= gap seconds of audio before this one
            older = [h for t, h in self._hyps if t <= self.audio_end - gap + 1e-6]
            ref = [w for w in older[-1] if w.start > self.last_end - 0.1] if older else []
        self._hyps.append((self.audio_end, new))
        k = 0
        heard = self.audio_end - self.options.min_right_context
        while k < len(ref) and k < len(new) and _norm(ref[k].text) == _norm(new[k].text) and new[k].end <= heard:
            k += 1
        commit = self._commit(new[:k])
        self.tentative = new[k:]
        return commit

    def _commit(self, words: list[Word]) -> list[Word]:
        out = []
        for w in words:
            s = round(max(w.start, self.last_end), 3)
            e = round(max(w.end, s), 3)
            w = Word(s, e, w.text, probability=w.probability)
            self.last_end = e
            self.recent.append(w)
            out.append(w)
        self._committed_count += len(out)
        return out

    def _commit_pending(self, ready) -> list[Word]:
        """Commit the pending words from the front of the tentative tail while *ready(word)* holds."""
        k = 0
        while k < len(self.tentative) and ready(self.tentative[k]):
            k += 1
        done, self.tentative = self.tentative[:k], self.tentative[k:]
        return self._commit(done)

    def _cut(self, t: float) -> None:
        t = min(max(t, self.buf_t0), self.audio_end)
        n = int(round((t - self.buf_t0) * SAMPLE_RATE))
        if n <= 0:
            return
        self.buf = self.buf[n:].copy()
        self.buf_t0 += n / SAMPLE_RATE

    def _trim(self) -> list[Word]:
        """Keep the buffer short; returns words committed to make that possible (rare)."""
        o = self.options
        forced: list[Word] = []
        if self.buffer_seconds > o.trim_seconds:
            ends = [w.end for w in self.recent if w.end > self.buf_t0 and _SENTENCE_END.search(w.text.strip())]
            if ends:
                self._cut(ends[-1])
        if self.buffer_seconds > o.max_buffer:
            if self.last_end > self.buf_t0 + 1.0:
                self._cut(self.last_end)
            else:
                # nothing agreed for a whole buffer: commit what the latest decode saw before the last
                # few seconds (it has been decoded at least once with plenty of right context)
                forced = self._commit_pending(lambda w: w.end < self.audio_end - 3.0)
                if forced:
                    log.info("live: no agreement within %.0f s; committed %d stable words", o.max_buffer, len(forced))
                    self._cut(self.last_end)
                elif self.tentative:  # never cut audio the decoder has not yet covered
                    self._cut(min(self.tentative[0].start, self.audio_end - o.trim_seconds))
                else:  # a whole buffer of "speech" with no words at all: noise or music
                    log.info("live: %.1f s of speech gave no words; dropping it", self.audio_end - o.trim_seconds - self.buf_t0)
                    self._cut(self.audio_end - o.trim_seconds)
        return forced

    def process(self) -> list[Word]:
        """Decode the buffer (when it holds speech); return the newly committed words."""
        o = self.options
        # VAD gate: no speech in the buffer and nothing pending -> drop the silence, no decode
        if not self.tentative and self.vad.speech_seconds(self.buf_t0) < 0.1:
            self._cut(self.audio_end - 0.5)
            return []
        # every word heard so far is committed and no speech came after the last one: a decode could only
        # add words the audio does not hold (base ended the sonnet "... by the grave and thee. Pity the", the
        # prompt's "Pity the world" echoed into the silence and committed by the silence flush)
        if self.quiet:
            self._cut(max(self.last_end, self.audio_end - 0.5))
            return []
        words = self._decode()
        committed = self._agree(words)
        # end of an utterance: everything said before the silence is as good as it will get
        if o.silence_flush and self.tentative and self.vad.trailing_silence() >= o.silence_flush:
            limit = self.vad.last_speech_end + 0.3
            committed += self._commit_pending(lambda w: w.start < limit)
        if o.max_pending > 0 and self.tentative:  # bounded wait: old enough words are as good as they get
            old = self._commit_pending(lambda w: w.end <= self.audio_end - o.max_pending)
            if old:
                log.debug("live: committed %d word(s) pending for over %.1f s: %r", len(old), o.max_pending, join_words(old))
            committed += old
        if not self.tentative and self.vad.trailing_silence() >= max(o.silence_flush, 0.3) and self.last_end > self.buf_t0:
            self._cut(self.last_end)
        committed += self._trim()
        if self.history:
            h = self.history[-1]
            h.committed, h.tentative = len(committed), len(self.tentative)
        return committed

    def finish(self) -> list[Word]:
        """End of stream: decode what is left once more and commit the whole hypothesis."""
        out: list[Word] = []
        if self.buf.size and not self.quiet:
            words = self._decode()
            out = self._agree(words)
        out += self._commit(self.tentative)
        self.tentative = []
        return out

    # -- self-monitoring --------------------------------------------------------------
    def recent_decode_seconds(self, n: int = 3) -> float | None:
        """Median wall seconds of the last *n* decodes with the current model (None before any)."""
        recent = [h.decode_seconds for h in list(self.history)[-n:] if h.model == self.model_name]
        return float(np.median(recent)) if recent else None

    def _fall_back(self) -> str | None:
        fb = _fallback_for(self.model_name, self.language, self.options.fallback_model)
        if not fb:
            return None
        old = self.model_name
        self.model = load_whisper(fb, self.options)
        self.model_name = fb
        self.switches.append((round(self.audio_end, 3), old, fb))
        self.decode_ratio = 0.0
        self.history.clear()
        return f"decoding cannot keep up at the longest step: model {old} -> {fb}"

    def adapt(self) -> str | None:
        """Keep latency low and bounded: steps that follow the decode time, then a smaller model.

        Called by the runner for live sources after each decode.  With
        ``adaptive_step`` the step becomes ``step_factor`` x the recent decode
        time (between ``min_step`` and ``max_step``): LocalAgreement-2 commits a
        word on the second decode that hears it, so a shorter step is a shorter
        wait whenever decoding is fast, while the decode ratio stays near
        ``1 / step_factor`` however loaded the machine is.  When even
        ``max_step`` is too short (decode ratio above ``max_decode_ratio``) the
        model falls back to a smaller one.  Without ``adaptive_step`` the step
        starts at ``step`` and grows by half while the ratio is too high.
        Returns a description of a notable change, or None.
        """
        o = self.options
        if o.adaptive_step:
            d = self.recent_decode_seconds()
            if d is None:
                return None
            if self.step >= o.max_step and self.decode_ratio > o.max_decode_ratio and len(self.history) >= 3:
                change = self._fall_back()
                if change:
                    return change
            old = self.step
            self.step = float(min(o.max_step, max(o.min_step, o.step_factor * d)))
            reported = self._reported_step
            if abs(self.step - reported) > 0.3 * reported:  # log big moves only (it moves every decode)
                self._reported_step = self.step
                return f"decode {d:.2f} s: step {old:.2f} s -> {self.step:.2f} s"
            return None
        if len(self.history) < 3 and self.decode_ratio < 2 * o.max_decode_ratio:
            return None  # wait for a few decodes unless this one was far too slow
        if self.decode_ratio > o.max_decode_ratio:
            if self.step < o.max_step:
                old = self.step
                self.step = min(o.max_step, self.step * 1.5)
                self.decode_ratio = o.max_decode_ratio  # give the new step a few decodes to show its effect
                return f"decode ratio above {o.max_decode_ratio}: step {old:.2f} s -> {self.step:.2f} s"
            return self._fall_back()
        elif self.decode_ratio < o.max_decode_ratio / 3 and self.step > o.step:
            old = self.step
            self.step = max(o.step, self.step / 1.5)
            return f"decoding has headroom: step {old:.2f} s -> {self.step:.2f} s"
        return None
