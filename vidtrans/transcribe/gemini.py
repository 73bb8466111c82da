"""Gemini engine: structured-JSON transcription through ``google-genai``.

The audio is decoded once, cut into windows of ``chunk_seconds`` (default 600)
that overlap by ``overlap_seconds`` (default 10), and each window is sent as
FLAC: inline when it is small, through the Files API otherwise.  Gemini's
timestamps drift on long inputs, so short windows keep them accurate; each
window's segments are shifted by the window start and a segment is kept by
the window that owns its midpoint (the overlap is split in half), so words
are neither lost nor doubled at the seams.

The model answers with a response schema (``language`` plus ``segments`` of
``start``/``end`` seconds, ``speaker``, ``text`` and optionally ``emotion``);
what comes back is validated (JSON, text non-empty, times finite, inside the
window and monotonic) and junk raises :class:`GeminiResponseError` after
``junk_retries`` fresh attempts.  429/5xx answers are retried by the SDK's own
``HttpRetryOptions`` (exponential backoff with jitter).

Gemini gives segment times only: word times are spread over the segment by
character count (``segment.meta["word_timing"] == "interpolated"``).  Speaker
labels are renamed ``SPEAKER_00``...; with several windows they are only as
consistent as the model keeps them between independent requests.

Key: ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY`` via :mod:`vidtrans.secrets`.
Endpoint: ``GOOGLE_GEMINI_BASE_URL`` (the SDK's own variable) or
``extra["base_url"]``.  ``extra`` options: ``model`` (default
:data:`DEFAULT_MODEL`; ``options.model`` is used when it names a Gemini
model), ``chunk_seconds``, ``overlap_seconds``, ``inline_max_bytes`` (default
14 MB; larger windows go through the Files API), ``emotion`` (bool),
``retries`` (attempts, default 5), ``retry_delay`` (s, default 1),
``timeout`` (s, default 600), ``junk_retries`` (default 1), ``temperature``,
``base_url``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    MissingDependencyError,
    QuotaExceededError,
    ServiceError,
)
from ..schema import Emotion, Segment, SpeakerTurn, Word, spaced
from ..secrets import get_secret, redact
from . import SimpleStream, TranscribeOptions
from .assemblyai import SpeakerNamer

log = logging.getLogger(__name__)

ENGINE = "gemini"
DEFAULT_MODEL = "gemini-2.5-flash"
API_KEY_NAMES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
SAMPLE_RATE = 16_000
EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "surprised", "disgusted")
#: how far a timestamp may stray past the window end before it counts as junk (s)
TIME_TOLERANCE = 1.0

PROMPT = """Transcribe this audio clip verbatim in its original language (do not translate).
The clip is {duration:.1f} seconds long.
Return JSON with the detected ISO 639-1 language code and a list of segments in time order.
Each segment is one sentence or short phrase spoken by one speaker, with:
- start and end: seconds from the start of THIS clip (numbers, e.g. 12.34), within 0 and {duration:.1f};
- speaker: a short label ("A", "B", ...), the same label for the same voice throughout;
- text: exactly what was said.{emotion}
Leave out silence, music and noise. If nobody speaks, return an empty list of segments.{terms}"""


class GeminiResponseError(ServiceError):
    """Gemini answered, but not with usable transcript segments."""


@dataclass(frozen=True)
class Window:
    """One piece of the audio sent in one request; segments it owns have midpoints in [keep_from, keep_to)."""

    start: float
    end: float
    keep_from: float
    keep_to: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def plan_windows(duration: float, chunk_seconds: float = 600.0, overlap_seconds: float = 10.0) -> list[Window]:
    """Cut ``[0, duration)`` into overlapping windows; the overlaps are shared out at their midpoints."""
    if chunk_seconds <= 0 or overlap_seconds < 0 or overlap_seconds >= chunk_seconds:
        raise ConfigurationError(
            f"gemini: need chunk_seconds > overlap_seconds >= 0, got {chunk_seconds} and {overlap_seconds}"
        )
    if duration <= chunk_seconds:
        return [Window(0.0, duration, 0.0, math.inf)]
    step = chunk_seconds - overlap_seconds
    starts = [0.0]
    while starts[-1] + chunk_seconds < duration:
        starts.append(starts[-1] + step)
    windows = []
    for i, s in enumerate(starts):
        e = min(s + chunk_seconds, duration)
        keep_from = 0.0 if i == 0 else s + overlap_seconds / 2
        keep_to = math.inf if i == len(starts) - 1 else starts[i + 1] + overlap_seconds / 2
        windows.append(Window(s, e, keep_from, keep_to))
    return windows


# --------------------------------------------------------------------------- response parsing
_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")


def parse_time(value: Any) -> float:
    """Seconds from a number, ``"12.5"``, ``"MM:SS(.mmm)"`` or ``"HH:MM:SS"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        v = float(value)
    elif isinstance(value, str):
        m = _CLOCK.match(value)
        if m:
            h, mnt, sec = m.groups()
            v = int(h or 0) * 3600 + int(mnt) * 60 + float(sec)
        else:
            v = float(value.strip().rstrip("s"))
    else:
        raise ValueError(f"not a time: {value!r}")
    if not math.isfinite(v):
        raise ValueError(f"not a finite time: {value!r}")
    return v


