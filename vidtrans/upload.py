"""Upload stage: publish caption files to YouTube, idempotently and within quota.

::

    from vidtrans.upload import publish
    result = publish("https://youtu.be/dQw4w9WgXcQ", "out/talk.vtt", language="en")
    print(result)            # "inserted AUjJ...", "updated ...", or "unchanged ..."

How a track is published (:func:`publish_many`):

1. Every file is checked first (the captions stage's WebVTT validator, or the
   SRT reader; size <= 100 MB; a BCP-47 language; a name <= 150 characters);
   an invalid file is refused before any request is made.
2. The video's tracks are listed (``captions.list``, 50 units).  A track with
   the same language and name that the local ledger says holds the same file
   (sha256) is left alone (``unchanged``); one with other content is replaced
   with ``captions.update`` (450 units); with none, ``captions.insert``
   (400 units) adds one.  Uploads are real resumable uploads
   (``MediaFileUpload(..., resumable=True)``); the deprecated ``sync``
   parameter is never sent, so files keep their own timing.
3. No duplicate track is ever created: when an insert fails without an
   answer (lost response, 5xx, transport error) the tracks are listed again
   before retrying, and a track that appeared is taken as the insert's
   result; a ``409 captionExists`` becomes an update of that track.
4. 5xx, 429 and rate-limit answers and transport errors are retried with
   exponential backoff and jitter; ``quotaExceeded`` stops the batch at once
   (:class:`YouTubeQuotaExceededError`), other refusals raise their own
   exception (:class:`NotVideoOwnerError`, :class:`InsufficientPermissionsError`,
   :class:`VideoNotFoundError`, ...).

The **ledger** (:class:`Ledger`, JSON beside the token file, written atomically
after every call) records what was published (video, language, name, track
id, sha256 of the file, units spent, time) and the units spent per Pacific
day, YouTube's quota day.  Every call is checked against ``quota_budget``
(default 10,000 units, YouTube's default daily quota) *before* it is made;
a re-run with unchanged files spends only the list calls; a batch stopped by
quota or a crash resumes where it stopped.  ``dry_run`` plans from the ledger
alone (insert/update/skip per track and its cost) without credentials or
requests.

Endpoints come from the environment so a compatible or test server can stand
in: ``VIDTRANS_YOUTUBE_ROOT`` replaces the API root URL of the discovery
document that ships with google-api-python-client, and
``VIDTRANS_OAUTH_TOKEN_URI`` the token endpoint (:mod:`vidtrans.youtube_auth`).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import json
import logging
import os
import random
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._io import atomic_write_bytes
from .errors import AuthenticationError, ConfigurationError, QuotaExceededError, ServiceError, VidtransError
from .youtube_auth import (
    REAUTH_HINT,
    ReauthorizationRequiredError,
    load_credentials,
    reauthorization_error,
    save_credentials,
)
from .youtube_ledger import Ledger, QuotaBudgetError, ledger_path, pacific_day

log = logging.getLogger(__name__)

ENGINE = "youtube"
#: quota cost of each captions method (YouTube Data API v3)
COSTS = {"list": 50, "insert": 400, "update": 450, "delete": 50, "download": 200}
#: YouTube's default daily quota
DEFAULT_BUDGET = 10_000
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_NAME_CHARS = 150
DEFAULT_NAME = "vidtrans"
MIMETYPES = {"vtt": "text/vtt", "srt": "application/x-subrip"}

# --------------------------------------------------------------------------- errors


class YouTubeError(ServiceError):
    """The YouTube Data API refused or failed a request."""

    def __init__(self, message: str, reason: str | None = None, status: int | None = None):
        super().__init__(message, engine=ENGINE)
        self.reason = reason
        self.status = status


class YouTubeQuotaExceededError(QuotaExceededError):
    """YouTube's daily quota is used up (403 quotaExceeded): the batch stops; re-run after midnight Pacific."""

    def __init__(self, message: str):
        super().__init__(message, engine=ENGINE)


class NotVideoOwnerError(AuthenticationError):
    """403 forbidden: the authorised account does not own the video (or the track)."""

    def __init__(self, message: str):
        super().__init__(message, engine=ENGINE)


class InsufficientPermissionsError(AuthenticationError):
    """403 insufficientPermissions: the token lacks the youtube.force-ssl scope."""

    def __init__(self, message: str):
        super().__init__(message, engine=ENGINE)


class VideoNotFoundError(YouTubeError):
    """404 videoNotFound."""


