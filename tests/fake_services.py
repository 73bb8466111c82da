"""Fake AssemblyAI and Gemini HTTP services on 127.0.0.1 for the real SDKs to talk to.

They implement the routes the SDKs call, with the wire formats those SDKs
parse, plus the failure modes the engines must handle (bad key, 429 then
success, job ``status: error``, malformed or out-of-range JSON).

The Gemini fake *listens* to the audio it is sent: it decodes the FLAC
(inline or uploaded through the Files API), finds tone bursts, and answers
one segment per burst with times relative to the clip, the speaker from the
burst's pitch (< 660 Hz: "A", else "B") and ``"tone N"`` as text.  Tests can
therefore check chunking, overlap de-duplication and time offsets against
where the bursts really are.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 (random port); use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _handle(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = {"method": method, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                with outer._lock:
                    outer.requests.append(req)
                try:
                    status, headers, payload = outer.handle(req)
                except Exception as exc:  # a bug in the fake: answer 500 instead of hanging up
                    status, headers, payload = 500, {}, {"error": f"fake server error: {exc!r}"}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def handle(self, req: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def paths(self, method: str | None = None) -> list[str]:
        return [r["path"] for r in self.requests if method is None or r["method"] == method]


# --------------------------------------------------------------------------- AssemblyAI
#: (text, start ms, end ms, speaker) of the canned result: two speakers, three utterances
ASSEMBLYAI_WORDS = [
    ("Hello", 240, 560, "A"), ("there,", 560, 900, "A"), ("how", 960, 1100, "A"), ("are", 1100, 1250, "A"), ("you?", 1250, 1600, "A"),
    ("Fine,", 2300, 2700, "B"), ("thanks.", 2700, 3150, "B"),
    ("Great", 4000, 4400, "A"), ("news.", 4400, 4900, "A"),
]


class FakeAssemblyAI(FakeServer):
    """``/v2/upload``, ``/v2/transcript``, ``/v2/transcript/{id}`` as the assemblyai SDK calls them.

    *fail_first* requests (any route) answer *fail_status*; *job_error* makes
    the finished job ``status: error`` with that reason; the job reports
    ``processing`` for *polls_before_done* polls first.
    """

    def __init__(self, api_key: str, *, job_error: str | None = None, fail_first: int = 0, fail_status: int = 429,
                 polls_before_done: int = 1, language: str = "en"):
        super().__init__()
        self.api_key = api_key
        self.job_error = job_error
        self.fail_left = fail_first
        self.fail_status = fail_status
        self.polls_before_done = polls_before_done
        self.language = language
        self.uploads: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}

    def _word(self, w, with_speaker: bool) -> dict[str, Any]:
        text, s, e, spk = w
        return {"text": text, "start": s, "end": e, "confidence": 0.9, "speaker": spk if with_speaker else None}

    def _result(self, job: dict[str, Any]) -> dict[str, Any]:
        cfg = job["request"]
        spk = bool(cfg.get("speaker_labels"))
        words = [self._word(w, spk) for w in ASSEMBLYAI_WORDS]
        out = {
            "id": job["id"], "status": "completed", "audio_url": cfg["audio_url"],
            "text": " ".join(w[0] for w in ASSEMBLYAI_WORDS), "words": words, "confidence": 0.9,
            "audio_duration": 5, "language_code": cfg.get("language_code") or self.language,
            "language_confidence": 0.97 if cfg.get("language_detection") else None,
            "speech_models": cfg.get("speech_models"), "speech_model_used": (cfg.get("speech_models") or ["universal-2"])[0],
            "speaker_labels": spk, "summary": None, "chapters": None,
            "sentiment_analysis_results": None, "entities": None, "redact_pii": bool(cfg.get("redact_pii")),
            "redact_pii_policies": cfg.get("redact_pii_policies"),
        }
        if spk:
            out["utterances"] = []
            for speaker, group in itertools.groupby(ASSEMBLYAI_WORDS, key=lambda w: w[3]):
                g = list(group)
                out["utterances"].append({
                    "text": " ".join(w[0] for w in g), "start": g[0][1], "end": g[-1][2], "confidence": 0.9,
                    "speaker": speaker, "words": [self._word(w, True) for w in g],
                })
        if cfg.get("auto_chapters"):
            out["chapters"] = [{"summary": "A greeting.", "headline": "Greeting", "gist": "hello", "start": 240, "end": 4900}]
        if cfg.get("summarization"):
            out["summary"] = "Two people greet each other."
        if cfg.get("sentiment_analysis"):
            out["sentiment_analysis_results"] = [
                {"text": "Great news.", "start": 4000, "end": 4900, "confidence": 0.95, "sentiment": "POSITIVE",
                 "speaker": "A" if spk else None}
            ]
        return out

    def handle(self, req):
        if self.fail_left > 0:
            self.fail_left -= 1
            return self.fail_status, {}, {"error": "Too many requests" if self.fail_status == 429 else "Internal error"}
        if req["headers"].get("authorization") != self.api_key:
            return 401, {}, {"error": "Authentication error, API token missing/invalid"}
        path, method = req["path"], req["method"]
        if method == "POST" and path == "/v2/upload":
            token = uuid.uuid4().hex
            self.uploads[token] = req["body"]
            return 200, {}, {"upload_url": f"https://cdn.example.invalid/upload/{token}"}
        if method == "POST" and path == "/v2/transcript":
            cfg = json.loads(req["body"])
            jid = uuid.uuid4().hex
            self.jobs[jid] = {"id": jid, "request": cfg, "polls": 0}
            return 200, {}, {"id": jid, "status": "queued", "audio_url": cfg["audio_url"]}
        m = re.fullmatch(r"/v2/transcript/([0-9a-f]+)", path)
        if method == "GET" and m and m.group(1) in self.jobs:
            job = self.jobs[m.group(1)]
            job["polls"] += 1
            if job["polls"] <= self.polls_before_done:
                return 200, {}, {"id": job["id"], "status": "processing", "audio_url": job["request"]["audio_url"]}
            if self.job_error:
                return 200, {}, {"id": job["id"], "status": "error", "error": self.job_error,
                                 "audio_url": job["request"]["audio_url"]}
            return 200, {}, self._result(job)
        return 404, {}, {"error": f"no route {method} {path}"}

    @property
    def transcript_requests(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests if r["method"] == "POST" and r["path"] == "/v2/transcript"]


# --------------------------------------------------------------------------- Gemini
def find_bursts(samples: np.ndarray, sr: int = 16000, frame: float = 0.05, threshold: float = 0.05):
    """(start, end, frequency Hz) of each loud stretch in *samples*."""
    hop = int(sr * frame)
    n = len(samples) // hop
    if n == 0:
        return []
    rms = np.sqrt(np.mean(samples[: n * hop].reshape(n, hop) ** 2, axis=1))
    loud = rms > threshold
    out = []
    i = 0
    while i < n:
        if loud[i]:
            j = i
            while j < n and loud[j]:
                j += 1
            seg = samples[i * hop : j * hop]
            crossings = np.count_nonzero(np.diff(np.signbit(seg)))
            out.append((i * frame, j * frame, crossings / 2 / (len(seg) / sr)))
            i = j
        else:
            i += 1
    return out


class FakeGemini(FakeServer):
    """``models/{m}:generateContent`` and the Files API (resumable upload, get, delete).

    *mode*: ``"bursts"`` (answer from the audio, see the module docstring),
    ``"malformed"`` (not JSON), ``"out_of_range"`` (a segment past the clip's
    end).  *fail_first* generateContent calls answer *fail_status* first.
    """

    def __init__(self, api_key: str, *, mode: str = "bursts", fail_first: int = 0, fail_status: int = 429,
                 language: str = "en"):
        super().__init__()
        self.api_key = api_key
        self.mode = mode
        self.fail_left = fail_first
        self.fail_status = fail_status
        self.language = language
        self.files: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.generate_bodies: list[dict[str, Any]] = []

    def _error(self, code: int, status: str, message: str):
        return code, {}, {"error": {"code": code, "message": message, "status": status}}

    def _file_json(self, fid: str) -> dict[str, Any]:
        f = self.files[fid]
        return {"name": f"files/{fid}", "uri": f"{self.url}/v1beta/files/{fid}", "mimeType": f["mime"],
                "sizeBytes": str(len(f["data"])), "state": "ACTIVE"}

    def _audio(self, body: dict[str, Any]) -> bytes:
        for part in body["contents"][0]["parts"]:
            if "inlineData" in part:
                data = part["inlineData"]["data"]
                return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            if "fileData" in part:
                fd = part["fileData"]  # the SDK sends snake_case inside; the API takes both
                fid = (fd.get("fileUri") or fd["file_uri"]).rsplit("/", 1)[-1]
                return self.files[fid]["data"]
        raise KeyError("no audio part in the request")

    def _answer(self, body: dict[str, Any]) -> str:
        import soundfile as sf

        if self.mode == "malformed":
            return '{"language": "en", "segments": [{"start": 0.0, "end": 1.2, "text": "hel'
        samples, sr = sf.read(io.BytesIO(self._audio(body)), dtype="float32")
        clip = len(samples) / sr
        if self.mode == "out_of_range":
            return json.dumps({"language": self.language, "segments": [
                {"start": 0.5, "end": 1.0, "speaker": "A", "text": "fine"},
                {"start": clip + 30.0, "end": clip + 31.0, "speaker": "A", "text": "beyond the end"}]})
        schema = body.get("generationConfig", {}).get("responseSchema", {})
        seg_props = schema.get("properties", {}).get("segments", {}).get("items", {}).get("properties", {})
        segments = []
        for k, (s, e, hz) in enumerate(find_bursts(samples, sr)):
            seg = {"start": round(s, 2), "end": round(e, 2), "speaker": "A" if hz < 660 else "B", "text": f"tone {k}"}
            if "emotion" in seg_props:
                seg.update(emotion="happy" if hz < 660 else "sad", emotion_confidence=0.8)
            segments.append(seg)
        return json.dumps({"language": self.language, "segments": segments})

    def handle(self, req):
        path, method, h = req["path"], req["method"], req["headers"]
        # the session URL itself authorises chunk uploads (as Google's upload_id does)
        if h.get("x-goog-api-key") != self.api_key and not path.startswith("/upload-session/"):
            return self._error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        if method == "POST" and re.fullmatch(r"/upload/v1\w*/files", path):
            if h.get("x-goog-upload-command") != "start":
                return self._error(400, "INVALID_ARGUMENT", "expected a resumable upload start")
            sid = uuid.uuid4().hex
            meta = json.loads(req["body"] or b"{}").get("file", {})
            self.sessions[sid] = {"data": b"", "mime": h.get("x-goog-upload-header-content-type") or meta.get("mimeType")}
            return 200, {"X-Goog-Upload-URL": f"{self.url}/upload-session/{sid}", "X-Goog-Upload-Status": "active"}, {}
        m = re.fullmatch(r"/upload-session/(\w+)", path)
        if method == "POST" and m:
            sess = self.sessions[m.group(1)]
            sess["data"] += req["body"]
            if "finalize" in h.get("x-goog-upload-command", ""):
                fid = uuid.uuid4().hex[:12]
                self.files[fid] = sess
                return 200, {"X-Goog-Upload-Status": "final"}, {"file": self._file_json(fid)}
            return 200, {"X-Goog-Upload-Status": "active"}, {}
        m = re.fullmatch(r"/v1\w*/files/(\w+)", path)
        if m and m.group(1) in self.files:
            if method == "DELETE":
                self.deleted.append(m.group(1))
                return 200, {}, {}
            return 200, {}, self._file_json(m.group(1))
        m = re.fullmatch(r"/v1\w*/models/([\w.\-]+):generateContent", path)
        if method == "POST" and m:
            if self.fail_left > 0:
                self.fail_left -= 1
                if self.fail_status == 429:
                    return self._error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
                return self._error(self.fail_status, "UNAVAILABLE", "The model is overloaded. Please try again later.")
            body = json.loads(req["body"])
            self.generate_bodies.append(body)
            text = self._answer(body)
            return 200, {}, {
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 50, "totalTokenCount": 150},
                "modelVersion": m.group(1),
            }
        return self._error(404, "NOT_FOUND", f"no route {method} {path}")
