"""Translated caption tracks: Whisper's translate task (English, offline) or Gemini (any language).

::

    from vidtrans.translate import translate, write_translation
    en = translate(transcript, "en", audio="talk.wav")      # Whisper translate task, offline
    de = translate(transcript, "de")                         # Gemini, needs GEMINI_API_KEY
    write_translation(de, "out/talk")                        # -> out/talk.de.vtt

* **English** comes from Whisper itself (``task="translate"``) run on the
  audio: offline, with its own word timings.  Speakers found in the source
  transcript are carried over by time.  It needs a multilingual model
  (``base`` ships offline), not an ``.en`` one.
* **Other languages** (or English without audio) come from Gemini through
  ``google-genai``: the source segments are sent as numbered JSON and come
  back translated under the same numbers, so every translated segment keeps
  its source segment's start, end and speaker; the captions stage then
  spreads the timing over the translated words.

Each translation is a plain :class:`~vidtrans.schema.Transcript` in the
target language, so it is built into cues with the same caption rules
(:func:`vidtrans.captions.write`) and published as its own track
(:func:`vidtrans.upload.publish_many`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import AuthenticationError, ConfigurationError, MissingDependencyError, QuotaExceededError, ServiceError
from .schema import Segment, Transcript

log = logging.getLogger(__name__)

GEMINI_MODEL = "gemini-2.5-flash"
#: segments per Gemini request (keeps answers well inside the output limit)
BATCH = 80
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")

PROMPT = """Translate these caption segments from {source} into {target} (BCP-47 language tag).
They are consecutive lines of one spoken recording: keep the meaning, tone and names; translate each
segment on its own (do not merge, split, reorder or drop segments) and keep it about as short as the original,
so it can be read in the same time on screen. Return JSON: {{"segments": [{{"id": <same id>, "text": <translation>}}]}}
with exactly one entry for every id below.

{segments}"""


class TranslationError(ServiceError):
    """A translation service answered with something unusable."""


def _base(lang: str | None) -> str:
    return (lang or "").split("-")[0].lower()


def translate(
    transcript: Transcript,
    target: str,
    *,
    audio: Any = None,
    engine: str = "auto",
    model: str = "base",
    gemini_model: str = GEMINI_MODEL,
    base_url: str | None = None,
) -> Transcript:
    """*transcript* in language *target*.

    *engine*: ``"whisper"`` (English only, needs *audio*: a path or 16 kHz
    samples), ``"gemini"``, or ``"auto"``: Whisper for English when audio is
    available, Gemini otherwise.  *model* is the Whisper model of the
    translate task (multilingual).
    """
    target = (target or "").strip()
    if not _LANG.match(target):
        raise ConfigurationError(f"{target!r} is not a language tag (en, de, pt-BR)")
    source = transcript.language
    if source and _base(source) == _base(target):
        raise ConfigurationError(f"the transcript is already in {source}: nothing to translate to {target}")
    if engine not in ("auto", "whisper", "gemini"):
        raise ConfigurationError(f"unknown translation engine {engine!r}; choose auto, whisper or gemini")
    use_whisper = engine == "whisper" or (engine == "auto" and _base(target) == "en" and audio is not None)
    if use_whisper:
        if _base(target) != "en":
            raise ConfigurationError("Whisper only translates into English; use engine='gemini' for "
                                     f"{target}")
        if audio is None:
            raise ConfigurationError("Whisper translation needs the audio (a media path or samples)")
        return whisper_translate(transcript, audio, model=model)
    return gemini_translate(transcript, target, model=gemini_model, base_url=base_url)


def whisper_translate(transcript: Transcript, audio: Any, *, model: str = "base", **options: Any) -> Transcript:
    """English from Whisper's translate task on *audio*; speakers carried over from *transcript*."""
    from .transcribe import TranscribeOptions, transcribe

    if str(model).endswith(".en"):
        raise ConfigurationError(f"model {model!r} is English-only and cannot translate; use a multilingual "
                                 "model such as 'base'")
    opts = TranscribeOptions(engine="faster-whisper", model=model, language=transcript.language, task="translate",
                             **options)
    out = transcribe(audio, opts, source=transcript.source)
    if transcript.speaker_turns and out.segments:
        from .diarize import assign_speakers

        out = assign_speakers(out, transcript.speaker_turns)
    return out.replace(language="en", media=transcript.media, duration=out.duration or transcript.duration,
                       meta={**out.meta, "translated_from": transcript.language, "translation": "whisper"})


def _segment_batches(segments: Sequence[Segment]) -> list[list[tuple[int, Segment]]]:
    numbered = [(i, s) for i, s in enumerate(segments) if s.text.strip()]
    return [numbered[k:k + BATCH] for k in range(0, len(numbered), BATCH)]


def _map_genai_error(exc: BaseException, what: str) -> Exception:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    if code in (401, 403) or (code == 400 and "API key" in message):
        return AuthenticationError(f"{what}: Gemini refused the API key ({code}); check GEMINI_API_KEY",
                                   engine="gemini")
    if code == 429:
        return QuotaExceededError(f"{what}: Gemini quota or rate limit exceeded (429)", engine="gemini")
    return ServiceError(f"{what}: Gemini failed ({code}): {message[:200]}", engine="gemini")


