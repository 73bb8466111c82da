"""A fake YouTube Data API (captions) and Google OAuth server on 127.0.0.1.

google-api-python-client, built from its shipped youtube v3 discovery document
with ``rootUrl`` pointed here, and google-auth / google-auth-oauthlib, with
their token URI pointed here, talk to it over real sockets: real resumable
uploads (POST to start a session, PUT of the file to the ``Location``), real
token refreshes, a real authorisation redirect with PKCE.

Routes:

* ``GET /o/oauth2/auth`` (authorisation): redirects (302) to ``redirect_uri``
  with ``code``, ``state`` and ``scope``, as Google does after consent;
* ``POST /token``: ``authorization_code`` (checks client id/secret,
  redirect_uri and the PKCE ``code_verifier`` against the challenge) and
  ``refresh_token`` grants; refresh tokens in :attr:`revoked` get
  ``400 invalid_grant``;
* ``captions.list/insert/update/delete/download`` under ``/youtube/v3`` and
  ``/upload/youtube/v3``, with Bearer checks (401), the scope check
  (403 insufficientPermissions), ownership (403 forbidden), unknown videos or
  tracks (404), ``409 captionExists``, ``400 contentRequired`` and a daily
  quota with the API's costs (403 quotaExceeded).

Faults are queued per route (:meth:`add_fault`): an error status with an API
reason, ``drop`` (the server does the work, then closes the connection
without answering: a lost response) or ``reset`` (closes without doing
anything).  :attr:`stale_lists` makes the next list calls omit standard
tracks (an eventually consistent list).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

SCOPE = "https://www.googleapis.com/auth/youtube.force-ssl"
COSTS = {"list": 50, "insert": 400, "update": 450, "delete": 50, "download": 200}
ME = "UC_me_channel"


@dataclass
class FakeFault:
    route: str  # "list", "insert", "insert_upload", "update", "update_upload", "delete", "download", "token"
    status: int | None = None
    reason: str = ""
    drop: bool = False
    reset: bool = False
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeTrack:
    id: str
    video: str
    language: str
    name: str
    kind: str = "standard"
    draft: bool = False
    content: bytes = b""
    mime: str = ""
    updated: float = field(default_factory=time.time)


def api_error(status: int, reason: str, message: str = "") -> tuple[int, dict[str, str], dict[str, Any]]:
    message = message or reason
    return status, {}, {"error": {"code": status, "message": message,
                                  "errors": [{"message": message, "domain": "youtube.caption", "reason": reason}]}}


def vtt_to_srt(text: str) -> str:
    """What YouTube's download with tfmt=srt returns for an uploaded WebVTT file (cues renumbered)."""
    blocks = [b for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if "-->" in b]
    out = []
    for i, b in enumerate(blocks, 1):
        lines = b.split("\n")
        k = next(j for j, line in enumerate(lines) if "-->" in line)
        start, end = (t.strip().split()[0] for t in lines[k].split("-->"))
        fix = lambda t: (t if t.count(":") == 2 else "00:" + t).replace(".", ",")  # noqa: E731
        body = [re.sub(r"</?v[^>]*>", "", line) for line in lines[k + 1:]]
        out.append(f"{i}\n{fix(start)} --> {fix(end)}\n" + "\n".join(body))
    return "\n\n".join(out) + "\n"


