"""AssemblyAI engine: upload, create a job, poll, map the result to vidtrans records.

Runs through the official ``assemblyai`` SDK (``pip install 'vidtrans[cloud]'``).
The key comes from :func:`vidtrans.secrets.get_secret` (``ASSEMBLYAI_API_KEY``);
the endpoint from the SDK's own settings, so ``ASSEMBLYAI_BASE_URL`` points
it at a compatible server or a test double without code changes.

Options (:class:`~vidtrans.transcribe.TranscribeOptions`):

* ``language``: ``language_code``; None turns on language detection.
* ``speaker_labels``: AssemblyAI diarization; segments become its utterances,
  speakers are renamed ``SPEAKER_00``, ``SPEAKER_01``... in order of first
  appearance (the map is kept in ``insights["assemblyai"]["speaker_map"]``).
* ``key_terms``: ``keyterms_prompt``.
* ``model``: a speech model id (``universal-3-5-pro``...), else the SDK's
  documented default list :data:`DEFAULT_SPEECH_MODELS` is sent as
  ``speech_models`` (the API takes a priority list).
* ``extra`` (all optional): ``speech_models`` (list), ``speakers_expected``,
  ``sentiment_analysis``, ``auto_chapters``, ``summarization``,
  ``summary_model``, ``summary_type``, ``entity_detection``, ``redact_pii``
  (True or a list of policy names), ``redact_pii_sub``, ``base_url``,
  ``polling_interval`` (s, default 3), ``poll_timeout`` (s), ``http_timeout``
  (s), ``retries`` (default 4) and ``retry_delay`` (s, default 2): 429/5xx and
  network errors are retried with exponential backoff.

Extras the SDK returns (summary, chapters, sentiment, entities, PII
redaction facts, language confidence, job id) land in the stream's
``insights`` dict, so nothing is lost on the way to the Transcript.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    MissingDependencyError,
    QuotaExceededError,
    ServiceError,
)
from ..schema import Chapter, Segment, SpeakerTurn, Word, join_words, spaced
from ..secrets import get_secret, redact
from . import SimpleStream, TranscribeOptions

log = logging.getLogger(__name__)

ENGINE = "assemblyai"
#: priority list sent as ``speech_models`` (the SDK's documented default)
DEFAULT_SPEECH_MODELS = ("universal-3-5-pro", "universal-2")
API_KEY_NAME = "ASSEMBLYAI_API_KEY"

T = TypeVar("T")


class AssemblyAIJobError(ServiceError):
    """The job finished with ``status: error`` (the SDK returns this without raising)."""

    def __init__(self, message: str, transcript_id: str | None = None):
        super().__init__(message, engine=ENGINE)
        self.transcript_id = transcript_id


# --------------------------------------------------------------------------- shared helpers
class SpeakerNamer:
    """Rename an engine's speaker labels to ``SPEAKER_00``... in order of first appearance."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}

    def __call__(self, label: str | None) -> str | None:
        if label is None or str(label).strip() == "":
            return None
        label = str(label)
        if label not in self.mapping:
            self.mapping[label] = f"SPEAKER_{len(self.mapping):02d}"
        return self.mapping[label]


@contextlib.contextmanager
def audio_file(audio: Any) -> Iterator[Path]:
    """Yield a file path for *audio*: the path itself, or a temporary 16 kHz WAV for an array."""
    if isinstance(audio, np.ndarray):
        from ..audio import check_samples, write_wav

        samples = check_samples(audio)
        with tempfile.TemporaryDirectory(prefix="vidtrans-") as d:
            yield write_wav(Path(d, "audio.wav"), samples)
        return
    if isinstance(audio, (str, os.PathLike)):
        from ..audio import probe

        probe(audio)  # specific MediaError for missing/empty/corrupt/no-audio files
        yield Path(audio)
        return
    raise ConfigurationError(f"audio must be a file path or a numpy array, got {type(audio).__name__}")


def words_to_segments(
    words: list[Word], *, max_words: int = 40, max_gap: float = 1.5, speaker: str | None = None
) -> list[Segment]:
    """Group words into sentence-like segments: break after . ? ! , at long gaps and every *max_words*."""
    segments: list[Segment] = []
    cur: list[Word] = []

    def flush() -> None:
        if cur:
            text = join_words(cur)
            segments.append(Segment(cur[0].start, cur[-1].end, text, words=tuple(cur), speaker=speaker or cur[0].speaker))
            cur.clear()

    for w in words:
        if cur and (w.start - cur[-1].end > max_gap or len(cur) >= max_words or (w.speaker != cur[-1].speaker)):
            flush()
        cur.append(w)
        if w.text.rstrip().endswith((".", "?", "!", "。", "？", "！")):
            flush()
    flush()
    return segments


