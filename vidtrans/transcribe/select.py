"""Engine choice and fallback: pick an engine by need, try a chain until one works.

:func:`choose_engine` ranks the registered engines for one media item by its
language, duration, whether speakers are needed, the budget and what is
configured here (packages installed, keys present, model directories), and
says why every other engine was passed over.  :func:`transcribe_with_fallback`
(what ``transcribe(..., TranscribeOptions(engine="auto", fallback=[...]))``
runs) tries a chain in order and records in ``Transcript.meta["engine_selection"]``
which engine produced the result and why the others were skipped or failed.

The rules, in order of preference:

* Chinese (``zh``, ``yue``) → ``fireredasr`` when its package and a model
  directory are present;
* speakers needed, or English, or one of AssemblyAI's high-accuracy languages →
  ``assemblyai`` (built-in diarization, best English accuracy) when keyed;
* any other language → ``gemini`` (multilingual) when keyed, then
  ``assemblyai`` (Universal-2 covers 99 languages);
* always last: the local engines ``faster-whisper`` then ``openai-whisper``
  (offline, free).

A paid engine is passed over when its estimated cost
(:data:`COST_PER_HOUR_USD` × duration) exceeds ``needs.budget_usd``, when
``needs.offline`` is set, or when the audio is longer than it accepts.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, EngineError, MediaError, VidtransError

log = logging.getLogger(__name__)

#: rough list prices (USD per audio hour) used only to respect ``budget_usd``; edit to your contract
COST_PER_HOUR_USD: dict[str, float] = {
    "assemblyai": 0.27,  # Universal + speaker labels
    "gemini": 0.15,  # Flash: ~115k audio tokens/h in + text out
    "fireredasr": 0.0,
    "faster-whisper": 0.0,
    "openai-whisper": 0.0,
}
#: longest audio each engine accepts (seconds); None = no limit
MAX_DURATION_S: dict[str, float | None] = {"assemblyai": 10 * 3600.0}
#: languages AssemblyAI's most accurate model covers
ASSEMBLYAI_BEST_LANGUAGES = frozenset({"en", "es", "de", "fr", "pt", "it"})
CHINESE = frozenset({"zh", "yue", "cmn", "zh-cn", "zh-tw", "zh-hans", "zh-hant"})
LOCAL_ENGINES = ("faster-whisper", "openai-whisper")


class AllEnginesFailedError(EngineError):
    """Every engine in the chain failed; ``attempts`` lists each engine and its error."""

    def __init__(self, message: str, attempts: list[dict[str, Any]]):
        super().__init__(message, engine=attempts[-1]["engine"] if attempts else None)
        self.attempts = attempts


@dataclass(frozen=True)
class EngineNeeds:
    """What the caller needs from transcription (all optional)."""

    #: ISO 639-1 code if known (else taken from the media record)
    language: str | None = None
    #: speaker labels are wanted from the engine itself
    diarization: bool = False
    #: audio length in seconds if known (else taken from the media record)
    duration: float | None = None
    #: most you will pay for this item in USD; None = no limit, 0 = free engines only
    budget_usd: float | None = None
    #: never send audio off this machine
    offline: bool = False


@dataclass(frozen=True)
class EngineChoice:
    """The result of :func:`choose_engine`."""

    #: best engine name
    engine: str
    #: why it was chosen (one line)
    reason: str
    #: every usable engine, best first (the fallback chain)
    chain: tuple[str, ...]
    #: engine -> why it was passed over
    skipped: dict[str, str] = field(default_factory=dict)


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def engine_status(name: str, options_extra: Mapping[str, Any] | None = None) -> str | None:
    """None when engine *name* can run here, else why not (one line, safe to show)."""
    from ..secrets import has_secret

    extra = options_extra or {}
    if name == "assemblyai":
        if not _has_module("assemblyai"):
            return "the assemblyai package is not installed (pip install 'vidtrans[cloud]')"
        if not has_secret("ASSEMBLYAI_API_KEY"):
            return "no ASSEMBLYAI_API_KEY configured"
        return None
    if name == "gemini":
        if not _has_module("google.genai"):
            return "the google-genai package is not installed (pip install 'vidtrans[cloud]')"
        if not has_secret("GEMINI_API_KEY", aliases=("GOOGLE_API_KEY",)):
            return "no GEMINI_API_KEY / GOOGLE_API_KEY configured"
        return None
    if name == "fireredasr":
        if not _has_module("fireredasr"):
            return "the fireredasr package is not installed"
        d = extra.get("model_dir") or os.environ.get("FIREREDASR_MODEL_DIR")
        if not d or not Path(d).is_dir():
            return "no FireRedASR model directory (set FIREREDASR_MODEL_DIR)"
        return None
    if name == "faster-whisper":
        return None if _has_module("faster_whisper") else "faster-whisper is not installed"
    if name == "openai-whisper":
        return None if _has_module("whisper") else "openai-whisper is not installed (pip install 'vidtrans[whisper]')"
    from . import ENGINES

    return None if name in ENGINES else f"unknown engine {name!r}"


def probe_engines(names: Sequence[str] | None = None, options_extra: Mapping[str, Any] | None = None) -> dict[str, str | None]:
    """``{engine: None if usable else why not}`` for *names* (default: all registered)."""
    from . import ENGINES

    return {n: engine_status(n, options_extra) for n in (names or list(ENGINES))}


def _base_language(lang: str | None) -> str | None:
    return lang.lower().split("-")[0].split("_")[0] if lang else None


def choose_engine(
    media: Any = None,
    needs: EngineNeeds | None = None,
    *,
    available: Mapping[str, str | None] | None = None,
) -> EngineChoice:
    """Rank engines for *media* (a :class:`~vidtrans.schema.Media` or None) under *needs*.

    *available* maps engine -> None (usable) or the reason it is not; by
    default it is probed from this machine (:func:`probe_engines`).  Raises
    ConfigurationError when nothing can run.
    """
    needs = needs or EngineNeeds()
    language = needs.language or getattr(media, "language", None)
    duration = needs.duration if needs.duration is not None else getattr(media, "duration", None)
    lang = _base_language(language)
    status = dict(available) if available is not None else probe_engines()
    for n in (*COST_PER_HOUR_USD, *LOCAL_ENGINES):
        status.setdefault(n, f"unknown engine {n!r}")

    if lang in CHINESE or (language or "").lower() in CHINESE:
        order = ["fireredasr", "assemblyai", "gemini"]
        why = {"fireredasr": "Mandarin: FireRedASR is the specialist", "assemblyai": "Chinese via Universal-2",
               "gemini": "Chinese via Gemini (multilingual)"}
    elif needs.diarization:
        order = ["assemblyai", "gemini"]
        why = {"assemblyai": "speakers needed: AssemblyAI has built-in diarization",
               "gemini": "speakers needed: Gemini labels speakers"}
    elif lang is None or lang == "en" or lang in ASSEMBLYAI_BEST_LANGUAGES:
        order = ["assemblyai", "gemini"]
        why = {"assemblyai": f"{'English' if lang in (None, 'en') else lang}: AssemblyAI Universal for accuracy",
               "gemini": "Gemini as the second cloud choice"}
    else:
        order = ["gemini", "assemblyai"]
        why = {"gemini": f"{lang}: Gemini for multilingual audio", "assemblyai": f"{lang}: AssemblyAI Universal-2"}
    order += [e for e in LOCAL_ENGINES]
    why.update({"faster-whisper": "local offline engine (free)", "openai-whisper": "local offline fallback (free)"})
    if needs.diarization:
        why.update({e: f"{why[e]}; speakers from the diarization stage" for e in LOCAL_ENGINES})

    chain: list[str] = []
    skipped: dict[str, str] = {}
    for name in order:
        reason = status.get(name)
        cost = COST_PER_HOUR_USD.get(name, 0.0)
        limit = MAX_DURATION_S.get(name)
        if reason:
            skipped[name] = reason
        elif needs.offline and cost > 0:
            skipped[name] = "offline: audio must stay on this machine"
        elif needs.budget_usd is not None and cost > 0 and (
            duration is None and needs.budget_usd <= 0
            or duration is not None and cost * duration / 3600 > needs.budget_usd
        ):
            est = f"~${cost * duration / 3600:.2f}" if duration is not None else f"${cost:.2f}/h"
            skipped[name] = f"over budget ({est} > ${needs.budget_usd:.2f})"
        elif limit is not None and duration is not None and duration > limit:
            skipped[name] = f"audio is {duration / 3600:.1f} h, longer than its {limit / 3600:.0f} h limit"
        else:
            chain.append(name)
    if not chain:
        detail = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise ConfigurationError(f"no transcription engine can run here ({detail})")
    return EngineChoice(engine=chain[0], reason=why[chain[0]], chain=tuple(chain), skipped=skipped)


def _audio_facts(audio: Any) -> tuple[float | None, Any]:
    """(duration, media record) for *audio* without decoding it."""
    import numpy as np

    if isinstance(audio, np.ndarray):
        return audio.size / 16_000, None
    try:
        from ..audio import probe

        return probe(audio).duration, None
    except VidtransError:
        raise
    except Exception:  # pragma: no cover - probing is best effort here
        return None, None


def _chain_for(audio: Any, options: Any, media: Any = None, needs: EngineNeeds | None = None) -> tuple[list[str], EngineChoice | None]:
    choice = None
    if options.engine == "auto":
        duration, _ = _audio_facts(audio)
        needs = needs or EngineNeeds(language=options.language, diarization=options.speaker_labels, duration=duration)
        choice = choose_engine(media, needs)
        chain = list(choice.chain)
        log.info("engine auto: %s (%s); chain %s", choice.engine, choice.reason, " -> ".join(chain))
    else:
        chain = [options.engine]
    chain += [e for e in options.fallback if e not in chain]
    return chain, choice


def stream_with_fallback(audio: Any, options: Any):
    """Start the first engine of the chain (see :func:`transcribe_with_fallback`) that starts without error.

    Errors raised later, while the stream is consumed, are not retried.
    """
    import dataclasses

    from . import get_engine

    chain, _ = _chain_for(audio, options)
    attempts: list[dict[str, Any]] = []
    last: Exception | None = None
    for name in chain:
        try:
            return get_engine(name)(audio, dataclasses.replace(options, engine=name))
        except MediaError:
            raise
        except VidtransError as exc:
            last = exc
            log.warning("engine %s failed to start: %s", name, exc)
            attempts.append({"engine": name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    raise AllEnginesFailedError(
        "every engine failed: " + " | ".join(f"{a['engine']}: {a['error']}" for a in attempts), attempts
    ) from last


def transcribe_with_fallback(
    audio: Any,
    options: Any,
    *,
    progress: Any = None,
    source: str | None = None,
    media: Any = None,
    needs: EngineNeeds | None = None,
):
    """Run ``options.engine`` (or the :func:`choose_engine` chain for ``"auto"``), then ``options.fallback``.

    A MediaError (the input itself is bad) stops the chain at once; any other
    VidtransError (missing key or package, quota, service failure, an option
    the engine lacks) moves on to the next engine.  When all fail,
    AllEnginesFailedError lists every engine's error.  The
    Transcript's ``engine`` is the engine that produced it and
    ``meta["engine_selection"]`` records the choice, attempts and skips.
    """
    import dataclasses

    from . import collect, get_engine

    selection: dict[str, Any] = {"requested": options.engine, "attempts": [], "skipped": {}}
    chain, choice = _chain_for(audio, options, media, needs)
    if choice is not None:
        selection.update(reason=choice.reason, skipped=dict(choice.skipped))
    selection["chain"] = list(chain)
    errors: list[str] = []
    last: Exception | None = None
    for name in chain:
        opts = dataclasses.replace(options, engine=name)
        try:
            engine = get_engine(name)
            transcript = collect(engine(audio, opts), engine=name, source=source, progress=progress,
                                 meta={"options": options.to_dict()})
        except MediaError:
            raise
        except VidtransError as exc:
            last = exc
            log.warning("engine %s failed: %s", name, exc)
            selection["attempts"].append({"engine": name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        selection["attempts"].append({"engine": name, "status": "ok"})
        selection["engine"] = name
        meta = dict(transcript.meta)
        meta["engine_selection"] = selection
        return transcript.replace(meta=meta)
    raise AllEnginesFailedError("every engine failed: " + " | ".join(errors), attempts=selection["attempts"]) from last