class FakeYouTube:
    """Fake Google OAuth + YouTube captions API; use as a context manager."""

    def __init__(self, *, client_id: str = "fake-client.apps.googleusercontent.com",
                 client_secret: str = "GOCSPX-fake-client-secret-0123", quota_limit: int = 10_000,
                 videos: dict[str, str] | None = None):
        self.client_id = client_id
        self.client_secret = client_secret
        self.quota_limit = quota_limit
        self.quota_used = 0
        #: video id -> owning channel
        self.videos: dict[str, str] = dict(videos or {})
        self.tracks: dict[str, FakeTrack] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}   # token -> {"scope", "expires"}
        self.refresh_tokens: dict[str, str] = {}             # refresh token -> scope
        self.revoked: set[str] = set()
        self.codes: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.faults: list[FakeFault] = []
        self.stale_lists = 0
        #: scope granted at the consent screen instead of the requested one (None: as requested)
        self.grant_scope: str | None = None
        self.requests: list[dict[str, Any]] = []
        self.incomplete: list[tuple[str, str]] = []  # requests whose body never fully arrived
        self.calls: list[str] = []        # API routes in order (list, insert, update, ...)
        self.token_grants: list[str] = []  # grant types in order
        self._lock = threading.RLock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            #: socket timeout: an incomplete body (e.g. httplib2 resending an exhausted upload stream after a
            #: lost response) is dropped after this long, as Google's front ends do, instead of hanging
            timeout = 1.0

            def log_message(self, *args):
                pass

            def _handle(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    body = self.rfile.read(n) if n else b""
                except (TimeoutError, OSError):
                    body = None
                if body is None or len(body) < n:
                    with outer._lock:
                        outer.incomplete.append((method, self.path))
                    self.close_connection = True
                    return
                u = urlsplit(self.path)
                req = {"method": method, "path": u.path, "query": {k: v[0] for k, v in parse_qs(u.query).items()},
                       "raw_query": u.query, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                with outer._lock:
                    outer.requests.append(req)
                    try:
                        status, headers, payload, after = outer.handle(req)
                    except Exception as exc:  # a bug in the fake: answer 500 instead of hanging up
                        status, headers, payload, after = 500, {}, {"error": {"code": 500, "message": repr(exc)}}, None
                if after in ("drop", "reset"):
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                headers = dict(headers)
                headers.setdefault("Content-Type", "application/json; charset=UTF-8")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FakeYouTube:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def auth_uri(self) -> str:
        return f"{self.url}/o/oauth2/auth"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def client_secrets(self) -> dict[str, Any]:
        return {"installed": {
            "client_id": self.client_id, "client_secret": self.client_secret, "project_id": "fake-project",
            "auth_uri": self.auth_uri, "token_uri": self.token_uri, "redirect_uris": ["http://localhost"],
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs"}}

    # ------------------------------------------------------------------ test helpers
    def add_fault(self, route: str, **kw: Any) -> None:
        self.faults.append(FakeFault(route, **kw))

    def issue_refresh_token(self, scope: str = SCOPE) -> str:
        rt = "1//fake-refresh-" + secrets.token_urlsafe(24)
        self.refresh_tokens[rt] = scope
        return rt

    def authorized_user(self, scope: str = SCOPE, *, expired: bool = True) -> dict[str, Any]:
        """Token-file content as ``Credentials.to_json`` writes it (access token expired by default)."""
        info = {"refresh_token": self.issue_refresh_token(scope), "client_id": self.client_id,
                "client_secret": self.client_secret, "token_uri": self.token_uri, "scopes": [scope],
                "universe_domain": "googleapis.com", "account": ""}
        if not expired:
            token = self._new_access_token(scope)
            info["token"] = token
            info["expiry"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return info

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    def standard_tracks(self, video: str | None = None) -> list[FakeTrack]:
        return [t for t in self.tracks.values() if t.kind == "standard" and (video is None or t.video == video)]

    def add_track(self, video: str, language: str, name: str, content: bytes = b"", kind: str = "standard") -> FakeTrack:
        t = FakeTrack("trk-" + secrets.token_hex(6), video, language, name, kind, content=content, mime="text/vtt")
        self.tracks[t.id] = t
        return t

    def api_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "/youtube/v3" in r["path"] or r["path"].startswith("/upload-session/")]

    # ------------------------------------------------------------------ internals
    def _new_access_token(self, scope: str) -> str:
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.access_tokens[token] = {"scope": scope, "expires": time.time() + 3600}
        return token

    def _fault(self, route: str) -> FakeFault | None:
        for f in self.faults:
            if f.route == route and f.times > 0:
                f.times -= 1
                return f
        return None

    def _resource(self, t: FakeTrack) -> dict[str, Any]:
        return {"kind": "youtube#caption", "etag": hashlib.md5(t.content).hexdigest(), "id": t.id, "snippet": {
            "videoId": t.video, "lastUpdated": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t.updated)),
            "trackKind": t.kind, "language": t.language, "name": t.name, "audioTrackType": "unknown",
            "isCC": False, "isLarge": False, "isEasyReader": False, "isDraft": t.draft, "isAutoSynced": False,
            "status": "serving"}}

    def handle(self, req: dict[str, Any]):
        path, method = req["path"], req["method"]
        if path == "/o/oauth2/auth" and method == "GET":
            return self._authorize(req)
        if path == "/token" and method == "POST":
            return (*self._token(req), None)
        if path.startswith("/upload-session/") and method == "PUT":
            return self._session_put(req)
        if "/youtube/v3/captions" not in path:
            return 404, {}, {"error": {"code": 404, "message": f"no route {method} {path}"}}, None
        if "sync" in req["query"]:
            return (*api_error(400, "invalidValue", "the sync parameter is no longer supported"), None)
        route = self._route(req)
        # authorisation
        auth = req["headers"].get("authorization", "")
        token = self.access_tokens.get(auth.removeprefix("Bearer "))
        if not auth.startswith("Bearer ") or token is None or token["expires"] < time.time():
            return (*api_error(401, "authError", "Request had invalid authentication credentials."), None)
        if SCOPE not in token["scope"].split():
            return (*api_error(403, "insufficientPermissions", "Request had insufficient authentication scopes."),
                    None)
        self.calls.append(route)
        fault = self._fault(route)
        if fault is not None and fault.reset:
            return 0, {}, b"", "reset"
        if fault is not None and fault.status:
            status, headers, payload = api_error(fault.status, fault.reason or "backendError")
            return status, {**headers, **fault.headers}, payload, None
        if self.quota_used + COSTS[route] > self.quota_limit:
            return (*api_error(403, "quotaExceeded", "The request cannot be completed because you have exceeded "
                               "your quota."), None)
        out = getattr(self, f"_{route}")(req)
        if out[0] < 400:  # refused requests are not charged here (YouTube charges them at least 1 unit)
            self.quota_used += COSTS[route]
        return (*out, "drop" if fault is not None and fault.drop else None)

    def _route(self, req: dict[str, Any]) -> str:
        method, path = req["method"], req["path"]
        if method == "GET" and re.fullmatch(r"/youtube/v3/captions/[^/]+", path):
            return "download"
        return {"GET": "list", "POST": "insert", "PUT": "update", "DELETE": "delete"}[method]

    def _video(self, vid: str):
        owner = self.videos.get(vid)
        if owner is None:
            return api_error(404, "videoNotFound", "The video identified by the videoId parameter could not be found.")
        if owner != ME:
            return api_error(403, "forbidden", "The permissions associated with the request are not sufficient.")
        return None

    # ------------------------------------------------------------------ API
    def _list(self, req):
        vid = req["query"].get("videoId", "")
        err = self._video(vid)
        if err:
            return err
        items = [t for t in self.tracks.values() if t.video == vid]
        if self.stale_lists > 0:
            self.stale_lists -= 1
            items = [t for t in items if t.kind != "standard"]
        return 200, {}, {"kind": "youtube#captionListResponse", "items": [self._resource(t) for t in items]}

    def _start_session(self, req, kind: str, meta: dict[str, Any]):
        if req["query"].get("uploadType") != "resumable":
            return api_error(400, "contentRequired", "The request does not contain the caption track contents.")
        sid = secrets.token_hex(8)
        self.sessions[sid] = {"kind": kind, "meta": meta, "data": b"", "done": None,
                              "mime": req["headers"].get("x-upload-content-type", ""),
                              "length": int(req["headers"].get("x-upload-content-length") or -1),
                              "drop": 0}
        return 200, {"Location": f"{self.url}/upload-session/{sid}?upload_id={sid}"}, b""

    def _insert(self, req):
        meta = json.loads(req["body"] or b"{}")
        s = meta.get("snippet", {})
        missing = [k for k in ("videoId", "language", "name") if k not in s]
        if missing:
            return api_error(400, "invalidMetadata", f"missing {missing}")
        err = self._video(s["videoId"])
        if err:
            return err
        if any(t.language.lower() == s["language"].lower() and t.name == s["name"]
               for t in self.standard_tracks(s["videoId"])):
            return api_error(409, "captionExists", "The specified caption track already exists.")
        return self._start_session(req, "insert", meta)

    def _update(self, req):
        meta = json.loads(req["body"] or b"{}")
        t = self.tracks.get(meta.get("id", ""))
        if t is None:
            return api_error(404, "captionNotFound", "The caption track could not be found.")
        err = self._video(t.video)
        if err:
            return err
        return self._start_session(req, "update", meta)

    def _session_put(self, req):
        sid = req["path"].rsplit("/", 1)[-1]
        sess = self.sessions.get(sid)
        if sess is None:
            return 404, {}, {"error": {"code": 404, "message": "no such upload session"}}, None
        route = f"{sess['kind']}_upload"
        fault = self._fault(route)
        if sess["done"] is not None:  # a completed session answers its result again (idempotent)
            return 200, {}, self._resource(self.tracks[sess["done"]]), ("drop" if fault and fault.drop else None)
        rng = req["headers"].get("content-range", "")
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", rng)
        if m is None:
            sess["data"] = req["body"]
            total = len(req["body"])
        else:
            sess["data"] = sess["data"][: int(m.group(1))] + req["body"]
            total = int(m.group(3)) if m.group(3) != "*" else -1
        if total < 0 or len(sess["data"]) < total:
            return 308, {"Range": f"bytes=0-{len(sess['data']) - 1}"}, b"", None
        if not sess["data"]:
            return (*api_error(400, "contentRequired", "The request does not contain the caption track contents."),
                    None)
        s = sess["meta"].get("snippet", {})
        if sess["kind"] == "insert":
            if any(t.language.lower() == s["language"].lower() and t.name == s["name"]
                   for t in self.standard_tracks(s["videoId"])):
                return (*api_error(409, "captionExists", "The specified caption track already exists."), None)
            t = FakeTrack("trk-" + secrets.token_hex(6), s["videoId"], s["language"], s["name"],
                          draft=bool(s.get("isDraft", False)), content=sess["data"], mime=sess["mime"])
            self.tracks[t.id] = t
        else:
            t = self.tracks[sess["meta"]["id"]]
            t.content, t.mime, t.updated = sess["data"], sess["mime"], time.time()
            if "isDraft" in s:
                t.draft = bool(s["isDraft"])
        sess["done"] = t.id
        return 200, {}, self._resource(t), ("drop" if fault and fault.drop else None)

    def _delete(self, req):
        t = self.tracks.get(req["query"].get("id", ""))
        if t is None:
            return api_error(404, "captionNotFound", "The caption track could not be found.")
        err = self._video(t.video)
        if err:
            return err
        del self.tracks[t.id]
        return 204, {}, b""

    def _download(self, req):
        tid = req["path"].rsplit("/", 1)[-1]
        t = self.tracks.get(tid)
        if t is None:
            return api_error(404, "captionNotFound", "The caption track could not be found.")
        err = self._video(t.video)
        if err:
            return err
        text = t.content.decode("utf-8")
        fmt = req["query"].get("tfmt", "")
        if fmt == "srt":
            return 200, {"Content-Type": "application/x-subrip"}, vtt_to_srt(text).encode()
        return 200, {"Content-Type": "text/vtt"}, text.encode()

    # ------------------------------------------------------------------ OAuth
    def _authorize(self, req):
        q = req["query"]
        if q.get("client_id") != self.client_id:
            return 400, {}, {"error": "invalid_client"}, None
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or "code_challenge" not in q:
            return 400, {}, {"error": "invalid_request", "error_description": "PKCE S256 required"}, None
        code = "4/fake-code-" + secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"], "scope": q["scope"],
                            "access_type": q.get("access_type")}
        loc = q["redirect_uri"] + "?" + urlencode({"state": q.get("state", ""), "code": code, "scope": q["scope"]})
        return 302, {"Location": loc}, b"", None

    def _token(self, req):
        form = {k: v[0] for k, v in parse_qs(req["body"].decode()).items()}
        basic = req["headers"].get("authorization", "")
        if basic.startswith("Basic "):
            cid, _, csec = base64.b64decode(basic[6:]).decode().partition(":")
            form.setdefault("client_id", cid)
            form.setdefault("client_secret", csec)
        grant = form.get("grant_type", "")
        self.token_grants.append(grant)
        fault = self._fault("token")
        if fault is not None and fault.status:
            return fault.status, {}, {"error": fault.reason or "server_error"}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {}, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
        if grant == "authorization_code":
            c = self.codes.pop(form.get("code", ""), None)
            if c is None:
                return 400, {}, {"error": "invalid_grant", "error_description": "Malformed auth code."}
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if challenge != c["challenge"]:
                return 400, {}, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
            if form.get("redirect_uri") != c["redirect_uri"]:
                return 400, {}, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
            scope = self.grant_scope or c["scope"]  # granular consent: the user may untick scopes
            body = {"access_token": self._new_access_token(scope), "expires_in": 3599, "scope": scope,
                    "token_type": "Bearer"}
            if c["access_type"] == "offline":
                body["refresh_token"] = self.issue_refresh_token(scope)
            return 200, {}, body
        if grant == "refresh_token":
            rt = form.get("refresh_token", "")
            if rt in self.revoked or rt not in self.refresh_tokens:
                return 400, {}, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            scope = self.refresh_tokens[rt]
            return 200, {}, {"access_token": self._new_access_token(scope), "expires_in": 3599, "scope": scope,
                             "token_type": "Bearer"}
        return 400, {}, {"error": "unsupported_grant_type"}


# --------------------------------------------------------------------------- Gemini as a translator
class FakeGeminiTranslator:
    """``models/{m}:generateContent`` answering translation prompts word by word from a small dictionary.

    It reads the numbered segments the prompt carries (the JSON list after the
    prompt's last blank line) and answers ``{"segments": [{"id", "text"}]}``;
    words missing from :data:`EN_DE` come back unchanged.  *drop_ids* are left
    out of the answer (an incomplete translation).
    """

    EN_DE = {"hello": "hallo", "and": "und", "welcome": "willkommen", "thanks": "danke", "for": "für",
             "having": "dass", "me": "ich", "this": "dies", "is": "ist", "a": "ein", "test": "Test",
             "of": "von", "the": "die", "captions": "Untertitel", "good": "gut", "morning": "Morgen"}

    def __init__(self, api_key: str, drop_ids: tuple[int, ...] = ()):
        from fake_services import FakeServer

        outer = self
        self.api_key = api_key
        self.drop_ids = set(drop_ids)
        self.prompts: list[str] = []

        class _Server(FakeServer):
            def handle(self, req):
                return outer.handle(req)

        self.server = _Server()
        self.url = self.server.url

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)

    def translate_text(self, text: str) -> str:
        out = []
        for tok in text.split():
            core = tok.strip(".,!?;:")
            tail = tok[len(core):] if tok.startswith(core) else ""
            word = self.EN_DE.get(core.lower(), core)
            out.append((word[:1].upper() + word[1:] if core[:1].isupper() else word) + tail)
        return " ".join(out)

    def handle(self, req):
        if req["headers"].get("x-goog-api-key") != self.api_key:
            return 400, {}, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                       "status": "INVALID_ARGUMENT"}}
        if not re.fullmatch(r"/v1\w*/models/[\w.\-]+:generateContent", req["path"]):
            return 404, {}, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
        body = json.loads(req["body"])
        prompt = body["contents"][0]["parts"][0]["text"]
        self.prompts.append(prompt)
        items = json.loads(prompt.rsplit("\n\n", 1)[1])
        answer = {"segments": [{"id": it["id"], "text": self.translate_text(it["text"])}
                               for it in items if it["id"] not in self.drop_ids]}
        return 200, {}, {"candidates": [{"content": {"role": "model", "parts": [{"text": json.dumps(answer)}]},
                                         "finishReason": "STOP", "index": 0}],
                         "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 10, "totalTokenCount": 20}}