class CaptionNotFoundError(YouTubeError):
    """404 captionNotFound."""


class CaptionExistsError(YouTubeError):
    """409 captionExists: a track with this language and name already exists (handled as an update)."""


class ContentRequiredError(YouTubeError):
    """400 contentRequired: the upload carried no caption file."""


class TransientYouTubeError(YouTubeError):
    """5xx, 429, rate limits or a transport failure: worth retrying."""

    #: seconds the server asked to wait (Retry-After), when it said
    retry_after: float | None = None


class InvalidUploadError(VidtransError):
    """The caption file, video or language cannot be published; nothing was sent."""

    exit_code = 2


# --------------------------------------------------------------------------- inputs
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")


def video_id(value: str) -> str:
    """The 11-character video id of *value*: an id or any YouTube URL form.

    Accepts ``watch?v=``, ``youtu.be/``, ``/shorts/``, ``/embed/``, ``/live/``,
    ``/v/``, ``m.``/``music.``/``www.`` hosts and youtube-nocookie.com.
    """
    v = (value or "").strip()
    if _VIDEO_ID.match(v):
        return v
    u = urlsplit(v if "://" in v else f"https://{v}")
    host = (u.hostname or "").lower()
    for prefix in ("www.", "m.", "music.", "gaming."):
        host = host.removeprefix(prefix)
    parts = [p for p in u.path.split("/") if p]
    candidate = None
    if host == "youtu.be" and parts:
        candidate = parts[0]
    elif host in ("youtube.com", "youtube-nocookie.com"):
        q = parse_qs(u.query)
        if "v" in q:
            candidate = q["v"][0]
        elif len(parts) >= 2 and parts[0] in ("shorts", "embed", "live", "v", "e"):
            candidate = parts[1]
    if candidate and _VIDEO_ID.match(candidate):
        return candidate
    raise InvalidUploadError(f"not a YouTube video id or video URL: {value!r}")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def caption_format(path: Path) -> str:
    """"vtt" or "srt" from the extension, else sniffed from the first bytes."""
    ext = path.suffix.lower().lstrip(".")
    if ext in MIMETYPES:
        return ext
    head = path.read_bytes()[:16].lstrip(b"\xef\xbb\xbf")
    if head.startswith(b"WEBVTT"):
        return "vtt"
    raise InvalidUploadError(f"{path}: only WebVTT (.vtt) and SRT (.srt) caption files can be published")


def check_caption_file(path: str | os.PathLike) -> str:
    """Refuse a file YouTube would reject; return its format ("vtt"/"srt").

    WebVTT goes through :func:`vidtrans.captions.validate_vtt` (W3C errors
    refuse it; readability notes only log), SRT through the captions reader.
    """
    from .captions import CaptionError, read_captions, validate_vtt

    p = Path(path)
    if not p.is_file():
        raise InvalidUploadError(f"caption file not found: {p}")
    size = p.stat().st_size
    if size == 0:
        raise InvalidUploadError(f"{p} is empty")
    if size > MAX_FILE_BYTES:
        raise InvalidUploadError(f"{p} is {size / 2**20:.0f} MB; YouTube accepts caption files up to 100 MB")
    fmt = caption_format(p)
    if fmt == "vtt":
        report = validate_vtt(p)
        if report.errors:
            shown = "; ".join(str(e) for e in report.errors[:3])
            more = f" (and {len(report.errors) - 3} more)" if len(report.errors) > 3 else ""
            raise InvalidUploadError(f"{p} is not valid WebVTT, not uploaded: {shown}{more}")
        if not report.readability.cues:
            raise InvalidUploadError(f"{p} has no cues, not uploaded")
        if report.violations:
            log.info("%s: %d readability notes (uploading anyway)", p, len(report.violations))
    else:
        try:
            t = read_captions(p, format="srt")
        except CaptionError as exc:
            raise InvalidUploadError(f"{p} is not a valid SRT file, not uploaded: {exc}") from exc
        if not t.segments:
            raise InvalidUploadError(f"{p} has no cues, not uploaded")
    return fmt


@dataclass(frozen=True)
class CaptionJob:
    """One caption file to publish as one track of one video."""

    #: video id or any YouTube URL form
    video: str
    caption_file: str
    #: BCP-47 language tag of the captions ("en", "de", "pt-BR")
    language: str
    #: track name viewers see next to the language (<= 150 characters); None = UploadOptions.name
    name: str | None = None
    #: publish as a draft (not visible to viewers); None = UploadOptions.draft
    draft: bool | None = None


