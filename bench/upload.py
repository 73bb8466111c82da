"""Publishing robustness and quota: vidtrans.upload vs the YouTube API sample's insert-per-file approach.

Both run the real google-api-python-client against the fake YouTube server of
the tests (127.0.0.1) through the same faults: one insert whose response is
lost after the track was created, one 503, then a re-run of the same batch and
a run after one file changed.  The peer is YouTube's own ``captions.py``
sample logic (``captions().insert(...).execute()`` per file) with
googleapiclient's built-in retries (``execute(num_retries=3)``), which is what
the thin upload tools do.  Printed per run: tracks on the videos (duplicates),
quota units the server charged, and API requests.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_youtube import ME, FakeYouTube  # noqa: E402

N = 6
VIDEOS = [f"vid{k:07d}A" for k in range(N)]  # 11-character ids
VTT = "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nHello {k}.\n\n00:00:02.400 --> 00:00:04.100\nThanks.\n"


def setup(srv: FakeYouTube, tmp: Path) -> list[Path]:
    os.environ["VIDTRANS_YOUTUBE_ROOT"] = srv.url
    os.environ["VIDTRANS_OAUTH_TOKEN_URI"] = srv.token_uri
    os.environ["VIDTRANS_YOUTUBE_TOKEN"] = str(tmp / "token.json")
    os.environ["VIDTRANS_YOUTUBE_LEDGER"] = str(tmp / "ledger.json")
    tok = tmp / "token.json"
    tok.write_text(json.dumps(srv.authorized_user()))
    tok.chmod(0o600)
    files = []
    for k in range(N):
        p = tmp / f"v{k}.vtt"
        p.write_text(VTT.format(k=k))
        files.append(p)
    return files


def faults(srv: FakeYouTube) -> None:
    srv.add_fault("insert_upload", drop=True, times=1)  # lost response (httplib2's own resend arrives empty)
    srv.add_fault("insert", status=503, times=1)


def run_vidtrans(files: list[Path]) -> int:
    from vidtrans import upload

    jobs = [upload.CaptionJob(v, str(p), "en") for v, p in zip(VIDEOS, files)]
    list(upload.publish_many(jobs, upload.UploadOptions(retry_delay=0.01)))  # raises on any failure
    return 0


def run_peer(files: list[Path]) -> int:
    from googleapiclient.http import MediaFileUpload

    from vidtrans.upload import build_service
    from vidtrans.youtube_auth import load_credentials

    yt = build_service(load_credentials())
    failures = 0
    for v, p in zip(VIDEOS, files):
        body = {"snippet": {"videoId": v, "language": "en", "name": "vidtrans", "isDraft": False}}
        media = MediaFileUpload(str(p), mimetype="text/vtt", resumable=True)
        try:
            yt.captions().insert(part="snippet", body=body, media_body=media).execute(num_retries=3)
        except Exception as exc:  # the sample prints the error and goes on with the next file
            failures += 1
            if os.environ.get("VERBOSE"):
                print(f"    peer: {v}: {type(exc).__name__}: {str(exc)[:80]}")
    return failures


def scenario(name: str, fn) -> None:
    with tempfile.TemporaryDirectory() as d, FakeYouTube(videos={v: ME for v in VIDEOS}) as srv:
        files = setup(srv, Path(d))
        print(name)
        for label in ("first run (1 lost response, 1 x 503)", "re-run, nothing changed", "re-run, 1 file changed"):
            if label.startswith("first"):
                faults(srv)
            if label.endswith("changed") and "1 file" in label:
                files[0].write_text(VTT.format(k=0).replace("Thanks", "Thank you"))
            used0, req0 = srv.quota_used, len(srv.api_requests())
            failed = fn(files)
            per_video = [len(srv.standard_tracks(v)) for v in VIDEOS]
            stale = sum(1 for v, p in zip(VIDEOS, files)
                        if not any(t.content == p.read_bytes() for t in srv.standard_tracks(v)))
            print(f"  {label:40} failures reported={failed} tracks={sum(per_video):3d} (videos with duplicates: "
                  f"{sum(n > 1 for n in per_video)}, without current file: {stale}) "
                  f"units={srv.quota_used - used0:5d} requests={len(srv.api_requests()) - req0}")


if __name__ == "__main__":
    print(f"{N} videos, one English track each; units as the fake server charged them (list 50, insert 400, update 450)")
    scenario("vidtrans.upload", run_vidtrans)
    scenario("peer: YouTube captions.py sample (insert per file, execute(num_retries=3))", run_peer)