def parse_response(text: str | None, window_duration: float) -> tuple[str | None, list[dict[str, Any]]]:
    """Parse and validate one answer; times stay relative to the window.

    Returns ``(language, segments)`` with each segment a dict of float
    ``start``/``end``, ``text``, ``speaker`` and ``emotion``.  Raises
    GeminiResponseError naming the first problems found.
    """
    if text is None or not text.strip():
        raise GeminiResponseError("gemini returned an empty answer instead of JSON", engine=ENGINE)
    cleaned = text.strip()
    if cleaned.startswith("```"):  # a fenced block despite response_mime_type
        cleaned = re.sub(r"^```(?:json)?\s*|\s*```$", "", cleaned)
    try:
        data = json.loads(cleaned)
    except json.JSONDecodeError as exc:
        snippet = cleaned[:80].replace("\n", " ")
        raise GeminiResponseError(f"gemini returned malformed JSON ({exc.msg} at char {exc.pos}): {snippet!r}", engine=ENGINE) from exc
    if isinstance(data, list):
        data = {"segments": data}
    if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
        raise GeminiResponseError(
            f"gemini returned JSON without a 'segments' list (got {type(data).__name__} with keys "
            f"{sorted(data)[:5] if isinstance(data, dict) else '-'})",
            engine=ENGINE,
        )
    problems: list[str] = []
    out: list[dict[str, Any]] = []
    prev_start = 0.0
    for i, seg in enumerate(data["segments"]):
        if not isinstance(seg, dict):
            problems.append(f"segment {i} is a {type(seg).__name__}, not an object")
            continue
        text_i = str(seg.get("text") or "").strip()
        try:
            start, end = parse_time(seg.get("start")), parse_time(seg.get("end"))
        except (TypeError, ValueError):
            problems.append(f"segment {i} has unreadable times start={seg.get('start')!r} end={seg.get('end')!r}")
            continue
        if not text_i:
            problems.append(f"segment {i} ({start:.1f}-{end:.1f} s) has empty text")
        if start < 0 or end < start:
            problems.append(f"segment {i} runs from {start:.2f} s to {end:.2f} s")
        if end > window_duration + TIME_TOLERANCE:
            problems.append(f"segment {i} ends at {end:.1f} s, after the clip's {window_duration:.1f} s end")
        if start + TIME_TOLERANCE < prev_start:
            problems.append(f"segment {i} starts at {start:.1f} s, before the previous one ({prev_start:.1f} s)")
        prev_start = max(prev_start, start)
        emotion = seg.get("emotion")
        try:
            emotion_score = min(1.0, max(0.0, float(seg.get("emotion_confidence"))))
        except (TypeError, ValueError):
            emotion_score = 0.0  # the model gave a label without a usable confidence
        out.append(
            {
                "start": max(0.0, start),
                "end": min(max(end, start), window_duration),
                "text": text_i,
                "speaker": str(seg["speaker"]).strip() if seg.get("speaker") not in (None, "") else None,
                "emotion": str(emotion).strip().lower() if emotion else None,
                "emotion_score": emotion_score,
            }
        )
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise GeminiResponseError(f"gemini returned unusable segments: {'; '.join(problems[:3])}{more}", engine=ENGINE)
    language = data.get("language")
    return (str(language).strip().lower() or None) if language else None, out


