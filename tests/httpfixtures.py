"""A loopback HTTP server for tests: serve a directory, inject faults, log requests.

Real clients (yt-dlp, urllib, requests, SDKs with a base URL) talk to it over
real sockets on 127.0.0.1 only, so their retry, redirect and error paths run
for real.  Faults are programmed per path and consumed in order::

    with LoopbackServer(root) as srv:
        srv.add_fault("/talk.mp4", status=429, times=1, headers={"Retry-After": "0"})
        srv.add_fault("/talk.mp4", truncate=4096, times=2)   # then 2 short bodies
        url = srv.url("talk.mp4")                           # then the real file
        ...
        assert srv.count("/talk.mp4", "GET") == 4

Fault kinds (one per :class:`Fault`): ``status`` (404, 429, 503, ... with an
optional body and headers), ``truncate`` (announce the full Content-Length but
send only N bytes, then close), ``reset`` (close the socket without a
response), ``content_type`` (serve the file with another Content-Type), ``delay``
(answer late).  ``max_in_flight`` records the most concurrent requests.  A
fault with ``times=None`` never runs out.  Range requests are honoured (206),
so clients that resume partial downloads can be tested.

The pytest fixture :func:`http_server` serves a fresh temporary directory;
import it into a test module (``from httpfixtures import http_server``).
Helpers :func:`write_html_page` and :func:`write_rss_feed` build the pages a
generic extractor reads as playlists.
"""

from __future__ import annotations

import email.utils
import html
import mimetypes
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

HOST = "127.0.0.1"


