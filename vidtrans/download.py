"""Download stage: URL or file -> :class:`~vidtrans.schema.Media` with a local audio file.

Everything remote goes through yt-dlp's Python API (``YoutubeDL(params)``,
``extract_info``, the ``FFmpegExtractAudio`` post-processor, ``progress_hooks``
and ``logger``); nothing parses yt-dlp's console output.

Audio format
    By default the audio is extracted once, at download time, to a 16 kHz mono
    16-bit WAV (``audio_format="wav"``).  Every later stage (transcription,
    diarization, emotion, notebooks) reads the file again, and reading PCM is
    cheaper than decoding AAC/Opus each time (measured here on a 10-minute
    44.1 kHz stereo AAC talk: extraction to WAV adds ~1.5 s to the download;
    each later ``load_audio`` takes ~0.7 s from the WAV against ~2.3 s from the
    AAC stream, so WAV wins from the second read on); the cost is disk space
    (~115 MB per hour of audio).  ``audio_format="best"`` keeps the original audio stream
    (stream copy, no re-encode: smallest cache, fastest download stage) and
    leaves the decoding to :func:`vidtrans.audio.load_audio`.

Cache
    Entries are keyed on ``(extractor, video id)`` — the identity yt-dlp gives
    a video — never on a hash of the URL, so ``youtu.be/X`` and
    ``youtube.com/watch?v=X`` share one entry.  Layout::

        <cache_dir>/<extractor>/<id>/audio.wav    the audio
        <cache_dir>/<extractor>/<id>/media.json   sidecar (the Media record); written last
        <cache_dir>/<extractor>/<id>/.work/       yt-dlp's in-progress files (.part, resumable)
        <cache_dir>/_urls/<sha256(url)>.json      URL -> (extractor, id) lookup

    An entry counts as cached only when the sidecar exists and names an audio
    file that exists; both are renamed into place only after the download and
    extraction completed, so an interrupted download is never a cache hit (its
    ``.part`` file is resumed on the next attempt).  A URL seen before — or
    one whose video id yt-dlp can read from the URL alone (YouTube and most
    sites) — is answered from the cache without any network access.  The
    generic extractor's ids (file names) are not unique across sites, so for
    it the id carries a short hash of the page URL.

Retries
    Transient faults (connection refused/reset, timeouts, truncated bodies,
    HTTP 5xx and 429) are retried ``retries`` times with exponential backoff
    and jitter (honouring ``Retry-After``); partial files are resumed with
    HTTP Range requests.  Permanent faults (404, private, geo-blocked,
    age-restricted, unsupported URL, non-media content) fail at once.  Every
    failure is a :class:`DownloadError` subclass naming the URL and the cause.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import random
import re
import shutil
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import atomic_write_text, cache_dir as _default_cache_dir
from .errors import MediaError, MissingDependencyError, VidtransError
from .schema import Chapter, Media, Segment, Transcript, Word, join_words, spaced

log = logging.getLogger(__name__)

ProgressHook = Callable[[dict], None]

#: file extensions :func:`expand` picks up when given a directory
MEDIA_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .m4a .aac .ogg .oga .opus .wma .mp4 .m4v .mkv .webm .mov .avi .wmv .flv .ts .mpg .mpeg .3gp".split()
)
#: extractors whose ids are not unique across sites (file names, page names)
_NON_UNIQUE_ID_EXTRACTORS = frozenset({"generic", "html5mediaembed"})
_SIDECAR = "media.json"
_WORK = ".work"


# =========================================================================== errors
class DownloadError(MediaError):
    """A source could not be downloaded; ``url`` and ``cause`` say which and why.

    The message reads ``cannot download <url>: <label>: <cause>``.
    """

    #: whether the fault may go away on its own (retried with backoff)
    retryable = False
    #: what kind of failure, in the message
    label = "failed"

    def __init__(self, url: str, cause: str, *, retry_after: float | None = None):
        self.url = url
        self.cause = cause
        self.retry_after = retry_after
        super().__init__(f"cannot download {url}: {self.label}: {cause}")


class NetworkError(DownloadError):
    """A transient network fault: refused/reset connection, timeout, short body, HTTP 5xx or 429."""

    retryable = True
    label = "network error"


class RetriesExhaustedError(NetworkError):
    """A transient fault persisted through every retry (``attempts``, ``last`` error)."""

    retryable = False
    label = "retries exhausted"

    def __init__(self, url: str, last: DownloadError, attempts: int):
        self.attempts = attempts
        self.last = last
        super().__init__(url, f"{last.cause} (gave up after {attempts} attempts)")


class NotFoundError(DownloadError):
    """HTTP 404/410, or a video the site says does not exist (any more)."""

    label = "not found"


class PrivateVideoError(DownloadError):
    """Private or members-only video (a ``cookies_file`` of an account with access may help)."""

    label = "private video"


class GeoBlockedError(DownloadError):
    """Not available from this country."""

    label = "geo-blocked"


class AgeRestrictedError(DownloadError):
    """Age-gated video (a ``cookies_file`` of a signed-in adult account may help)."""

    label = "age-restricted"


class AccessDeniedError(DownloadError):
    """HTTP 401/403 or a sign-in wall that is not an age gate."""

    label = "access denied"


class UnsupportedURLError(DownloadError):
    """No extractor handles the URL, or its scheme is not allowed."""

    label = "unsupported URL"


class NotMediaError(DownloadError):
    """The URL answers, but with something that has no audio (text, HTML without media, ...)."""

    label = "not media"


class PlaylistError(DownloadError):
    """:func:`fetch` was given a playlist / feed / channel; use :func:`expand` or :func:`fetch_many`."""

    label = "is a playlist"


# =========================================================================== options
@dataclass(frozen=True)
class DownloadOptions:
    """How :func:`fetch`, :func:`info`, :func:`expand` and :func:`fetch_many` behave."""

    #: cache directory; None = ``vidtrans._io.cache_dir("media")`` ($VIDTRANS_CACHE or ~/.cache/vidtrans)
    cache_dir: Path | None = None
    #: "wav" = 16 kHz mono PCM (decode once, fast to reload); "best" = keep the original
    #: audio stream (no re-encode); or a codec FFmpegExtractAudio knows ("m4a", "opus", "flac", "mp3")
    audio_format: str = "wav"
    #: sample rate of the WAV (only for audio_format="wav")
    sample_rate: int = 16_000
    #: retries of a transient fault (so at most retries + 1 attempts)
    retries: int = 5
    #: first backoff delay in seconds; doubles per retry
    backoff_base: float = 1.0
    #: upper bound of one backoff delay (also caps Retry-After)
    backoff_max: float = 60.0
    #: fraction of each delay that is randomised (0 = fixed delays, 1 = "full jitter")
    jitter: float = 0.5
    #: socket timeout in seconds
    timeout: float = 30.0
    #: concurrent downloads in :func:`fetch_many`
    workers: int = 3
    #: :func:`expand`: at most this many entries per playlist/feed (after filters)
    limit: int | None = None
    #: :func:`expand`: keep entries uploaded on/after this date (YYYYMMDD or date); unknown dates pass
    date_after: str | _dt.date | None = None
    #: :func:`expand`: keep entries uploaded on/before this date (YYYYMMDD or date); unknown dates pass
    date_before: str | _dt.date | None = None
    #: :func:`expand`: keep entries at least this long (seconds); unknown durations pass
    min_duration: float | None = None
    #: :func:`expand`: keep entries at most this long (seconds); unknown durations pass
    max_duration: float | None = None
    #: :func:`fetch_captions`: preferred subtitle languages, in order
    subtitle_languages: tuple[str, ...] = ("en",)
    #: Netscape cookies.txt for private / age-gated videos (never logged)
    cookies_file: str | None = field(default=None, repr=False)
    #: download rate limit in bytes/s (None = unlimited)
    rate_limit: float | None = None
    #: accept file:// URLs (read as local files)
    allow_file_urls: bool = True
    #: use the cache (False: always download, but still store the result)
    use_cache: bool = True
    #: extra yt-dlp parameters merged last (advanced; e.g. {"proxy": ...})
    ytdlp_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must be >= 0")
        if not self.audio_format or not re.fullmatch(r"[a-z0-9]+", self.audio_format):
            raise ValueError(f"audio_format must be 'wav', 'best' or a codec name, got {self.audio_format!r}")
        for name in ("date_after", "date_before"):
            _parse_date(getattr(self, name), name)  # validate early

    def root(self) -> Path:
        """The cache directory (created)."""
        if self.cache_dir is None:
            return _default_cache_dir("media")
        p = Path(self.cache_dir).expanduser()
        p.mkdir(parents=True, exist_ok=True)
        return p

    def backoff(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Delay before retry number *attempt* (0-based): base * 2**attempt, capped, with jitter."""
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        delay *= 1.0 - self.jitter * (rng or random).random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay


def _parse_date(value: str | _dt.date | None, name: str = "date") -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, _dt.date):
        return value.strftime("%Y%m%d")
    s = str(value).replace("-", "")
    try:
        _dt.datetime.strptime(s, "%Y%m%d")
    except ValueError:
        raise ValueError(f"{name} must be YYYYMMDD or YYYY-MM-DD, got {value!r}") from None
    return s


# =========================================================================== helpers
def is_url(source: str) -> bool:
    """True for ``scheme://...`` strings (http, https, file, ...), False for paths (incl. ``C:\\x``)."""
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+://", str(source)) is not None


def _ytdlp():
    try:
        import yt_dlp
    except ImportError as e:
        raise MissingDependencyError("yt-dlp", extra="download", purpose="downloading from URLs") from e
    return yt_dlp


class _YtdlpLogger:
    """Route yt-dlp's messages into ``logging`` (errors become exceptions, so they log at debug)."""

    def __init__(self, source: str):
        self.source = source

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg: str) -> None:
        log.info("yt-dlp (%s): %s", self.source, msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp error (%s): %s", self.source, msg)


def _safe(part: str, limit: int = 100) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(part)).strip("._") or "_"
    if len(s) > limit:
        s = s[: limit - 11] + "-" + hashlib.sha256(s.encode()).hexdigest()[:10]
    return s


def _strip_smuggle(url: str) -> str:
    return url.split("#__youtubedl_smuggle=")[0]


def _ytdlp_params(options: DownloadOptions, source: str, progress: ProgressHook | None = None, **extra) -> dict:
    params: dict[str, Any] = {
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": _YtdlpLogger(source),
        "socket_timeout": options.timeout,
        # transient HTTP faults are retried by vidtrans (one policy for extraction and download);
        # the .part file stays, so a retry resumes with a Range request
        "retries": 0,
        "fragment_retries": options.retries,
        "retry_sleep_functions": {"fragment": lambda n: options.backoff(n)},
        "continuedl": True,
        "noplaylist": True,
        "ignoreerrors": False,
        "color": "no_color",
    }
    if options.cookies_file:
        params["cookiefile"] = str(options.cookies_file)
    if options.rate_limit:
        params["ratelimit"] = float(options.rate_limit)
    if progress is not None:
        params["progress_hooks"] = [_relay(progress, source)]
        params["postprocessor_hooks"] = [_relay(progress, source, postprocessor=True)]
    params.update(extra)
    params.update(options.ytdlp_params)
    return params


def _relay(progress: ProgressHook, source: str, postprocessor: bool = False) -> ProgressHook:
    """Pass yt-dlp progress dicts on, without the bulky info_dict, tagged with the source."""

    def hook(d: dict) -> None:
        out = {k: v for k, v in d.items() if k != "info_dict"}
        out["source"] = source
        if postprocessor:
            out["status"] = "postprocessing" if d.get("status") != "finished" else "postprocessed"
        try:
            progress(out)
        except Exception:  # a broken progress bar must not break the download
            log.exception("progress callback failed")

    return hook


def _emit(progress: ProgressHook | None, **d) -> None:
    if progress is not None:
        try:
            progress(d)
        except Exception:
            log.exception("progress callback failed")