@dataclass
class UploadOptions:
    """Options of :func:`publish_many`; every field has a CLI flag / notebook parameter of the same name."""

    #: default track name
    name: str = DEFAULT_NAME
    #: default draft flag
    draft: bool = False
    #: plan only: no credentials, no requests
    dry_run: bool = False
    #: units that may be spent per Pacific day (YouTube's default quota is 10,000)
    quota_budget: int = DEFAULT_BUDGET
    #: retries of a failed call (5xx, 429, rate limit, transport)
    retries: int = 5
    #: first backoff delay in seconds (doubled per retry, with jitter)
    retry_delay: float = 1.0
    #: longest backoff delay in seconds
    max_retry_delay: float = 32.0
    #: socket timeout of each request in seconds
    timeout: float = 120.0
    #: token file (default ``$VIDTRANS_YOUTUBE_TOKEN`` or ~/.config/vidtrans/youtube_token.json)
    token_file: str | None = None
    #: ledger file (default ``$VIDTRANS_YOUTUBE_LEDGER`` or youtube_ledger.json beside the token)
    ledger_file: str | None = None


@dataclass(frozen=True)
class _Checked:
    video: str
    path: Path
    language: str
    name: str
    draft: bool
    fmt: str
    sha256: str


def _check_job(job: CaptionJob, options: UploadOptions) -> _Checked:
    vid = video_id(job.video)
    language = (job.language or "").strip()
    if not _LANGUAGE.match(language):
        raise InvalidUploadError(f"{job.caption_file}: {job.language!r} is not a BCP-47 language tag (en, de, pt-BR)")
    name = options.name if job.name is None else job.name
    if len(name) > MAX_NAME_CHARS:
        raise InvalidUploadError(f"track name is {len(name)} characters; YouTube allows {MAX_NAME_CHARS}")
    fmt = check_caption_file(job.caption_file)
    draft = options.draft if job.draft is None else bool(job.draft)
    return _Checked(vid, Path(job.caption_file), language, name, draft, fmt, file_sha256(job.caption_file))


# --------------------------------------------------------------------------- client
def discovery_document(root: str | None = None) -> dict[str, Any]:
    """The youtube v3 discovery document shipped in google-api-python-client, root URL rewritten.

    *root* (default ``$VIDTRANS_YOUTUBE_ROOT``) replaces ``rootUrl``, so
    ordinary and media (resumable) requests go to that server.
    """
    try:
        import googleapiclient
    except ImportError as exc:
        from .errors import MissingDependencyError

        raise MissingDependencyError("google-api-python-client", extra="youtube", purpose="publishing to YouTube") from exc
    doc_path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "youtube.v3.json"
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    root = root or os.environ.get("VIDTRANS_YOUTUBE_ROOT")
    if root:
        root = root.rstrip("/") + "/"
        doc["rootUrl"] = root
        doc["mtlsRootUrl"] = root
        doc["baseUrl"] = root + doc.get("servicePath", "")
    return doc


def build_service(credentials: Any, *, timeout: float = 120.0, root: str | None = None) -> Any:
    """A googleapiclient ``youtube`` v3 resource built from the shipped document (no network)."""
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build_from_document

    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))
    return build_from_document(discovery_document(root), http=http)


def _transport_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [OSError, http.client.HTTPException, socket.timeout]
    with contextlib.suppress(ImportError):
        import httplib2

        errs.append(httplib2.HttpLib2Error)
    with contextlib.suppress(ImportError):
        from google.auth.exceptions import TransportError

        errs.append(TransportError)
    return tuple(errs)


def _reason(exc: Any) -> tuple[str, str]:
    """(machine reason, human message) of a googleapiclient HttpError."""
    try:
        err = json.loads(exc.content)["error"]
        first = (err.get("errors") or [{}])[0]
        return str(first.get("reason") or err.get("status") or ""), str(err.get("message") or first.get("message") or "")
    except (ValueError, TypeError, KeyError, AttributeError):
        return "", getattr(exc, "reason", "") or ""