def gemini_translate(transcript: Transcript, target: str, *, model: str = GEMINI_MODEL, base_url: str | None = None,
                     timeout: float = 300.0, retries: int = 5) -> Transcript:
    """Translate each segment's text with Gemini, keeping its times and speaker.

    Key: ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY`` (:mod:`vidtrans.secrets`);
    endpoint: *base_url* or ``GOOGLE_GEMINI_BASE_URL``.
    """
    try:
        from google import genai
        from google.genai import errors, types
    except ImportError as exc:
        raise MissingDependencyError("google-genai", extra="cloud", purpose="Gemini translation") from exc
    from .secrets import get_secret

    key = get_secret("GEMINI_API_KEY", aliases=("GOOGLE_API_KEY",), purpose="translating captions with Gemini")
    client = genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=base_url or None, timeout=int(timeout * 1000),
        retry_options=types.HttpRetryOptions(attempts=retries, initial_delay=1.0, max_delay=30.0)))
    schema = types.Schema(type="OBJECT", required=["segments"], properties={"segments": types.Schema(
        type="ARRAY", items=types.Schema(type="OBJECT", required=["id", "text"], properties={
            "id": types.Schema(type="INTEGER"), "text": types.Schema(type="STRING")}))})
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=schema,
                                         temperature=0.0)
    source = transcript.language or "the original language"
    texts: dict[int, str] = {}
    batches = _segment_batches(transcript.segments)
    for n, batch in enumerate(batches, 1):
        what = f"translating segments {batch[0][0]}-{batch[-1][0]} into {target}"
        payload = json.dumps([{"id": i, "text": s.text.strip()} for i, s in batch], ensure_ascii=False)
        try:
            resp = client.models.generate_content(
                model=model, contents=PROMPT.format(source=source, target=target, segments=payload), config=config)
        except errors.APIError as exc:
            raise _map_genai_error(exc, what) from exc
        texts.update(_parse_answer(resp.text, [i for i, _ in batch], what))
        log.info("translated batch %d/%d into %s", n, len(batches), target)
    segments = tuple(
        Segment(s.start, s.end, texts[i], speaker=s.speaker) for i, s in enumerate(transcript.segments) if i in texts
    )
    return Transcript(segments=segments, language=target, engine="gemini", model=model, duration=transcript.duration,
                      source=transcript.source, media=transcript.media, speaker_turns=transcript.speaker_turns,
                      meta={"translated_from": transcript.language, "translation": "gemini"})


def _parse_answer(text: str | None, ids: list[int], what: str) -> dict[int, str]:
    cleaned = re.sub(r"^```(?:json)?\s*|\s*```$", "", (text or "").strip())
    try:
        data = json.loads(cleaned)
    except json.JSONDecodeError as exc:
        raise TranslationError(f"{what}: Gemini returned malformed JSON ({exc.msg})", engine="gemini") from exc
    items = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise TranslationError(f"{what}: Gemini's answer has no segment list", engine="gemini")
    out: dict[int, str] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), int) and str(item.get("text") or "").strip():
            out[item["id"]] = " ".join(str(item["text"]).split())
    missing = [i for i in ids if i not in out]
    if missing:
        raise TranslationError(f"{what}: Gemini left out {len(missing)} of {len(ids)} segments "
                               f"(ids {missing[:5]})", engine="gemini")
    return {i: out[i] for i in ids}


def write_translation(translated: Transcript, out_base: str | os.PathLike, formats: Sequence[str] = ("vtt",),
                      options: Any = None) -> dict[str, Path]:
    """Write ``<out_base>.<lang>.<fmt>`` with the caption rules of *options* (a CaptionOptions)."""
    from . import captions

    if not translated.language:
        raise ConfigurationError("the translated transcript has no language")
    return captions.write(translated, f"{os.fspath(out_base)}.{translated.language}", formats=tuple(formats),
                          options=options)


def translate_run_dir(out_dir: str | os.PathLike, languages: Sequence[str], *, engine: str = "auto",
                      options: Any = None) -> list[Path]:
    """Write ``<stem>.<lang>.vtt`` next to each transcript JSON of a ``vidtrans run`` output directory.

    Languages equal to a transcript's own are skipped; English uses
    Whisper's translate task on the cached audio when it is still there.
    """
    written: list[Path] = []
    for js in sorted(Path(out_dir).glob("*.json")):
        try:
            t = Transcript.load(js)
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            continue
        if not t.segments:
            continue
        audio = t.media.audio_path if t.media and t.media.audio_path and Path(t.media.audio_path).exists() else None
        for lang in languages:
            if _base(lang) == _base(t.language):
                continue
            out = translate(t, lang, audio=audio, engine=engine)
            written.append(write_translation(out, js.with_suffix(""), ("vtt",), options)["vtt"])
            log.info("wrote %s", written[-1])
    return written