def interpolate_words(start: float, end: float, text: str, speaker: str | None) -> tuple[Word, ...]:
    """Spread *text*'s words over [start, end] in proportion to their length (Gemini gives no word times)."""
    tokens = text.split()
    if not tokens:
        return ()
    weights = np.array([len(t) + 1 for t in tokens], dtype=float)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return tuple(Word(round(float(edges[i]), 3), round(float(edges[i + 1]), 3), spaced(t), speaker=speaker) for i, t in enumerate(tokens))


# --------------------------------------------------------------------------- SDK calls
def _import_sdk():
    try:
        from google import genai
        from google.genai import errors, types
    except ImportError as exc:
        raise MissingDependencyError("google-genai", extra="cloud", purpose="the Gemini engine") from exc
    return genai, types, errors


def response_schema(emotion: bool):
    """The ``types.Schema`` Gemini must answer with."""
    _, types, _ = _import_sdk()
    T = types.Type
    props = {
        "start": types.Schema(type=T.NUMBER, description="seconds from the start of the clip"),
        "end": types.Schema(type=T.NUMBER, description="seconds from the start of the clip"),
        "speaker": types.Schema(type=T.STRING, description="speaker label, e.g. A"),
        "text": types.Schema(type=T.STRING, description="verbatim words"),
    }
    order = ["start", "end", "speaker", "text"]
    if emotion:
        props["emotion"] = types.Schema(type=T.STRING, enum=list(EMOTIONS), description="the speaker's emotion")
        props["emotion_confidence"] = types.Schema(type=T.NUMBER, description="confidence in the emotion, 0 to 1")
        order += ["emotion", "emotion_confidence"]
    segment = types.Schema(type=T.OBJECT, properties=props, required=order, property_ordering=order)
    return types.Schema(
        type=T.OBJECT,
        properties={
            "language": types.Schema(type=T.STRING, description="ISO 639-1 code"),
            "segments": types.Schema(type=T.ARRAY, items=segment),
        },
        required=["language", "segments"],
        property_ordering=["language", "segments"],
    )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """httpx error classes the SDK may raise (it uses the ``httpx2`` fork when installed)."""
    import httpx

    out: list[type[BaseException]] = [httpx.HTTPError]
    try:
        import httpx2

        out.append(httpx2.HTTPError)
    except ImportError:
        pass
    return tuple(out)


def _map_error(exc: BaseException, what: str, key: str) -> Exception:
    _, _, errors = _import_sdk()

    msg = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, [key])
    if isinstance(exc, errors.APIError):
        code, status = exc.code, str(exc.status or "")
        low = msg.lower()
        if code in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED") or "api key" in low:
            return AuthenticationError(
                f"gemini rejected the API key while {what} ({code} {status}); check GEMINI_API_KEY / GOOGLE_API_KEY",
                engine=ENGINE,
            )
        if code == 429 or status == "RESOURCE_EXHAUSTED":
            return QuotaExceededError(f"gemini rate limit or quota exceeded while {what} ({code} {status}): {msg}", engine=ENGINE)
        return ServiceError(f"gemini failed while {what} ({code} {status}): {msg}", engine=ENGINE)
    if isinstance(exc, _transport_errors()):
        return ServiceError(f"gemini: cannot reach the service while {what}: {msg}", engine=ENGINE)
    return ServiceError(f"gemini failed while {what}: {msg}", engine=ENGINE)