def api_error(exc: Any, what: str) -> Exception:
    """The vidtrans exception for a googleapiclient HttpError raised while doing *what*."""
    status = int(exc.resp.status)
    reason, message = _reason(exc)
    detail = f"{what}: YouTube answered {status} {reason or ''}".rstrip() + (f" ({message})" if message else "")
    if reason in ("quotaExceeded", "dailyLimitExceeded"):
        return YouTubeQuotaExceededError(
            f"{detail}. The project's daily YouTube quota is used up; the batch stopped and the ledger "
            "keeps what was done: run the same command again after midnight Pacific time to resume")
    if status == 429 or status >= 500 or reason in ("rateLimitExceeded", "userRateLimitExceeded", "backendError"):
        err = TransientYouTubeError(detail, reason, status)
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            err.retry_after = float(exc.resp.get("retry-after"))
        return err
    if reason in ("insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"):
        return InsufficientPermissionsError(
            f"{detail}: the stored token lacks the youtube.force-ssl scope; {REAUTH_HINT}")
    if reason == "forbidden" or (status == 403 and not reason):
        return NotVideoOwnerError(
            f"{detail}: the authorised account does not own this video; authorise with the channel that owns "
            "it (`vidtrans auth youtube ...`)")
    if status == 401:
        return ReauthorizationRequiredError(f"{detail}: YouTube did not accept the authorisation; {REAUTH_HINT}")
    if reason == "captionExists" or status == 409:
        return CaptionExistsError(detail, reason, status)
    if reason == "videoNotFound":
        return VideoNotFoundError(f"{detail}: no such video (check the id; private videos need the owner's account)",
                                  reason, status)
    if reason == "captionNotFound":
        return CaptionNotFoundError(f"{detail}: no such caption track", reason, status)
    if reason == "contentRequired":
        return ContentRequiredError(detail, reason, status)
    return YouTubeError(detail, reason, status)


@dataclass(frozen=True)
class Track:
    """A caption track as ``captions.list`` describes it."""

    id: str
    video: str
    language: str
    name: str
    #: "standard", "asr" (YouTube's automatic captions) or "forced"
    kind: str
    is_draft: bool = False
    status: str | None = None
    last_updated: str | None = None

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> Track:
        s = item.get("snippet", {})
        return cls(id=item["id"], video=s.get("videoId", ""), language=s.get("language", ""), name=s.get("name", ""),
                   kind=str(s.get("trackKind", "standard")).lower(), is_draft=bool(s.get("isDraft", False)),
                   status=s.get("status"), last_updated=s.get("lastUpdated"))


def _find(tracks: Sequence[Track], language: str, name: str) -> Track | None:
    for t in tracks:
        if t.kind == "standard" and t.language.lower() == language.lower() and t.name == name:
            return t
    return None