# =========================================================================== error mapping
_PATTERNS: list[tuple[type[DownloadError], re.Pattern]] = [
    (AgeRestrictedError, re.compile(r"confirm your age|age[- ]restrict|age[- ]gate|inappropriate for some users|age_verification", re.I)),
    (PrivateVideoError, re.compile(r"private video|video is private|members[- ]only|join this channel", re.I)),
    (GeoBlockedError, re.compile(r"geo[- ]?restrict|not available (?:in|from) your (?:country|location)|blocked it in your country", re.I)),
    (NotFoundError, re.compile(r"video unavailable|does not exist|has been removed|no longer available|HTTP Error 404|HTTP Error 410|404: Not Found", re.I)),
    (AccessDeniedError, re.compile(r"sign in to|log ?in to|registered users|HTTP Error 40[13]|requires? (?:a )?(?:premium|subscription)", re.I)),
    (NotMediaError, re.compile(r"no video formats found|requested format is not available|no (?:audio|media) (?:formats|streams?)", re.I)),
]


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("Retry-After")
    except Exception:
        return None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = _dt.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=_dt.timezone.utc)
            return max(0.0, (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
        except ValueError:
            return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (yt-dlp's exc_info / cause, Python's __cause__)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        info = getattr(e, "exc_info", None)
        if isinstance(info, tuple) and len(info) > 1 and isinstance(info[1], BaseException):
            todo.append(info[1])
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            todo.append(cause)
        todo += [e.__cause__, e.__context__]


def _clean(msg: str) -> str:
    msg = re.sub(r"^ERROR:\s*", "", str(msg).strip())
    msg = re.sub(r"^\[[\w:]+\]\s*(?:[\w.-]+:\s*)?", "", msg)
    msg = msg.split("; please report this issue")[0]
    return msg.strip() or "unknown error"


def classify(url: str, exc: BaseException) -> DownloadError:
    """Map any yt-dlp / network exception to the specific :class:`DownloadError` subclass."""
    if isinstance(exc, DownloadError):
        return exc
    yt = _ytdlp()
    from yt_dlp.networking import exceptions as nx

    top = _clean(str(exc))
    for e in _causes(exc):
        if isinstance(e, nx.HTTPError):
            status = e.status
            reason = f"HTTP {status} {e.reason or ''}".strip()
            if status in (404, 410):
                return NotFoundError(url, reason)
            if status == 429 or 500 <= status < 600:
                return NetworkError(url, reason, retry_after=_retry_after(e.response))
            if status in (401, 403):
                return AccessDeniedError(url, reason + " (private or sign-in required? try cookies_file)")
            if status == 451:
                return GeoBlockedError(url, reason)
            return DownloadError(url, reason)
        if isinstance(e, yt.utils.GeoRestrictedError):
            countries = f" (available in: {', '.join(e.countries)})" if getattr(e, "countries", None) else ""
            return GeoBlockedError(url, _clean(e.orig_msg) + countries)
        if isinstance(e, yt.utils.UnsupportedError):
            if urllib.parse.urlsplit(url).scheme in ("http", "https"):
                return NotMediaError(url, "no video or audio found on the page (yt-dlp: unsupported URL)")
            return UnsupportedURLError(url, "no extractor handles this URL")
        if isinstance(e, nx.CertificateVerifyError):  # a wrong certificate does not fix itself
            return AccessDeniedError(url, f"TLS certificate verification failed ({_clean(str(e))})")
        if isinstance(e, (nx.TransportError, yt.utils.ContentTooShortError, ConnectionError, TimeoutError)):
            detail = _clean(str(e))
            m = re.search(r"(\d+) bytes read, (\d+) more expected", detail)
            if m:
                detail = f"body cut short ({m.group(1)} bytes read, {m.group(2)} more expected)"
            elif isinstance(e, yt.utils.ContentTooShortError):
                detail = f"body cut short ({e.downloaded} of {e.expected} bytes)"
            elif "refused" in detail.lower():
                detail = "connection refused"
            elif "reset" in detail.lower() or "aborted" in detail.lower() or "closed connection" in detail.lower():
                detail = f"connection reset ({detail})"
            elif "timed out" in detail.lower():
                detail = "timed out"
            return NetworkError(url, detail)
        if isinstance(e, nx.NoSupportingHandlers) or isinstance(e, nx.UnsupportedRequest):
            return UnsupportedURLError(url, _clean(str(e)))
    text = " ".join(_clean(str(e)) for e in _causes(exc))
    m = re.search(r"(\d+) bytes read, (\d+) more expected", text)
    if m:
        return NetworkError(url, f"body cut short ({m.group(1)} bytes read, {m.group(2)} more expected)")
    for cls, pattern in _PATTERNS:
        if pattern.search(text):
            return cls(url, top)
    if re.search(r"is not a valid URL|unsupported url scheme|No such file or directory: '?[a-z]+:", text, re.I):
        return UnsupportedURLError(url, top)
    if re.search(r"timed out|temporary failure|connection (?:reset|refused|aborted)|incomplete ?read|"
                 r"\d+ bytes read, \d+ more expected|giving up after \d+ retries|content too short|"
                 r"did not get any data|remote end closed", text, re.I):
        return NetworkError(url, top)
    return DownloadError(url, top)


def _with_retries(url: str, options: DownloadOptions, fn: Callable[[], Any], what: str,
                  sleep: Callable[[float], None] = time.sleep) -> Any:
    """Run *fn*; retry transient faults with exponential backoff and jitter; raise classified errors."""
    rng = random.Random()
    attempt = 0
    while True:
        try:
            return fn()
        except DownloadError as e:  # raised (already classified) by vidtrans code inside fn
            err, orig = e, None
        except VidtransError:
            raise
        except Exception as e:  # yt-dlp / network exceptions
            err, orig = classify(url, e), e
        if not err.retryable:
            if orig is None:
                raise err
            raise err from orig
        if attempt >= options.retries:
            raise RetriesExhaustedError(url, err, attempt + 1) from (orig or err)
        delay = options.backoff(attempt, err.retry_after, rng)
        attempt += 1
        log.warning("%s %s: %s; retry %d/%d in %.2f s", what, url, err.cause, attempt, options.retries, delay)
        sleep(delay)


# =========================================================================== records
def _date_from(info: dict) -> str | None:
    d = info.get("upload_date") or info.get("release_date")
    if d:
        return str(d)
    ts = info.get("timestamp") or info.get("release_timestamp")
    if ts:
        with contextlib.suppress(OverflowError, OSError, ValueError, TypeError):
            return _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc).strftime("%Y%m%d")
    return None


def _formats_of(subs: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lang, items in (subs or {}).items():
        out[str(lang)] = sorted({str(f.get("ext")) for f in items or () if isinstance(f, dict) and f.get("ext")})
    return out


def _media_from_info(info: dict, source: str, audio_path: str | None = None, extractor: str | None = None) -> Media:
    chapters = tuple(
        Chapter(float(c.get("start_time") or 0.0), float(c["end_time"]) if c.get("end_time") is not None else None,
                str(c.get("title") or ""))
        for c in info.get("chapters") or ()
    )
    duration = info.get("duration")
    vid = info.get("id") or info.get("display_id")
    url = info.get("webpage_url") or info.get("original_url") or info.get("url") or source
    return Media(
        id=str(vid) if vid is not None else _generic_id(url),
        extractor=(extractor or info.get("extractor_key") or info.get("ie_key") or info.get("extractor") or "generic").lower(),
        title=info.get("title") or info.get("fulltitle"),
        uploader=info.get("uploader") or info.get("channel") or info.get("creator"),
        duration=float(duration) if duration is not None else None,
        upload_date=_date_from(info),
        language=info.get("language"),
        chapters=chapters,
        webpage_url=_strip_smuggle(url) if url else None,
        subtitles=_formats_of(info.get("subtitles")),
        automatic_captions=_formats_of(info.get("automatic_captions")),
        audio_path=audio_path,
        thumbnail=info.get("thumbnail"),
        source=source,
    )


def _generic_id(url: str) -> str:
    path = urllib.parse.urlsplit(_strip_smuggle(url)).path.rstrip("/")
    name = urllib.parse.unquote(path.rsplit("/", 1)[-1])
    return os.path.splitext(name)[0] or hashlib.sha256(url.encode()).hexdigest()[:12]


# =========================================================================== cache
@dataclass(frozen=True)
class _Key:
    extractor: str
    id: str

    def dir(self, root: Path) -> Path:
        return root / _safe(self.extractor, 40) / _safe(self.id)


def _key_for(info: dict, url: str) -> _Key:
    extractor = str(info.get("extractor_key") or info.get("ie_key") or "generic").lower()
    vid = str(info.get("id") or _generic_id(url))
    if extractor in _NON_UNIQUE_ID_EXTRACTORS:
        page = _strip_smuggle(info.get("webpage_url") or url)
        vid = f"{vid}-{hashlib.sha256(page.encode()).hexdigest()[:10]}"
    return _Key(extractor, vid)


def _alias_path(root: Path, url: str) -> Path:
    return root / "_urls" / (hashlib.sha256(url.encode("utf-8")).hexdigest()[:40] + ".json")


def _read_cached(root: Path, key: _Key) -> Media | None:
    d = key.dir(root)
    side = d / _SIDECAR
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
        media = Media.from_dict(data["media"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable cache sidecar %s: %s", side, e)
        return None
    audio = d / str(data.get("audio_file") or "")
    if not data.get("audio_file") or not audio.is_file() or audio.stat().st_size == 0:
        return None
    return dataclasses.replace(media, audio_path=str(audio))


def _write_alias(root: Path, url: str, key: _Key) -> None:
    with contextlib.suppress(OSError):
        atomic_write_text(_alias_path(root, url), json.dumps({"url": url, "extractor": key.extractor, "id": key.id}))


def _offline_key(root: Path, url: str) -> _Key | None:
    """The cache key of *url* without network: a recorded alias, else the id yt-dlp reads from the URL."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = json.loads(_alias_path(root, url).read_text(encoding="utf-8"))
        return _Key(data["extractor"], data["id"])
    yt = _ytdlp()
    for ie in yt.extractor.gen_extractor_classes():
        name = ie.ie_key()
        if name.lower() in _NON_UNIQUE_ID_EXTRACTORS:
            continue
        with contextlib.suppress(Exception):
            if ie.suitable(url):
                vid = ie.get_temp_id(url)
                return _Key(name.lower(), str(vid)) if vid else None
    return None


def cached(source: str, options: DownloadOptions | None = None) -> Media | None:
    """The cached Media for *source* if it is in the cache (no network), else None."""
    options = options or DownloadOptions()
    root = options.root()
    key = _offline_key(root, source)
    return _read_cached(root, key) if key else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock on *path* (across threads and processes where fcntl exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# =========================================================================== local files
def _file_url_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UnsupportedURLError(url, f"file:// URLs must name a local file, not host {parts.netloc!r}")
    return Path(urllib.request.url2pathname(parts.path))


def _content_hash(path: Path, length: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def _local_media(path: Path, source: str) -> Media:
    from .audio import probe

    info = probe(path)  # raises MediaNotFoundError / NoAudioStreamError / CorruptMediaError with the name
    p = path.resolve()
    mtime = _dt.datetime.fromtimestamp(p.stat().st_mtime, _dt.timezone.utc).strftime("%Y%m%d")
    tags = {str(k).lower(): v for k, v in (info.tags or {}).items()}
    return Media(
        id=_content_hash(p),
        extractor="local",
        title=tags.get("title") or p.stem,
        uploader=tags.get("artist") or tags.get("album_artist"),
        duration=info.duration,
        upload_date=mtime,
        language=tags.get("language"),
        audio_path=str(p),  # absolute: safe to hand to ffmpeg whatever the name looks like
        source=source,
    )


def _local_source(source: str, options: DownloadOptions) -> Path | None:
    """The local path behind *source* (a path or an allowed file:// URL), None for remote URLs."""
    if is_url(source):
        if urllib.parse.urlsplit(source).scheme.lower() != "file":
            return None
        if not options.allow_file_urls:
            raise UnsupportedURLError(source, "file:// URLs are disabled (allow_file_urls=False)")
        return _file_url_path(source)
    return Path(source).expanduser()


# =========================================================================== public API
def info(url: str, options: DownloadOptions | None = None) -> Media:
    """Metadata of *url* without downloading (from the cache when present, else one extraction)."""
    options = options or DownloadOptions()
    local = _local_source(url, options)
    if local is not None:
        return _local_media(local, url)
    root = options.root()
    if options.use_cache:
        key = _offline_key(root, url)
        hit = _read_cached(root, key) if key else None
        if hit is not None:
            return dataclasses.replace(hit, source=url)
    _check_scheme(url)
    yt = _ytdlp()
    params = _ytdlp_params(options, url, extract_flat="in_playlist", noplaylist=False)
    with yt.YoutubeDL(params) as ydl:
        data = _with_retries(url, options, lambda: ydl.extract_info(url, download=False), "reading")
        data = ydl.sanitize_info(data)
    media = _media_from_info(data, url)
    if data.get("_type") == "playlist" and media.duration is None:
        durations = [e.get("duration") for e in data.get("entries") or () if e]
        if durations and all(d is not None for d in durations):
            media = dataclasses.replace(media, duration=float(sum(durations)))
    return media


def expand(source: str, options: DownloadOptions | None = None) -> list[Media]:
    """Entries of a playlist / channel / RSS feed / HTML page with ``<video>`` tags (or ``[source]``).

    Entries come from a flat extraction (one request per page, none per entry)
    and carry what the listing gives (id, title, duration, date, URL); their
    ``source`` is the URL to pass to :func:`fetch`.  ``limit`` and the date and
    duration filters of *options* apply; entries that do not state a date or
    duration pass those filters.  A local directory expands to its media files.
    """
    options = options or DownloadOptions()
    local = _local_source(source, options)
    if local is not None:
        if local.is_dir():
            files = sorted(p for p in local.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
            entries = []
            for p in files:
                try:
                    entries.append(_local_media(p, str(p)))
                except MediaError as e:  # one unreadable file does not hide the others
                    log.warning("skipping %s: %s", p, e)
        else:
            entries = [_local_media(local, source)]
        return _filter(entries, options)
    _check_scheme(source)
    yt = _ytdlp()
    filtered = any(v is not None for v in (options.date_after, options.date_before, options.min_duration, options.max_duration))
    extra: dict[str, Any] = {"extract_flat": "in_playlist", "noplaylist": False}
    if options.limit is not None and not filtered:
        extra["playlistend"] = options.limit  # let yt-dlp stop paging early
    params = _ytdlp_params(options, source, **extra)
    with yt.YoutubeDL(params) as ydl:
        data = _with_retries(source, options, lambda: ydl.extract_info(source, download=False), "listing")
        data = ydl.sanitize_info(data)
        if data.get("_type") != "playlist":
            return _filter([_media_from_info(data, source)], options)
        entries = list(_flat_entries(ydl, data, options, depth=0))
    return _filter(entries, options)


def _flat_entries(ydl: Any, data: dict, options: DownloadOptions, depth: int) -> Iterator[Media]:
    for entry in data.get("entries") or ():
        if not entry:
            continue
        url = entry.get("url") or entry.get("webpage_url")
        kind = entry.get("_type")
        # channel pages list their tabs (videos, shorts, live) as nested playlists
        if kind in ("url", "url_transparent") and url and depth < 2 and re.search(r"(?:tab|playlist|channel)$", str(entry.get("ie_key") or ""), re.I):
            try:
                sub = ydl.sanitize_info(ydl.extract_info(url, download=False))
            except Exception as e:
                log.warning("skipping %s in %s: %s", url, data.get("webpage_url"), classify(url, e))
                continue
            if sub.get("_type") == "playlist":
                yield from _flat_entries(ydl, sub, options, depth + 1)
                continue
            entry = sub
        if kind in ("url", "url_transparent"):
            fetch_url = url
        else:  # a resolved entry: its own page, else its media URL (HTML pages with several <video>s)
            page = entry.get("webpage_url")
            fetch_url = page if page and page != data.get("webpage_url") else (url or page)
        extractor = entry.get("ie_key") or entry.get("extractor_key")
        if extractor is None and fetch_url:
            extractor = "generic"
        media = _media_from_info({**entry, "webpage_url": fetch_url}, fetch_url or "", extractor=extractor)
        if entry.get("id") is None and fetch_url:
            media = dataclasses.replace(media, id=_generic_id(fetch_url))
        yield media


def _filter(entries: Iterable[Media], options: DownloadOptions) -> list[Media]:
    after = _parse_date(options.date_after, "date_after")
    before = _parse_date(options.date_before, "date_before")
    out: list[Media] = []
    for m in entries:
        if options.limit is not None and len(out) >= options.limit:
            break
        if m.upload_date and ((after and m.upload_date < after) or (before and m.upload_date > before)):
            log.debug("skipping %s: date %s outside filter", m.source, m.upload_date)
            continue
        if m.duration is not None and (
            (options.min_duration is not None and m.duration < options.min_duration)
            or (options.max_duration is not None and m.duration > options.max_duration)
        ):
            log.debug("skipping %s: duration %.0f s outside filter", m.source, m.duration)
            continue
        out.append(m)
    return out


def fetch(source: str, options: DownloadOptions | None = None, progress: ProgressHook | None = None) -> Media:
    """Return a Media record whose ``audio_path`` is a local audio file for *source*.

    *source* is a local path, a ``file://`` URL or any URL yt-dlp handles (one
    video; a playlist raises :class:`PlaylistError`).  Remote audio lands in
    the cache (see the module docstring); a cached entry is returned without
    network access.  *progress* receives yt-dlp's progress dicts (``status``
    "downloading"/"finished", ``downloaded_bytes``, ``total_bytes``, ``speed``,
    ...) plus ``source``; a cache hit reports ``status="cached"``.
    """
    options = options or DownloadOptions()
    source = str(source)
    local = _local_source(source, options)
    if local is not None:
        media = _local_media(local, source)
        _emit(progress, status="local", source=source, filename=media.audio_path)
        return media
    root = options.root()
    if options.use_cache:
        key = _offline_key(root, source)
        hit = _read_cached(root, key) if key else None
        if hit is not None:
            log.info("cache hit for %s: %s", source, hit.audio_path)
            _emit(progress, status="cached", source=source, filename=hit.audio_path)
            return dataclasses.replace(hit, source=source)

    _check_scheme(source)
    yt = _ytdlp()
    params = _ytdlp_params(options, source, progress, **_audio_params(options))
    with yt.YoutubeDL(params) as ydl:
        data = _with_retries(source, options, lambda: ydl.extract_info(source, download=False), "reading")
        if data.get("_type") == "playlist" or data.get("entries") is not None:
            n = len(list(data.get("entries") or ()))
            raise PlaylistError(source, f"{n} entries; use `vidtrans download` / download.expand() and fetch_many()")
        if data.get("is_live"):
            raise NotMediaError(source, "is a live stream (cannot be downloaded to a finished file)")
        key = _key_for(data, source)
        kdir = key.dir(root)
        with _locked(kdir / ".lock"):
            if options.use_cache:
                hit = _read_cached(root, key)
                if hit is not None:
                    _write_alias(root, source, key)
                    _emit(progress, status="cached", source=source, filename=hit.audio_path)
                    return dataclasses.replace(hit, source=source)
            try:
                _check_direct_content(ydl, data, source, options)
                media = _download(ydl, data, source, key, kdir, options)
            except BaseException:
                _tidy(kdir)
                raise
    _write_alias(root, source, key)
    return media


def _tidy(kdir: Path) -> None:
    """After a failure: drop a key directory that holds nothing worth keeping (no sidecar, no .part)."""
    with contextlib.suppress(OSError):
        if (kdir / _SIDECAR).exists() or any((kdir / _WORK).glob("*.part")):
            return
        shutil.rmtree(kdir, ignore_errors=True)


def _check_scheme(url: str) -> None:
    """Refuse URL schemes no yt-dlp extractor handles before any network access."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return
    yt = _ytdlp()
    for ie in yt.extractor.gen_extractor_classes():
        if ie.ie_key().lower() in _NON_UNIQUE_ID_EXTRACTORS:
            continue
        with contextlib.suppress(Exception):
            if ie.suitable(url):
                return
    raise UnsupportedURLError(url, f"{scheme}:// URLs are not supported (use http(s), file:// or a path)")


def _audio_params(options: DownloadOptions) -> dict:
    if options.audio_format == "wav":
        pp = {"key": "FFmpegExtractAudio", "preferredcodec": "wav"}
        pp_args = {"extractaudio": ["-ar", str(options.sample_rate), "-ac", "1"]}
    else:
        pp = {"key": "FFmpegExtractAudio", "preferredcodec": options.audio_format}
        pp_args = {}
    return {
        "format": "bestaudio/best",
        "postprocessors": [pp],
        "postprocessor_args": pp_args,
        "outtmpl": {"default": "audio.%(ext)s"},
        "keepvideo": False,
    }


_NON_MEDIA_TYPES = re.compile(r"^(?:text/|application/(?:json|xml|xhtml|pdf|zip|javascript|x-www-form))", re.I)


def _check_direct_content(ydl: Any, data: dict, url: str, options: DownloadOptions) -> None:
    """A 'direct link' yt-dlp could not type (ext unknown_video): look at Content-Type before downloading."""
    if not data.get("direct") or data.get("ext") not in (None, "unknown_video"):
        return
    from yt_dlp.networking import HEADRequest

    def head() -> str:
        with ydl.urlopen(HEADRequest(data.get("url") or url)) as resp:
            return resp.headers.get("Content-Type", "")

    ctype = _with_retries(url, options, head, "checking")
    if _NON_MEDIA_TYPES.match(ctype.strip()):
        raise NotMediaError(url, f"the server sends {ctype.split(';')[0].strip()}, not audio or video")


def _download(ydl: Any, data: dict, source: str, key: _Key, kdir: Path, options: DownloadOptions) -> Media:
    """Download + extract into ``kdir/.work``, then move into place and write the sidecar last."""
    from .audio import probe
    from .errors import MediaError as _MediaError

    yt = _ytdlp()
    work = kdir / _WORK
    work.mkdir(parents=True, exist_ok=True)
    # the output directory is known only now (after extraction gave the key); yt-dlp reads
    # params["paths"] when it names files, and this YoutubeDL instance belongs to this call only
    ydl.params["paths"] = {"home": str(work)}

    def attempt() -> dict:
        return ydl.process_ie_result(ydl.sanitize_info(copy.deepcopy(data)), download=True)

    try:
        result = _with_retries(source, options, attempt, "downloading")
    except DownloadError as e:
        if isinstance(e.__cause__, yt.utils.DownloadError) and any(
            isinstance(c, yt.utils.PostProcessingError) for c in _causes(e.__cause__)
        ):
            raise _not_media(source, work, e) from e
        raise
    except yt.utils.PostProcessingError as e:  # pragma: no cover - yt-dlp wraps it in DownloadError
        raise _not_media(source, work, e) from e

    downloads = result.get("requested_downloads") or []
    path = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
    if path is None or not path.is_file():
        candidates = [p for p in work.glob("audio.*") if not p.name.endswith((".part", ".ytdl", ".temp"))]
        path = candidates[0] if candidates else None
    if path is None:
        raise DownloadError(source, f"yt-dlp finished but produced no audio file in {work}")
    try:
        probed = probe(path)
    except _MediaError as e:
        raise NotMediaError(source, f"downloaded file has no usable audio ({e})") from e
    final = kdir / f"audio{path.suffix}"
    os.replace(path, final)
    media = _media_from_info(result, source, audio_path=str(final))
    if media.duration is None and probed.duration:
        media = dataclasses.replace(media, duration=probed.duration)
    sidecar = {
        "media": media.to_dict(),
        "audio_file": final.name,
        "audio_format": options.audio_format,
        "key": {"extractor": key.extractor, "id": key.id},
        "downloaded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(kdir / _SIDECAR, json.dumps(sidecar, ensure_ascii=False, indent=2))  # commit point
    shutil.rmtree(work, ignore_errors=True)
    log.info("downloaded %s -> %s", source, final)
    return media


def _not_media(source: str, work: Path, err: BaseException) -> NotMediaError:
    """Explain a failed audio extraction by probing what was downloaded."""
    from .audio import probe
    from .errors import MediaError as _MediaError

    raw = [p for p in work.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))] if work.exists() else []
    reason = _clean(str(err))
    for p in raw:
        try:
            probe(p)
        except _MediaError as e:
            reason = str(e)
            break
    shutil.rmtree(work, ignore_errors=True)
    return NotMediaError(source, f"no audio could be extracted ({reason})")


# =========================================================================== batches
@dataclass(frozen=True)
class BatchItem:
    """The outcome for one source of :func:`fetch_many`."""

    source: str
    media: Media | None = None
    error: BaseException | None = None
    #: seconds spent on this item
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.media is not None


@dataclass(frozen=True)
class BatchResult:
    """Per-item results of :func:`fetch_many`, in the order of the sources."""

    items: tuple[BatchItem, ...]

    @property
    def succeeded(self) -> list[BatchItem]:
        return [i for i in self.items if i.ok]

    @property
    def failed(self) -> list[BatchItem]:
        return [i for i in self.items if not i.ok]

    @property
    def media(self) -> list[Media]:
        return [i.media for i in self.items if i.ok and i.media is not None]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[BatchItem]:
        return iter(self.items)

    def summary(self) -> str:
        """One line of counts, then one line per failure: source, error class, message."""
        n, bad = len(self.items), self.failed
        head = f"{n - len(bad)} of {n} downloaded, {len(bad)} failed"
        if not bad:
            return head
        by_kind: dict[str, int] = {}
        for i in bad:
            by_kind[type(i.error).__name__] = by_kind.get(type(i.error).__name__, 0) + 1
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(by_kind.items()))
        lines = [f"{head} ({kinds}):"]
        lines += [f"  {i.source}: {type(i.error).__name__}: {i.error}" for i in bad]
        return "\n".join(lines)


def fetch_many(
    sources: Sequence[str | Media], options: DownloadOptions | None = None, progress: ProgressHook | None = None
) -> BatchResult:
    """:func:`fetch` every source with ``options.workers`` threads; failures never stop the others.

    Sources may be strings or Media entries from :func:`expand` (their
    ``source`` is fetched).  Repeated sources are fetched once.
    """
    options = options or DownloadOptions()
    urls = [s.source or s.webpage_url or "" if isinstance(s, Media) else str(s) for s in sources]
    unique = list(dict.fromkeys(urls))
    done: dict[str, BatchItem] = {}
    lock = threading.Lock()

    def one(src: str) -> None:
        t0 = time.perf_counter()
        try:
            if not src:
                raise ValueError("empty source")
            item = BatchItem(src, media=fetch(src, options, progress))
        except VidtransError as e:
            log.warning("%s", e)
            item = BatchItem(src, error=e)
        except Exception as e:  # a bug in one entry must not stop a 500-item batch
            log.exception("unexpected error fetching %s", src)
            item = BatchItem(src, error=e)
        item = dataclasses.replace(item, elapsed=time.perf_counter() - t0)
        with lock:
            done[src] = item

    if options.workers == 1 or len(unique) <= 1:
        for src in unique:
            one(src)
    else:
        with ThreadPoolExecutor(max_workers=min(options.workers, len(unique)), thread_name_prefix="vidtrans-dl") as pool:
            list(pool.map(one, unique))
    return BatchResult(tuple(done[u] for u in urls))


def fetch_all(
    sources: Sequence[str], options: DownloadOptions | None = None, progress: ProgressHook | None = None
) -> BatchResult:
    """:func:`expand` every source (playlist, feed, page, channel, directory, single video) and fetch all entries.

    A source that cannot even be listed (404, refused, ...) becomes one failed
    item instead of stopping the batch; ``limit`` and the filters apply per source.
    """
    options = options or DownloadOptions()
    entries: list[str | Media] = []
    failed: list[BatchItem] = []
    for src in sources:
        try:
            listed = expand(str(src), options)
        except VidtransError as e:
            log.warning("%s", e)
            failed.append(BatchItem(str(src), error=e))
            continue
        entries += [m if m.source else (m.webpage_url or str(src)) for m in listed]
    result = fetch_many(entries, options, progress)
    return BatchResult(tuple(failed) + result.items)


# =========================================================================== captions
def fetch_captions(
    source: str, languages: Sequence[str] | None = ("en",), options: DownloadOptions | None = None
) -> Transcript | None:
    """Existing subtitles (preferred) or automatic captions of *source* as a Transcript, or None.

    Languages are tried in order; yt-dlp's language patterns work ("en.*").
    Downloaded caption files are kept in the cache entry.  For a local file,
    a sidecar ``<stem>.<lang>.vtt`` / ``<stem>.vtt`` (or ``.srt``) is read.
    """
    options = options or DownloadOptions()
    languages = tuple(languages or options.subtitle_languages)
    local = _local_source(source, options)
    if local is not None:
        for lang in (*languages, None):
            for ext in (".vtt", ".srt"):
                cand = local.with_name(f"{local.stem}.{lang}{ext}" if lang else f"{local.stem}{ext}")
                if cand.is_file():
                    return _read_caption_file(cand, source=source, language=lang, kind="sidecar")
        return None
    _check_scheme(source)
    yt = _ytdlp()
    root = options.root()
    params = _ytdlp_params(
        options, source,
        skip_download=True, writesubtitles=True, writeautomaticsub=True,
        subtitleslangs=list(languages), subtitlesformat="vtt/srt/best",
        outtmpl={"default": "captions.%(ext)s"},
    )
    with yt.YoutubeDL(params) as ydl:
        data = _with_retries(source, options, lambda: ydl.extract_info(source, download=False), "reading")
        if data.get("_type") == "playlist":
            raise PlaylistError(source, "captions are fetched per video; expand the playlist first")
        requested = data.get("requested_subtitles") or {}
        if not requested:
            return None
        key = _key_for(data, source)
        kdir = key.dir(root)
        kdir.mkdir(parents=True, exist_ok=True)
        ydl.params["paths"] = {"home": str(kdir)}
        result = _with_retries(source, options, lambda: ydl.process_ie_result(ydl.sanitize_info(copy.deepcopy(data)), download=True), "downloading captions")
    media = _media_from_info(result, source)
    manual = set((result.get("subtitles") or {}).keys())
    for lang in sorted((result.get("requested_subtitles") or {}), key=lambda x: _lang_rank(x, languages)):
        sub = result["requested_subtitles"][lang]
        path = sub.get("filepath")
        if path and Path(path).is_file():
            kind = "subtitles" if lang in manual else "automatic_captions"
            return _read_caption_file(Path(path), source=source, language=lang, kind=kind, media=media)
    return None


def _lang_rank(lang: str, languages: Sequence[str]) -> int:
    for i, pat in enumerate(languages):
        if re.fullmatch(pat, lang) or lang == pat:
            return i
    return len(languages)


def _read_caption_file(path: Path, *, source: str, language: str | None, kind: str, media: Media | None = None) -> Transcript:
    """Caption file -> Transcript (vidtrans.captions.read_captions when present, else webvtt-py)."""
    transcript: Transcript | None = None
    try:
        from .captions import read_captions  # type: ignore[attr-defined]
    except ImportError:
        read_captions = None
    if read_captions is not None and not _has_inline_timing(path):
        transcript = read_captions(path)
    if transcript is None:
        transcript = captions_to_transcript(path)
    meta = {**transcript.meta, "captions": {"kind": kind, "path": str(path), "language": language}}
    return transcript.replace(
        language=language or transcript.language, engine=f"captions:{kind}", source=source, media=media, meta=meta
    )


def _has_inline_timing(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return bool(_INLINE_TS.search(path.read_text(encoding="utf-8", errors="replace")))
    return False


_INLINE_TS = re.compile(r"<(\d{1,2}:)?(\d{2}):(\d{2})\.(\d{3})>")
_TAG = re.compile(r"<[^>]*>")


def captions_to_transcript(path: str | os.PathLike) -> Transcript:
    """Parse a WebVTT or SRT file with webvtt-py into a Transcript.

    Handles YouTube's automatic captions: the rolling two-line cues are
    de-duplicated and inline ``<00:00:01.234>`` word timestamps become
    :class:`~vidtrans.schema.Word` timings.
    """
    try:
        import webvtt
    except ImportError as e:
        raise MissingDependencyError("webvtt-py", purpose="reading caption files") from e
    p = Path(path)
    try:
        cues = webvtt.from_srt(str(p)) if p.suffix.lower() == ".srt" else webvtt.read(str(p))
    except Exception as e:
        from .errors import CorruptMediaError

        raise CorruptMediaError(f"cannot parse caption file {p.name}: {e}") from e
    segments: list[Segment] = []
    previous: list[str] = []
    for cue in cues:
        # start_in_seconds truncates to whole seconds in webvtt-py 0.5+; use milliseconds
        start, end = cue.start_time.in_milliseconds() / 1000, cue.end_time.in_milliseconds() / 1000
        lines = [ln for ln in cue.raw_text.splitlines() if ln.strip()]
        if not lines or end - start < 0.02:  # YouTube's 10 ms "hold" cues
            continue
        timed = [ln for ln in lines if _INLINE_TS.search(ln)]
        if timed:
            words = []
            for ln in timed:
                words += _timed_words(ln, start, end)
            if words:
                segments.append(Segment(words[0].start, end, join_words(words), words=tuple(words)))
            previous = [_TAG.sub("", ln).strip() for ln in lines]
            continue
        clean = [_TAG.sub("", ln).strip() for ln in lines]
        # rolling captions repeat the previous cue's last line(s) at the top
        k = 0
        while k < len(clean) and k < len(previous) and clean[k] in previous:
            k += 1
        new = [ln for ln in clean[k:] if ln]
        previous = clean
        text = " ".join(new).strip()
        if text:
            segments.append(Segment(start, end, text))
    return Transcript(segments=tuple(segments), engine="captions", meta={"captions": {"path": str(p)}})


def _timed_words(line: str, start: float, end: float) -> list[Word]:
    """Words of one line with inline timestamps: ``w1<t2><c> w2</c><t3><c> w3</c>``."""
    pieces = _INLINE_TS.split(line)
    # split gives: text, h, m, s, ms, text, h, m, s, ms, text ...
    times = [start]
    texts = [pieces[0]]
    i = 1
    while i + 4 <= len(pieces):
        h, mm, ss, ms = pieces[i : i + 4]
        times.append((int(h[:-1]) if h else 0) * 3600 + int(mm) * 60 + int(ss) + int(ms) / 1000)
        texts.append(pieces[i + 4] if i + 4 < len(pieces) else "")
        i += 5
    words: list[Word] = []
    for j, raw in enumerate(texts):
        text = _TAG.sub("", raw).strip()
        if not text:
            continue
        w_start = times[j]
        w_end = times[j + 1] if j + 1 < len(times) else end
        for k, token in enumerate(text.split()):
            words.append(Word(w_start, max(w_start, w_end), spaced(token)))
    return words


# =========================================================================== progress bars
class TqdmProgress:
    """A progress hook drawing one tqdm bytes/s bar per download (thread-safe).

    Pass it as ``progress=`` to :func:`fetch` / :func:`fetch_many`; call
    :meth:`close` at the end (or use it as a context manager).  Uses
    ``tqdm.auto`` so notebooks get a widget bar and terminals a text bar.
    """

    def __init__(self, **tqdm_kwargs: Any):
        self.kwargs = tqdm_kwargs
        self.bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _bar(self, key: str, total: float | None, desc: str) -> Any:
        from tqdm.auto import tqdm

        bar = self.bars.get(key)
        if bar is None:
            kw = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "leave": True, "desc": desc, **self.kwargs}
            bar = tqdm(total=total, **kw)
            self.bars[key] = bar
        return bar

    def __call__(self, d: dict) -> None:
        status = d.get("status")
        key = str(d.get("source") or d.get("filename") or "download")
        desc = _short(key)
        with self._lock:
            if status == "downloading":
                total = d.get("total_bytes") or d.get("total_bytes_estimate")
                bar = self._bar(key, total, desc)
                if total and bar.total != total:
                    bar.total = total
                done = d.get("downloaded_bytes") or 0
                if done >= bar.n:
                    bar.update(done - bar.n)
            elif status == "finished":
                bar = self._bar(key, d.get("total_bytes"), desc)
                total = d.get("total_bytes") or d.get("downloaded_bytes") or bar.n
                if total:
                    bar.total = total
                    bar.update(max(0, total - bar.n))
                bar.set_postfix_str("extracting audio", refresh=True)
            elif status in ("cached", "local"):
                bar = self._bar(key, None, desc)
                bar.set_postfix_str(status, refresh=True)
                self._close(key)
            elif status == "postprocessed":
                if key in self.bars:
                    self.bars[key].set_postfix_str("done", refresh=True)
                    self._close(key)
            elif status == "error":
                if key in self.bars:
                    self.bars[key].set_postfix_str("error", refresh=True)
                    self._close(key)

    def _close(self, key: str) -> None:
        bar = self.bars.pop(key, None)
        if bar is not None:
            bar.close()

    def close(self) -> None:
        with self._lock:
            for key in list(self.bars):
                self._close(key)

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tqdm_hook(**tqdm_kwargs: Any) -> TqdmProgress:
    """A :class:`TqdmProgress` hook (bytes/s bars) for the CLI and notebooks."""
    return TqdmProgress(**tqdm_kwargs)


def _short(text: str, width: int = 32) -> str:
    name = urllib.parse.unquote(urllib.parse.urlsplit(text).path.rsplit("/", 1)[-1]) if is_url(text) else Path(text).name
    name = name or text
    return name if len(name) <= width else name[: width - 1] + "…"


__all__ = [
    "AccessDeniedError", "AgeRestrictedError", "BatchItem", "BatchResult", "DownloadError", "DownloadOptions",
    "GeoBlockedError", "NetworkError", "NotFoundError", "NotMediaError", "PlaylistError", "PrivateVideoError",
    "RetriesExhaustedError", "TqdmProgress", "UnsupportedURLError", "cached", "captions_to_transcript", "classify",
    "expand", "fetch", "fetch_all", "fetch_captions", "fetch_many", "info", "is_url", "tqdm_hook",
]