def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    retries: int,
    delay: float,
    retryable: Callable[[BaseException], bool],
) -> T:
    """Call *fn*; on a retryable error wait ``delay * 2**i`` and try again, *retries* times at most."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not retryable(exc):
                raise
            wait = delay * (2**attempt)
            log.warning("%s failed (%s); retrying in %.1f s (%d/%d)", what, type(exc).__name__, wait, attempt + 1, retries)
            time.sleep(wait)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- engine
def _import_sdk():
    try:
        import assemblyai as aai
    except ImportError as exc:
        raise MissingDependencyError("assemblyai", extra="cloud", purpose="the AssemblyAI engine") from exc
    return aai


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _retryable(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, httpx.TransportError):
        return True
    code = _status(exc)
    return code is not None and (code == 429 or code >= 500)


def _map_error(exc: BaseException, what: str, key: str) -> Exception:
    """Translate an SDK/HTTP error into a vidtrans EngineError (message never holds the key)."""
    import httpx

    msg = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, [key])
    code = _status(exc)
    if isinstance(exc, httpx.TransportError):
        return ServiceError(f"assemblyai: cannot reach the service while {what}: {msg}", engine=ENGINE)
    low = msg.lower()
    if code in (401, 403) or "invalid api key" in low or "authentication" in low:
        return AuthenticationError(
            f"assemblyai rejected the API key while {what} (HTTP {code}): {msg}; check {API_KEY_NAME}", engine=ENGINE
        )
    if code in (402, 429) or "quota" in low or "balance" in low or "rate limit" in low:
        return QuotaExceededError(f"assemblyai refused for rate limit or quota while {what} (HTTP {code}): {msg}", engine=ENGINE)
    return ServiceError(f"assemblyai failed while {what} (HTTP {code}): {msg}", engine=ENGINE)


def build_config(options: TranscribeOptions):
    """The ``aai.TranscriptionConfig`` for *options* (see the module docstring)."""
    aai = _import_sdk()
    extra = options.extra
    if options.task != "transcribe":
        raise ConfigurationError("assemblyai only transcribes; task='translate' needs a Whisper engine")
    if "speech_models" in extra:
        models = list(extra["speech_models"])
    elif options.model and (options.model.startswith(("universal", "slam")) or options.model in ("best", "nano")):
        models = [options.model]
    else:
        models = list(DEFAULT_SPEECH_MODELS)
    kw: dict[str, Any] = {"speech_models": models, "punctuate": True, "format_text": True}
    if options.language:
        kw["language_code"] = options.language
    else:
        kw["language_detection"] = True
    if options.speaker_labels:
        kw["speaker_labels"] = True
        if extra.get("speakers_expected"):
            kw["speakers_expected"] = int(extra["speakers_expected"])
    if options.key_terms:
        kw["keyterms_prompt"] = [str(t) for t in options.key_terms]
    for flag in ("sentiment_analysis", "auto_chapters", "summarization", "entity_detection", "disfluencies"):
        if extra.get(flag):
            kw[flag] = True
    if extra.get("summarization"):
        for k in ("summary_model", "summary_type"):
            if extra.get(k):
                kw[k] = extra[k]
    pii = extra.get("redact_pii")
    if pii:
        kw["redact_pii"] = True
        policies = list(pii) if isinstance(pii, (list, tuple)) else ["person_name", "phone_number", "email_address"]
        kw["redact_pii_policies"] = policies
        if extra.get("redact_pii_sub"):
            kw["redact_pii_sub"] = extra["redact_pii_sub"]
    try:
        return aai.TranscriptionConfig(**kw)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"assemblyai: invalid option: {exc}") from exc


def _client(options: TranscribeOptions, key: str):
    aai = _import_sdk()
    settings = aai.Settings()  # reads ASSEMBLYAI_BASE_URL (and friends) from the environment now
    extra = options.extra
    if extra.get("base_url"):
        settings.base_url = str(extra["base_url"])
    if extra.get("polling_interval") is not None:
        settings.polling_interval = float(extra["polling_interval"])
    if extra.get("http_timeout") is not None:
        settings.http_timeout = float(extra["http_timeout"])
    return aai.Client(settings=settings, api_key=key)


def _ms(v: int | float | None) -> float | None:
    return None if v is None else round(float(v) / 1000.0, 3)


def _insights(resp: Any, speaker: SpeakerNamer) -> dict[str, Any]:
    """Everything beyond words and utterances, as JSON-compatible values."""
    out: dict[str, Any] = {
        "assemblyai": {
            "id": resp.id,
            "speech_models": resp.speech_models,
            "speech_model_used": resp.speech_model_used,
            "confidence": resp.confidence,
            "language_confidence": getattr(resp, "language_confidence", None),
            "audio_duration": resp.audio_duration,
            "speaker_map": dict(speaker.mapping),
        }
    }
    if resp.summary:
        out["summary"] = resp.summary
    if resp.chapters:
        out["chapters"] = [
            {**Chapter(_ms(c.start), _ms(c.end), c.headline).to_dict(), "gist": c.gist, "summary": c.summary}
            for c in resp.chapters
        ]
    if resp.sentiment_analysis_results:
        out["sentiment"] = [
            {
                "start": _ms(s.start),
                "end": _ms(s.end),
                "text": s.text,
                "sentiment": getattr(s.sentiment, "value", s.sentiment),
                "confidence": s.confidence,
                "speaker": speaker(s.speaker),
            }
            for s in resp.sentiment_analysis_results
        ]
    if resp.entities:
        out["entities"] = [
            {"type": getattr(e.entity_type, "value", e.entity_type), "text": e.text, "start": _ms(e.start), "end": _ms(e.end)}
            for e in resp.entities
        ]
    if resp.redact_pii:
        out["pii_redaction"] = {
            "policies": [getattr(p, "value", p) for p in (resp.redact_pii_policies or [])],
            "substitution": getattr(resp.redact_pii_sub, "value", resp.redact_pii_sub),
        }
    return {k: v for k, v in out.items() if v is not None}


def to_records(resp: Any) -> tuple[list[Segment], tuple[SpeakerTurn, ...], dict[str, Any]]:
    """Map an SDK ``TranscriptResponse`` to segments, speaker turns and insights (times in seconds)."""
    speaker = SpeakerNamer()

    def word(w: Any) -> Word:
        return Word(_ms(w.start), _ms(w.end), spaced(w.text), probability=w.confidence, speaker=speaker(w.speaker))

    segments: list[Segment] = []
    turns: list[SpeakerTurn] = []
    if resp.utterances:
        for u in resp.utterances:
            spk = speaker(u.speaker)
            ws = tuple(word(w) for w in u.words)
            seg_start = _ms(u.start) if u.start is not None else (ws[0].start if ws else 0.0)
            seg_end = _ms(u.end) if u.end is not None else (ws[-1].end if ws else seg_start)
            segments.append(Segment(seg_start, seg_end, u.text, words=ws, speaker=spk, meta={"confidence": u.confidence}))
            if spk:
                turns.append(SpeakerTurn(seg_start, seg_end, spk))
    else:
        segments = words_to_segments([word(w) for w in (resp.words or [])])
    return segments, tuple(turns), _insights(resp, speaker)


def assemblyai_engine(audio: Any, options: TranscribeOptions) -> SimpleStream:
    """Transcribe *audio* (path or 16 kHz array) with AssemblyAI; see the module docstring."""
    aai = _import_sdk()
    key = get_secret(API_KEY_NAME, purpose="the AssemblyAI engine")
    config = build_config(options)
    client = _client(options, key)
    retries = int(options.extra.get("retries", 4))
    delay = float(options.extra.get("retry_delay", 2.0))
    poll_timeout = options.extra.get("poll_timeout")
    transcriber = aai.Transcriber(client=client, config=config)

    def call(fn: Callable[[], T], what: str) -> T:
        import httpx

        try:
            return with_retries(fn, what=f"assemblyai {what}", retries=retries, delay=delay, retryable=_retryable)
        except (aai.types.AssemblyAIError, httpx.HTTPError) as exc:
            raise _map_error(exc, what, key) from exc

    try:
        with audio_file(audio) as path:
            duration = None
            with contextlib.suppress(Exception):
                from ..audio import probe

                duration = probe(path).duration
            log.info("assemblyai: uploading %s", path.name)
            upload_url = call(lambda: transcriber.upload_file(path), "uploading the audio")
        log.info("assemblyai: creating the transcription job (speech_models=%s)", config.speech_models)
        job = call(lambda: transcriber.submit(upload_url), "creating the transcription job")
        log.info("assemblyai: job %s queued; polling", job.id)
        t0 = time.monotonic()

        def poll():
            left = None if poll_timeout is None else max(0.0, float(poll_timeout) - (time.monotonic() - t0))
            return job.wait_for_completion(poll_timeout=left)

        try:
            done = call(poll, f"polling job {job.id}")
        except ServiceError as exc:
            if poll_timeout is not None and "did not finish within" in str(exc):
                raise ServiceError(
                    f"assemblyai job {job.id} did not finish within {poll_timeout} s; it keeps running server-side",
                    engine=ENGINE,
                ) from exc
            raise
        if done.status == aai.TranscriptStatus.error:
            raise AssemblyAIJobError(
                f"assemblyai transcription job {done.id} failed: {redact(done.error or 'no reason given', [key])}",
                transcript_id=done.id,
            )
        resp = aai.types.TranscriptResponse.parse_obj(done.json_response)
    finally:
        client.http_client.close()
    segments, turns, insights = to_records(resp)
    language = getattr(resp.language_code, "value", resp.language_code)
    model = resp.speech_model_used or ",".join(config.speech_models or ())
    return SimpleStream(
        segments=segments,
        language=language or options.language,
        duration=duration or (float(resp.audio_duration) if resp.audio_duration else None),
        model=model,
        insights=insights,
        speaker_turns=turns,
    )