class YouTube:
    """The captions API with quota accounting, retries and specific errors.

    Credentials are loaded (and refreshed, never prompted for) on the first
    call; a refreshed token is saved back to the token file.
    """

    def __init__(self, options: UploadOptions | None = None, ledger: Ledger | None = None, *,
                 credentials: Any = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        self.options = options or UploadOptions()
        self.ledger = ledger if ledger is not None else Ledger(self.options.ledger_file)
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._credentials = credentials
        self._service = None
        self._saved_token: str | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def service(self) -> Any:
        if self._service is None:
            if self._credentials is None:
                self._credentials = load_credentials(self.options.token_file)
            self._saved_token = self._credentials.token
            self._service = build_service(self._credentials, timeout=self.options.timeout)
        return self._service

    def _persist_token(self) -> None:
        """Save the token file when the client refreshed the access token during a call."""
        creds = self._credentials
        if creds is not None and creds.token and creds.token != self._saved_token:
            save_credentials(creds, self.options.token_file)
            self._saved_token = creds.token

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential delay with jitter: uniform in [d/2, d], d = retry_delay * 2**attempt (capped);
        at least the server's Retry-After (capped too) when it gave one."""
        d = min(self.options.max_retry_delay, self.options.retry_delay * (2 ** attempt))
        delay = self.rng.uniform(d / 2, d)
        if retry_after:
            delay = max(delay, min(retry_after, self.options.max_retry_delay))
        return delay

    def call(self, what: str, method: str, make_request: Callable[[], Any], *, retry: bool = True) -> Any:
        """Charge the quota, execute, map errors; retry transient failures when *retry*.

        With ``retry=False`` a transient failure raises TransientYouTubeError
        for the caller to reconcile (inserts: list again before retrying).
        """
        from google.auth.exceptions import RefreshError
        from googleapiclient.errors import HttpError

        transport = _transport_errors()
        attempt = 0
        while True:
            self.ledger.charge(COSTS[method], self.options.quota_budget, what)
            try:
                request = make_request()
                response = request.execute(num_retries=0)
                self._persist_token()
                return response
            except HttpError as exc:
                err, cause = api_error(exc, what), exc
                self.ledger.note(action="error", what=what, status=int(exc.resp.status),
                                 reason=getattr(err, "reason", None) or type(err).__name__)
                self._persist_token()
            except RefreshError as exc:
                raise reauthorization_error(exc) from exc
            except transport as exc:
                err = TransientYouTubeError(f"{what}: no answer from YouTube ({type(exc).__name__}: {exc})")
                cause = exc
                self.ledger.note(action="error", what=what, status=None, reason=type(exc).__name__)
            if not isinstance(err, TransientYouTubeError) or not retry or attempt >= self.options.retries:
                raise err from cause
            delay = self.backoff(attempt, getattr(err, "retry_after", None))
            log.warning("%s; retrying in %.1f s (%d/%d)", err, delay, attempt + 1, self.options.retries)
            self.sleep(delay)
            attempt += 1

    # ------------------------------------------------------------------ methods
    def list(self, video: str) -> list[Track]:
        """All caption tracks of *video* (50 units), YouTube's automatic ``asr`` track included."""
        vid = video_id(video)
        resp = self.call(f"listing the caption tracks of {vid}", "list",
                         lambda: self.service.captions().list(part="snippet", videoId=vid))
        return [Track.from_api(i) for i in resp.get("items", [])]

    def _media(self, c: _Checked) -> Any:
        from googleapiclient.http import MediaFileUpload

        return MediaFileUpload(str(c.path), mimetype=MIMETYPES[c.fmt], resumable=True)

    def insert(self, c: _Checked, *, retry: bool = False) -> str:
        """captions.insert (400 units): returns the new track id. Never sends ``sync``."""
        body = {"snippet": {"videoId": c.video, "language": c.language, "name": c.name, "isDraft": c.draft}}
        resp = self.call(f"inserting {c.path.name} as {c.language} track {c.name!r} of {c.video}", "insert",
                         lambda: self.service.captions().insert(part="snippet", body=body, media_body=self._media(c)),
                         retry=retry)
        return resp["id"]

    def update(self, c: _Checked, track_id: str) -> str:
        """captions.update (450 units): replace the file (and draft flag) of *track_id*."""
        body = {"id": track_id, "snippet": {"isDraft": c.draft}}
        resp = self.call(f"updating track {track_id} of {c.video} with {c.path.name}", "update",
                         lambda: self.service.captions().update(part="snippet", body=body, media_body=self._media(c)))
        return resp.get("id", track_id)

    def download(self, track_id: str, fmt: str = "vtt", tlang: str | None = None) -> bytes:
        """captions.download (200 units) in *fmt* ("vtt", "srt", "sbv", "scc", "ttml")."""
        kwargs = {"id": track_id, "tfmt": fmt}
        if tlang:
            kwargs["tlang"] = tlang
        data = self.call(f"downloading track {track_id}", "download",
                         lambda: self.service.captions().download_media(**kwargs))
        return data if isinstance(data, bytes) else str(data).encode("utf-8")

    def delete(self, track_id: str) -> None:
        """captions.delete (50 units); the ledger forgets the track."""
        self.call(f"deleting track {track_id}", "delete", lambda: self.service.captions().delete(id=track_id))
        self.ledger.forget(track_id)


# --------------------------------------------------------------------------- publishing
@dataclass(frozen=True)
class PublishResult:
    """What happened to one caption file."""

    #: "inserted", "updated", "unchanged"; dry runs: "would insert", "would update", "would skip"
    action: str
    video: str
    language: str
    name: str
    track_id: str | None
    #: quota units this track cost (its list call is shared by the video's tracks and counted once)
    units: int
    caption_file: str
    sha256: str
    draft: bool = False
    #: why it failed (action "failed", only with ``keep_going``)
    error: str | None = None

    def __str__(self) -> str:
        if self.action == "failed":
            return f"failed {self.video} {self.language} {self.name!r}: {self.error}"
        if self.action.startswith("would"):
            return f"{self.action} {self.video} {self.language} {self.name!r} ({self.units} units)"
        return f"{self.action} {self.track_id}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """A dry run: what publishing would do, from the ledger alone, and what it would cost."""

    items: tuple[PublishResult, ...]
    #: units of the whole plan (list calls included)
    units: int
    spent_today: int
    budget: int

    @property
    def fits(self) -> bool:
        return self.spent_today + self.units <= self.budget

    def format(self) -> str:
        lines = [str(r) for r in self.items]
        lines.append(f"plan: {len(self.items)} tracks, {self.units} units "
                     f"(spent today {self.spent_today} of {self.budget}"
                     + ("" if self.fits else "; OVER BUDGET: the batch would stop part-way") + ")")
        return "\n".join(lines)


def _group(checked: Sequence[_Checked]) -> dict[str, list[_Checked]]:
    out: dict[str, list[_Checked]] = {}
    for c in checked:
        out.setdefault(c.video, []).append(c)
    return out


def _check_all(jobs: Iterable[CaptionJob], options: UploadOptions) -> list[_Checked]:
    checked = [_check_job(j, options) for j in jobs]  # any invalid file stops everything before any request
    seen: set[str] = set()
    for c in checked:
        k = Ledger.key(c.video, c.language, c.name)
        if k in seen:
            raise InvalidUploadError(f"two files for the {c.language} track {c.name!r} of {c.video}: give them "
                                     "different --name values")
        seen.add(k)
    return checked


def plan(jobs: Iterable[CaptionJob], options: UploadOptions | None = None, ledger: Ledger | None = None) -> Plan:
    """Dry run: insert/update/skip per track and the units, from the ledger (no requests, no credentials).

    A track published from elsewhere with the same language and name makes
    a planned insert an update (50 units more) when it really runs.
    """
    options = options or UploadOptions()
    ledger = ledger if ledger is not None else Ledger(options.ledger_file)
    checked = _check_all(jobs, options)
    items = []
    total = 0
    for vid, group in _group(checked).items():
        total += COSTS["list"]
        for c in group:
            entry = ledger.get(c.video, c.language, c.name)
            if entry and entry.get("sha256") == c.sha256 and entry.get("draft", False) == c.draft:
                action, units = "would skip", 0
            elif entry:
                action, units = "would update", COSTS["update"]
            else:
                action, units = "would insert", COSTS["insert"]
            total += units
            items.append(PublishResult(action, c.video, c.language, c.name, entry.get("track_id") if entry else None,
                                       units, str(c.path), c.sha256, c.draft))
    return Plan(tuple(items), total, ledger.spent(), options.quota_budget)


def _publish_one(yt: YouTube, c: _Checked, tracks: list[Track]) -> PublishResult:
    ledger = yt.ledger
    spent0 = ledger.spent()

    def result(action: str, track_id: str) -> PublishResult:
        units = max(0, ledger.spent() - spent0)
        ledger.record(c, track_id, action, units)
        log.info("%s %s track %r of %s: %s", action, c.language, c.name, c.video, track_id)
        return PublishResult(action, c.video, c.language, c.name, track_id, units, str(c.path), c.sha256, c.draft)

    existing = _find(tracks, c.language, c.name)
    entry = ledger.get(c.video, c.language, c.name)
    if existing is not None:
        if (entry and entry.get("track_id") == existing.id and entry.get("sha256") == c.sha256
                and entry.get("draft", False) == c.draft):
            return PublishResult("unchanged", c.video, c.language, c.name, existing.id, 0, str(c.path),
                                 c.sha256, c.draft)
        return result("updated", yt.update(c, existing.id))

    attempt = 0
    while True:
        try:
            track_id = yt.insert(c)
            tracks.append(Track(track_id, c.video, c.language, c.name, "standard", c.draft))
            return result("inserted", track_id)
        except CaptionExistsError:
            # the list was stale (or someone else inserted meanwhile): update that track instead
            tracks[:] = yt.list(c.video)
            existing = _find(tracks, c.language, c.name)
            if existing is None:
                raise
            return result("updated", yt.update(c, existing.id))
        except TransientYouTubeError as exc:
            if attempt >= yt.options.retries:
                raise
            delay = yt.backoff(attempt, exc.retry_after)
            log.warning("%s; listing the tracks again before retrying in %.1f s", exc, delay)
            yt.sleep(delay)
            attempt += 1
            # the insert may have happened even though no answer came back: look before retrying
            tracks[:] = yt.list(c.video)
            found = _find(tracks, c.language, c.name)
            if found is not None:
                return result("inserted", found.id)


#: refusals that concern one video or track; with keep_going the batch goes on with the next video
_PER_VIDEO_ERRORS = (NotVideoOwnerError, VideoNotFoundError, CaptionNotFoundError, ContentRequiredError)


def publish_many(jobs: Iterable[CaptionJob], options: UploadOptions | None = None, *,
                 ledger: Ledger | None = None, client: YouTube | None = None,
                 keep_going: bool = False) -> Iterator[PublishResult]:
    """Publish each job as its own track; yield one result per job as it completes.

    All files are validated before the first request.  Jobs of one video
    share one ``captions.list`` call.  With ``options.dry_run`` the
    :func:`plan` items are yielded instead and nothing is sent.  A
    :class:`YouTubeQuotaExceededError` / :class:`QuotaBudgetError` stops the
    batch; what was published before it is in the ledger and a re-run
    resumes.  With *keep_going*, refusals that concern one video (not its
    owner, not found, ...) yield ``failed`` results for that video's jobs and
    the batch goes on; quota, authorisation and transport failures always
    stop it.
    """
    options = options or UploadOptions()
    jobs = list(jobs)
    if options.dry_run:
        yield from plan(jobs, options, ledger).items
        return
    yt = client or YouTube(options, ledger)
    checked = _check_all(jobs, options)
    for vid, group in _group(checked).items():
        try:
            tracks = yt.list(vid)
        except _PER_VIDEO_ERRORS as exc:
            if not keep_going:
                raise
            log.warning("%s", exc)
            for c in group:
                yield PublishResult("failed", c.video, c.language, c.name, None, 0, str(c.path), c.sha256, c.draft,
                                    error=str(exc))
            continue
        for c in group:
            try:
                yield _publish_one(yt, c, tracks)
            except _PER_VIDEO_ERRORS as exc:
                if not keep_going:
                    raise
                yield PublishResult("failed", c.video, c.language, c.name, None, 0, str(c.path), c.sha256, c.draft,
                                    error=str(exc))


def publish(video: str, caption_file: str | os.PathLike, language: str, name: str = DEFAULT_NAME,
            draft: bool = False, *, options: UploadOptions | None = None) -> PublishResult:
    """Publish one caption file as the *language* track *name* of *video* (id or URL)."""
    job = CaptionJob(video, str(caption_file), language, name, draft)
    return next(iter(publish_many([job], options)))


def results_html(results: Iterable[PublishResult]) -> str:
    """An HTML table of publish (or plan) results for notebooks."""
    import html as _html

    rows = "".join(
        "<tr>" + "".join(f"<td>{_html.escape(str(v))}</td>" for v in (
            r.action, r.video, r.language, r.name, r.track_id or "", r.units, Path(r.caption_file).name)) + "</tr>"
        for r in results)
    head = "".join(f"<th>{h}</th>" for h in ("action", "video", "language", "name", "track", "units", "file"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def list_tracks(video: str, options: UploadOptions | None = None) -> list[Track]:
    """Caption tracks of *video*, YouTube's automatic ``asr`` track included (50 units)."""
    return YouTube(options).list(video)


def download_track(track_id: str, fmt: str = "vtt", out: str | os.PathLike | None = None,
                   options: UploadOptions | None = None) -> bytes:
    """Download a track as VTT or SRT (200 units); written atomically to *out* when given."""
    if fmt not in ("vtt", "srt", "sbv", "scc", "ttml"):
        raise ConfigurationError(f"unknown caption format {fmt!r}; choose vtt or srt")
    data = YouTube(options).download(track_id, fmt)
    if out is not None:
        atomic_write_bytes(out, data)
    return data


def delete_track(track_id: str, options: UploadOptions | None = None) -> None:
    """Delete a track (50 units) and forget it in the ledger."""
    YouTube(options).delete(track_id)


@dataclass(frozen=True)
class AsrComparison:
    """How far a caption file's words are from YouTube's automatic (asr) track of the same video."""

    video: str
    asr_track: str
    asr_words: int
    words: int
    #: word error rate of the file's words against the asr track's (agreement, not accuracy: neither is a reference)
    difference: float

    def __str__(self) -> str:
        return (f"YouTube asr track {self.asr_track}: {self.asr_words} words; file: {self.words} words; "
                f"word difference vs asr: {100 * self.difference:.1f}%")


def _caption_words(text: str, fmt: str) -> str:
    import tempfile

    from .captions import read_captions

    with tempfile.TemporaryDirectory() as d:
        p = Path(d, f"c.{fmt}")
        p.write_text(text, encoding="utf-8")
        t = read_captions(p, format=fmt)
    words = re.findall(r"[\w']+", " ".join(s.text for s in t.segments).lower())
    return " ".join(words)


def compare_with_asr(video: str, caption_file: str | os.PathLike, options: UploadOptions | None = None) -> AsrComparison:
    """Compare *caption_file* with YouTube's automatic captions of *video* (list 50 + download 200 units)."""
    try:
        import jiwer
    except ImportError as exc:
        from .errors import MissingDependencyError

        raise MissingDependencyError("jiwer", purpose="comparing with YouTube's automatic captions") from exc
    fmt = check_caption_file(caption_file)
    yt = YouTube(options)
    vid = video_id(video)
    asr = next((t for t in yt.list(vid) if t.kind == "asr"), None)
    if asr is None:
        raise CaptionNotFoundError(f"{vid} has no automatic (asr) caption track to compare with", "captionNotFound", 404)
    theirs = _caption_words(yt.download(asr.id, "vtt").decode("utf-8", "replace"), "vtt")
    ours = _caption_words(Path(caption_file).read_text(encoding="utf-8"), fmt)
    if not theirs:
        raise CaptionNotFoundError(f"YouTube's asr track {asr.id} of {vid} has no words", "captionNotFound", 404)
    return AsrComparison(vid, asr.id, len(theirs.split()), len(ours.split()), float(jiwer.wer(theirs, ours or "")))


# --------------------------------------------------------------------------- run directories
_LANG_SUFFIX = re.compile(r"^(?P<stem>.+)\.(?P<lang>[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*)$")


def media_video_id(media: dict[str, Any] | None) -> str | None:
    """The YouTube video id of a Media record (as a dict), or None when it did not come from YouTube."""
    if not media:
        return None
    if str(media.get("extractor", "")).lower() == "youtube" and _VIDEO_ID.match(str(media.get("id", ""))):
        return str(media["id"])
    for key in ("webpage_url", "source"):
        url = media.get(key)
        if url:
            with contextlib.suppress(InvalidUploadError):
                return video_id(url) if "://" in str(url) else None
    return None


def jobs_from_dir(out_dir: str | os.PathLike, *, name: str | None = None, draft: bool | None = None) -> list[CaptionJob]:
    """Caption jobs for a ``vidtrans run`` output directory.

    Each transcript JSON (``<stem>.json``) whose media came from YouTube gives
    its video id and language; ``<stem>.vtt`` (else ``<stem>.srt``) is
    published in that language and every translated ``<stem>.<lang>.vtt``
    as a track in ``<lang>``.  Media from elsewhere are skipped with a log
    line.
    """
    d = Path(out_dir)
    if not d.is_dir():
        raise InvalidUploadError(f"not a directory: {d}")
    jobs: list[CaptionJob] = []
    for js in sorted(d.glob("*.json")):
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            log.info("skipping %s: not a transcript JSON", js)
            continue
        if not isinstance(data, dict) or "segments" not in data:
            continue
        vid = media_video_id(data.get("media"))
        if vid is None:
            log.warning("skipping %s: its media did not come from YouTube (no video id)", js.name)
            continue
        stem = js.stem
        main = next((p for p in (d / f"{stem}.vtt", d / f"{stem}.srt") if p.is_file()), None)
        language = data.get("language")
        if main is not None and language:
            jobs.append(CaptionJob(vid, str(main), language, name, draft))
        elif main is not None:
            log.warning("skipping %s: the transcript has no language", main.name)
        for p in sorted(d.glob(f"{glob.escape(stem)}.*.vtt")):
            m = _LANG_SUFFIX.match(p.name[: -len(".vtt")])
            if m and m.group("stem") == stem and m.group("lang") != language:
                jobs.append(CaptionJob(vid, str(p), m.group("lang"), name, draft))
    if not jobs:
        raise InvalidUploadError(f"no captions of YouTube videos found in {d} (expected <stem>.json + <stem>.vtt "
                                 "written by `vidtrans run` on a YouTube URL)")
    return jobs


__all__ = [
    "COSTS", "AsrComparison", "CaptionExistsError", "CaptionJob", "CaptionNotFoundError", "ContentRequiredError",
    "InsufficientPermissionsError", "InvalidUploadError", "Ledger", "NotVideoOwnerError", "Plan",
    "PublishResult", "QuotaBudgetError", "ReauthorizationRequiredError", "Track", "TransientYouTubeError",
    "UploadOptions", "VideoNotFoundError", "YouTube", "YouTubeError", "YouTubeQuotaExceededError",
    "build_service", "check_caption_file", "compare_with_asr", "delete_track", "discovery_document", "download_track",
    "jobs_from_dir", "ledger_path", "list_tracks", "media_video_id", "pacific_day", "plan", "results_html", "publish", "publish_many", "video_id",
]