@dataclass
class Fault:
    """One programmed misbehaviour for requests to a path."""

    #: reply with this status instead of the file (404, 429, 500, 503, ...)
    status: int | None = None
    #: send only this many body bytes (Content-Length still announces the full size)
    truncate: int | None = None
    #: close the connection without any response
    reset: bool = False
    #: serve the real file but with this Content-Type
    content_type: str | None = None
    #: extra response headers (e.g. Retry-After)
    headers: dict[str, str] = field(default_factory=dict)
    #: body for ``status`` replies
    body: bytes = b""
    #: how many requests it applies to; None = every request
    times: int | None = 1
    #: which methods it applies to (HEAD requests are often probes)
    methods: tuple[str, ...] = ("GET", "HEAD")
    #: seconds to wait before answering (slow server; combine with the others or alone)
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    """One logged request and what the server did with it."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    fault: str | None
    time: float


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence stderr logging
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    # ------------------------------------------------------------------ helpers
    def _log(self, status: int, fault: str | None) -> None:
        path = unquote(urlsplit(self.path).path)
        self.server.owner._record(Request(self.command, path, status, dict(self.headers.items()), fault, time.time()))

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        path = unquote(urlsplit(self.path).path)
        owner._enter(path)
        try:
            self._serve_inner(head)
        finally:
            owner._leave(path)

    def _serve_inner(self, head: bool) -> None:
        owner = self.server.owner
        path = unquote(urlsplit(self.path).path)
        fault = owner._take_fault(path, self.command)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.reset:
            self._log(0, "reset")
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault is not None and fault.status is not None:
            self._log(fault.status, f"status {fault.status}")
            self.send_response(fault.status)
            for k, v in fault.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(fault.body)))
            self.end_headers()
            if not head:
                self.wfile.write(fault.body)
            return
        file = owner._resolve(path)
        if file is None:
            body = b"not found\n"
            self._log(404, None)
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        size = file.stat().st_size
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if m and size:
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            elif m.group(2):
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size or start > end:
                self._log(416, None)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        length = end - start + 1 if size else 0
        ctype = (fault.content_type if fault and fault.content_type else None) or owner._content_type(file)
        send = length
        label = None
        if fault is not None:
            if fault.truncate is not None:
                send = min(length, fault.truncate)
                label = f"truncate {send}/{length}"
            elif fault.content_type:
                label = f"content_type {ctype}"
        self._log(status, label)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(file.stat().st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for k, v in (fault.headers.items() if fault else ()):
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        try:
            with open(file, "rb") as fh:
                fh.seek(start)
                remaining = send
                while remaining > 0:
                    chunk = fh.read(min(64 * 1024, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        if send < length:  # cut the body short: the client sees a premature close
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: LoopbackServer, port: int):
        self.owner = owner
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request, client_address) -> None:
        # clients that stop reading early (probes, cancelled downloads) reset the
        # connection; that is normal here, not worth a traceback on stderr
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Serve *root* on 127.0.0.1 in a background thread, with programmable faults."""

    #: Content-Type per extension where mimetypes' table is missing or differs between systems
    TYPES = {
        ".mp4": "video/mp4", ".m4a": "audio/mp4", ".mp3": "audio/mpeg", ".wav": "audio/wav",
        ".webm": "video/webm", ".ogg": "audio/ogg", ".opus": "audio/ogg", ".flac": "audio/flac",
        ".html": "text/html; charset=utf-8", ".xml": "application/rss+xml", ".rss": "application/rss+xml",
        ".vtt": "text/vtt", ".txt": "text/plain; charset=utf-8", ".json": "application/json",
        ".jpg": "image/jpeg", ".png": "image/png",
    }

    def __init__(self, root: str | os.PathLike, port: int = 0):
        self.root = Path(root).resolve()
        self._port = port
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}
        self._routes: dict[str, Path] = {}
        self.requests: list[Request] = []
        #: most requests handled at the same time so far (concurrency check)
        self.max_in_flight = 0
        self._in_flight = 0
        #: most distinct paths being served at the same time (items processed concurrently;
        #: a client's abandoned probe of the same file still being answered does not count twice)
        self.max_paths_in_flight = 0
        self._paths_in_flight: dict[str, int] = {}
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LoopbackServer:
        if self._httpd is not None:
            return self
        self._httpd = _Server(self, self._port)
        self._port = self._httpd.server_address[1]  # keep the port across stop/start
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"loopback-http-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; afterwards connections to the port are refused."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._port}/"

    def url(self, path: str = "") -> str:
        return self.base_url + path.lstrip("/")

    # ------------------------------------------------------------------ content
    def add_file(self, src: str | os.PathLike, name: str | None = None) -> str:
        """Copy *src* into the served root (as *name*) and return its URL."""
        name = name or Path(src).name
        dst = self.root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        return self.url(name)

    def route(self, path: str, file: str | os.PathLike) -> str:
        """Serve *file* at *path* without copying it."""
        self._routes["/" + path.lstrip("/")] = Path(file).resolve()
        return self.url(path)

    def write(self, name: str, text: str | bytes) -> str:
        dst = self.root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (dst.write_bytes(text) if isinstance(text, bytes) else dst.write_text(text, encoding="utf-8"))
        return self.url(name)

    # ------------------------------------------------------------------ faults
    def add_fault(self, path: str, fault: Fault | None = None, **kwargs) -> Fault:
        """Queue a fault for *path* (``Fault`` fields as keyword arguments)."""
        fault = fault or Fault(**kwargs)
        with self._lock:
            self._faults.setdefault("/" + path.lstrip("/"), []).append(fault)
        return fault

    def clear_faults(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop("/" + path.lstrip("/"), None)

    def _take_fault(self, path: str, method: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            while queue:
                fault = queue[0]
                if method not in fault.methods:
                    return None
                if fault.times is None:
                    return fault
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        queue.pop(0)
                    return fault
                queue.pop(0)
            return None

    # ------------------------------------------------------------------ log
    def _enter(self, path: str) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._paths_in_flight[path] = self._paths_in_flight.get(path, 0) + 1
            self.max_paths_in_flight = max(self.max_paths_in_flight, len(self._paths_in_flight))

    def _leave(self, path: str) -> None:
        with self._lock:
            self._in_flight -= 1
            self._paths_in_flight[path] -= 1
            if not self._paths_in_flight[path]:
                del self._paths_in_flight[path]

    def _record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """Number of logged requests (optionally for one path and/or method)."""
        p = None if path is None else "/" + path.lstrip("/")
        with self._lock:
            return sum(1 for r in self.requests if (p is None or r.path == p) and (method is None or r.method == method))

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0
            self.max_paths_in_flight = 0

    # ------------------------------------------------------------------ internals
    def _resolve(self, path: str) -> Path | None:
        if path in self._routes:
            return self._routes[path]
        p = (self.root / path.lstrip("/")).resolve()
        if self.root not in p.parents and p != self.root:
            return None
        if p.is_dir():
            p = p / "index.html"
        return p if p.is_file() else None

    def _content_type(self, file: Path) -> str:
        ext = file.suffix.lower()
        return self.TYPES.get(ext) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def write_html_page(path: str | os.PathLike, videos: Iterable[str], title: str = "Talks",
                    tracks: Mapping[str, Mapping[str, str]] | None = None) -> Path:
    """An HTML page with one ``<video>`` per source (relative URLs allowed).

    *tracks* maps a video source to ``{lang: vtt_src}`` for ``<track kind="subtitles">``.
    """
    parts = []
    for src in videos:
        track = "".join(
            f'<track kind="subtitles" srclang="{html.escape(lang)}" src="{html.escape(vtt)}">'
            for lang, vtt in (tracks or {}).get(src, {}).items()
        )
        parts.append(f'<video controls><source src="{html.escape(src)}" type="video/mp4">{track}</video>')
    body = "\n".join(parts)
    page = f"<!DOCTYPE html>\n<html><head><title>{html.escape(title)}</title></head>\n<body>\n{body}\n</body></html>\n"
    p = Path(path)
    p.write_text(page, encoding="utf-8")
    return p


def write_rss_feed(path: str | os.PathLike, items: Iterable[Mapping[str, object]], title: str = "Podcast") -> Path:
    """A podcast RSS feed; each item needs ``url`` and may give title, duration (s), date (datetime), guid."""
    rows = []
    for it in items:
        date = it.get("date")
        pub = f"<pubDate>{email.utils.format_datetime(date)}</pubDate>" if date is not None else ""
        dur = f"<itunes:duration>{int(it['duration'])}</itunes:duration>" if it.get("duration") is not None else ""
        guid = f"<guid>{html.escape(str(it['guid']))}</guid>" if it.get("guid") else ""
        ctype = it.get("type", "audio/mp4")
        rows.append(
            f"<item><title>{html.escape(str(it.get('title', '')))}</title>{guid}{pub}{dur}"
            f'<enclosure url="{html.escape(str(it["url"]))}" type="{ctype}" length="{int(it.get("length", 0))}"/></item>'
        )
    feed = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
        f"<title>{html.escape(title)}</title><description>test feed</description>\n"
        + "\n".join(rows)
        + "\n</channel></rss>\n"
    )
    p = Path(path)
    p.write_text(feed, encoding="utf-8")
    return p


@pytest.fixture
def http_server(tmp_path_factory):
    """A running :class:`LoopbackServer` over a fresh temporary directory."""
    root = tmp_path_factory.mktemp("www")
    srv = LoopbackServer(root).start()
    try:
        yield srv
    finally:
        srv.stop()