def _client(options: TranscribeOptions, key: str):
    genai, types, _ = _import_sdk()
    extra = options.extra
    delay = float(extra.get("retry_delay", 1.0))
    retry = types.HttpRetryOptions(
        attempts=int(extra.get("retries", 5)),
        initial_delay=delay,
        jitter=min(1.0, delay),  # random extra wait, at most one initial delay
        max_delay=60.0,
        http_status_codes=[408, 429, 500, 502, 503, 504],
    )
    http = types.HttpOptions(
        base_url=extra.get("base_url") or None,  # None: the SDK reads GOOGLE_GEMINI_BASE_URL
        timeout=int(float(extra.get("timeout", 600)) * 1000),  # milliseconds
        retry_options=retry,
    )
    return genai.Client(api_key=key, http_options=http)


def _flac(samples: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _wait_active(client, file, timeout: float = 300.0, interval: float = 2.0):
    _, types, _ = _import_sdk()
    t0 = time.monotonic()
    while file.state == types.FileState.PROCESSING:
        if time.monotonic() - t0 > timeout:
            raise ServiceError(f"gemini: uploaded file {file.name} still processing after {timeout:.0f} s", engine=ENGINE)
        time.sleep(interval)
        file = client.files.get(name=file.name)
    if file.state == types.FileState.FAILED:
        raise ServiceError(f"gemini: the Files API could not process the uploaded audio ({file.name})", engine=ENGINE)
    return file


def _finish_problem(response) -> str | None:
    cands = getattr(response, "candidates", None) or []
    if not cands:
        fb = getattr(response, "prompt_feedback", None)
        reason = getattr(fb, "block_reason", None)
        return f"the request was blocked ({getattr(reason, 'value', reason)})" if reason else "no candidates in the answer"
    reason = getattr(cands[0].finish_reason, "value", cands[0].finish_reason)
    if reason in (None, "STOP", "FINISH_REASON_UNSPECIFIED"):
        return None
    if reason == "MAX_TOKENS":
        return "the answer was cut off at the output token limit (use a smaller chunk_seconds)"
    return f"the model stopped early ({reason})"


def gemini_engine(audio: Any, options: TranscribeOptions) -> SimpleStream:
    """Transcribe *audio* (path or 16 kHz float32 array) with Gemini; see the module docstring."""
    genai, types, errors = _import_sdk()
    transport_errors = _transport_errors()
    extra = options.extra
    if options.task != "transcribe":
        raise ConfigurationError("gemini engine: only task='transcribe' is supported")
    key = get_secret(API_KEY_NAMES[0], aliases=API_KEY_NAMES[1:], purpose="the Gemini engine")
    from ..audio import as_samples

    samples = as_samples(audio)
    duration = samples.size / SAMPLE_RATE
    model = extra.get("model") or (options.model if options.model.startswith("gemini") else DEFAULT_MODEL)
    windows = plan_windows(duration, float(extra.get("chunk_seconds", 600.0)), float(extra.get("overlap_seconds", 10.0)))
    inline_max = int(extra.get("inline_max_bytes", 14 * 1024 * 1024))
    want_emotion = bool(extra.get("emotion", False))
    junk_retries = int(extra.get("junk_retries", 1))
    terms = f"\nNames and terms that may occur: {', '.join(options.key_terms)}." if options.key_terms else ""
    if options.language:
        terms += f"\nThe language is {options.language}."
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema=response_schema(want_emotion),
        temperature=float(extra.get("temperature", 0.0)),
    )
    client = _client(options, key)
    speaker = SpeakerNamer()
    languages: dict[str, float] = {}
    uploads = 0

    def call(fn, what):
        try:
            return fn()
        except (errors.APIError, *transport_errors) as exc:
            raise _map_error(exc, what, key) from exc

    def transcribe_window(w: Window) -> list[Segment]:
        nonlocal uploads
        piece = samples[int(w.start * SAMPLE_RATE) : int(w.end * SAMPLE_RATE)]
        data = _flac(piece)
        where = f"transcribing {w.start:.0f}-{w.end:.0f} s"
        uploaded = None
        if len(data) <= inline_max:
            part = types.Part.from_bytes(data=data, mime_type="audio/flac")
        else:
            log.info("gemini: uploading %.1f MB window %.0f-%.0f s through the Files API", len(data) / 1e6, w.start, w.end)
            uploaded = call(
                lambda: client.files.upload(file=io.BytesIO(data), config=types.UploadFileConfig(mime_type="audio/flac")),
                f"uploading audio for {w.start:.0f}-{w.end:.0f} s",
            )
            uploaded = _wait_active(client, uploaded)
            uploads += 1
            part = types.Part.from_uri(file_uri=uploaded.uri, mime_type=uploaded.mime_type or "audio/flac")
        prompt = PROMPT.format(
            duration=w.duration,
            emotion=f"\n- emotion: one of {', '.join(EMOTIONS)}, with emotion_confidence from 0 to 1." if want_emotion else "",
            terms=terms,
        )
        try:
            for attempt in range(junk_retries + 1):
                response = call(
                    lambda: client.models.generate_content(model=model, contents=[part, prompt], config=config), where
                )
                try:
                    problem = _finish_problem(response)
                    if problem:
                        raise GeminiResponseError(f"gemini gave no usable answer while {where}: {problem}", engine=ENGINE)
                    language, raw = parse_response(response.text, w.duration)
                    break
                except GeminiResponseError as exc:
                    if attempt >= junk_retries:
                        raise GeminiResponseError(f"{exc} (while {where}, {attempt + 1} attempts)", engine=ENGINE) from exc
                    log.warning("gemini: unusable answer while %s (%s); asking again", where, exc)
        finally:
            if uploaded is not None:
                try:
                    client.files.delete(name=uploaded.name)
                except Exception as exc:  # the file expires by itself after 48 h
                    log.debug("gemini: could not delete %s (%s)", uploaded.name, type(exc).__name__)
        segs = []
        for r in raw:
            start, end = w.start + r["start"], w.start + r["end"]
            if not (w.keep_from <= (start + end) / 2 < w.keep_to):
                continue  # the neighbouring window owns it
            spk = speaker(r["speaker"])
            emo = Emotion(label=r["emotion"], score=r["emotion_score"], source=f"gemini:{model}") if r["emotion"] else None
            segs.append(
                Segment(
                    round(start, 3), round(end, 3), r["text"], words=interpolate_words(start, end, r["text"], spk),
                    speaker=spk, emotion=emo, meta={"word_timing": "interpolated"},
                )
            )
            if language:
                languages[language] = languages.get(language, 0.0) + (end - start)
        return segs

    segments: list[Segment] = []
    try:
        for w in windows:
            log.info("gemini: %s on %.0f-%.0f s of %.0f s", model, w.start, w.end, duration)
            segments.extend(transcribe_window(w))
    finally:
        client.close()
    turns = tuple(SpeakerTurn(s.start, s.end, s.speaker) for s in segments if s.speaker)
    language = max(languages, key=languages.get) if languages else options.language
    insights = {
        "gemini": {
            "model": model,
            "windows": [[w.start, w.end] for w in windows],
            "files_api_uploads": uploads,
            "speaker_map": dict(speaker.mapping),
            "word_timing": "interpolated",
        }
    }
    return SimpleStream(segments=segments, language=language, duration=duration, model=model, insights=insights, speaker_turns=turns)
