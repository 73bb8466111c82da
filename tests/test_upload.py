"""Publishing to YouTube with the real google-api-python-client and google-auth against a fake on 127.0.0.1.

The client is built from the discovery document shipped in
google-api-python-client with ``rootUrl`` pointed at :class:`FakeYouTube`, so
every test makes real resumable uploads and real token refreshes.
"""

from __future__ import annotations

import json
import stat
import threading
import webbrowser
from pathlib import Path

import pytest

pytest.importorskip("googleapiclient")
pytest.importorskip("google_auth_oauthlib")

import requests  # noqa: E402  (google-auth's transport; always present with it)

from fake_youtube import ME, SCOPE, FakeYouTube  # noqa: E402
from vidtrans import upload, youtube_auth  # noqa: E402
from vidtrans.upload import (  # noqa: E402
    CaptionJob,
    InsufficientPermissionsError,
    InvalidUploadError,
    Ledger,
    NotVideoOwnerError,
    QuotaBudgetError,
    UploadOptions,
    YouTube,
    YouTubeQuotaExceededError,
)
from vidtrans.youtube_auth import ReauthorizationRequiredError  # noqa: E402

VID, VID2, VID3, OTHERS = "dQw4w9WgXcQ", "M7lc1UVf-VE", "aqz-KE-bpKQ", "jNQXAC9IVRw"

VTT = """WEBVTT

00:00:00.500 --> 00:00:02.000
<v Speaker 1>Hello, and welcome.

00:00:02.400 --> 00:00:04.100
<v Speaker 2>Thanks for having me.
"""


@pytest.fixture
def srv(tmp_path, monkeypatch):
    """A fake YouTube + OAuth server; env points vidtrans at it; a 0600 token with an expired access token."""
    with FakeYouTube(videos={VID: ME, VID2: ME, VID3: ME, OTHERS: "UC_someone_else"}) as s:
        monkeypatch.setenv("VIDTRANS_YOUTUBE_ROOT", s.url)
        monkeypatch.setenv("VIDTRANS_OAUTH_TOKEN_URI", s.token_uri)
        monkeypatch.setenv("VIDTRANS_YOUTUBE_TOKEN", str(tmp_path / "cfg" / "youtube_token.json"))
        monkeypatch.delenv("VIDTRANS_YOUTUBE_LEDGER", raising=False)
        write_token(s.authorized_user())
        yield s


def write_token(info: dict) -> Path:
    p = youtube_auth.token_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(info))
    p.chmod(0o600)
    return p


@pytest.fixture
def vtt(tmp_path) -> Path:
    p = tmp_path / "talk.vtt"
    p.write_text(VTT)
    return p


def opts(**kw) -> UploadOptions:
    return UploadOptions(retry_delay=0.001, max_retry_delay=0.01, **kw)


def ledger() -> dict:
    return json.loads(upload.ledger_path().read_text())


def test_insert_unchanged_update_never_duplicates(srv, vtt):
    r = upload.publish(f"https://www.youtube.com/watch?v={VID}&t=42s", vtt, "en", options=opts())
    assert r.action == "inserted" and str(r) == f"inserted {r.track_id}"
    (track,) = srv.standard_tracks(VID)
    assert (track.id, track.language, track.name, track.draft) == (r.track_id, "en", "vidtrans", False)
    assert track.content == vtt.read_bytes() and track.mime == "text/vtt"
    # a real resumable upload: a session started with the JSON metadata, then the file PUT to its Location
    start = next(q for q in srv.requests if q["path"] == "/upload/youtube/v3/captions")
    assert start["query"]["uploadType"] == "resumable" and start["headers"]["x-upload-content-type"] == "text/vtt"
    assert json.loads(start["body"]) == {"snippet": {"videoId": VID, "language": "en", "name": "vidtrans",
                                                     "isDraft": False}}
    assert any(q["method"] == "PUT" and q["path"].startswith("/upload-session/") for q in srv.requests)
    assert srv.token_grants == ["refresh_token"]  # the expired access token was refreshed for real
    assert r.units == 400 and ledger()["quota"][upload.pacific_day()] == 450

    srv.calls.clear()
    again = upload.publish(f"https://youtu.be/{VID}", vtt, "en", options=opts())
    assert (again.action, again.track_id, again.units) == ("unchanged", r.track_id, 0)
    assert srv.calls == ["list"]  # no insert, no update

    vtt.write_text(VTT.replace("welcome", "welcome back"))
    srv.calls.clear()
    changed = upload.publish(VID, vtt, "en", options=opts())
    assert (changed.action, changed.track_id, changed.units) == ("updated", r.track_id, 450)
    assert srv.calls == ["list", "update"]
    (track,) = srv.standard_tracks(VID)
    assert b"welcome back" in track.content
    entry = ledger()["tracks"][f"{VID}|en|vidtrans"]
    assert entry["track_id"] == r.track_id and entry["sha256"] == upload.file_sha256(vtt)
    assert ledger()["quota"][upload.pacific_day()] == 450 + 50 + 500
    # the deprecated sync parameter is never sent on any request
    assert not any("sync" in q["query"] for q in srv.requests)


def test_lost_response_after_insert_is_not_retried_blindly(srv, vtt):
    # the insert completes on the server, but no answer ever reaches the client (httplib2's own resend too)
    srv.add_fault("insert_upload", drop=True, times=5)
    r = upload.publish(VID, vtt, "en", options=opts())
    assert r.action == "inserted"
    assert [t.id for t in srv.standard_tracks(VID)] == [r.track_id]  # still exactly one track
    assert srv.calls == ["list", "insert", "list"]  # listed again instead of inserting twice
    assert ledger()["tracks"][f"{VID}|en|vidtrans"]["track_id"] == r.track_id


def test_503_twice_then_success_with_backoff_and_jitter(srv, vtt):
    srv.add_fault("insert", status=503, times=2)
    srv.add_fault("list", reset=True, times=2)  # httplib2 resends once itself; then our retry
    sleeps: list[float] = []
    yt = YouTube(UploadOptions(retry_delay=0.01, max_retry_delay=1.0), sleep=sleeps.append)
    (r,) = upload.publish_many([CaptionJob(VID, str(vtt), "en")], client=yt)
    assert r.action == "inserted" and len(srv.standard_tracks(VID)) == 1
    assert srv.calls == ["list", "list", "list", "insert", "list", "insert", "list", "insert"]
    # exponential with jitter: attempt k waits in [d/2, d], d = 0.01 * 2**k
    assert len(sleeps) == 3
    assert 0.005 <= sleeps[0] <= 0.01 and 0.005 <= sleeps[1] <= 0.01 and 0.01 <= sleeps[2] <= 0.02


def test_429_honours_retry_after(srv, vtt):
    srv.add_fault("list", status=429, reason="rateLimitExceeded", headers={"Retry-After": "0.3"})
    sleeps: list[float] = []
    yt = YouTube(UploadOptions(retry_delay=0.01, max_retry_delay=5.0), sleep=sleeps.append)
    assert yt.list(VID) == [] and sleeps == [0.3]


def test_409_caption_exists_becomes_update(srv, vtt):
    old = srv.add_track(VID, "en", "vidtrans", b"WEBVTT\n\n00:00.000 --> 00:01.000\nold\n")
    srv.stale_lists = 1  # the first list misses it (eventual consistency), so an insert is tried
    r = upload.publish(VID, vtt, "en", options=opts())
    assert (r.action, r.track_id) == ("updated", old.id)
    assert srv.calls == ["list", "insert", "list", "update"]
    (track,) = srv.standard_tracks(VID)
    assert track.content == vtt.read_bytes()


def test_quota_exceeded_stops_batch_and_next_run_resumes(srv, tmp_path, vtt):
    files = []
    for k in range(3):
        p = tmp_path / f"v{k}.vtt"
        p.write_text(VTT.replace("Hello", f"Hello {k}"))
        files.append(p)
    jobs = [CaptionJob(v, str(p), "en") for v, p in zip((VID, VID2, VID3), files)]
    srv.quota_limit = 2 * 450 + 50  # two publishes and the third video's list
    done = []
    with pytest.raises(YouTubeQuotaExceededError, match="midnight Pacific") as e:
        for r in upload.publish_many(jobs, opts()):
            done.append(r)
    assert e.value.exit_code == 5
    assert [r.action for r in done] == ["inserted", "inserted"]
    assert srv.calls.count("insert") == 3  # quotaExceeded is never retried
    assert set(ledger()["tracks"]) == {f"{VID}|en|vidtrans", f"{VID2}|en|vidtrans"}

    srv.quota_used = 0  # a new Pacific day
    srv.calls.clear()
    actions = [r.action for r in upload.publish_many(jobs, opts())]
    assert actions == ["unchanged", "unchanged", "inserted"]
    assert srv.calls == ["list", "list", "list", "insert"]
    assert [len(srv.standard_tracks(v)) for v in (VID, VID2, VID3)] == [1, 1, 1]


def test_local_budget_is_checked_before_each_call(srv, tmp_path, vtt):
    other = tmp_path / "b.vtt"
    other.write_text(VTT)
    jobs = [CaptionJob(VID, str(vtt), "en"), CaptionJob(VID2, str(other), "en")]
    results = []
    with pytest.raises(QuotaBudgetError, match="500-unit budget"):
        for r in upload.publish_many(jobs, opts(quota_budget=500)):
            results.append(r)
    assert [r.action for r in results] == ["inserted"]
    assert srv.calls == ["list", "insert", "list"]  # the second insert was never sent
    assert ledger()["quota"][upload.pacific_day()] == 500


def test_not_the_owner_is_forbidden(srv, vtt):
    with pytest.raises(NotVideoOwnerError, match="does not own"):
        upload.publish(OTHERS, vtt, "en", options=opts())
    assert srv.calls == ["list"] and not srv.tracks


def test_keep_going_reports_a_foreign_video_and_publishes_the_rest(srv, vtt, tmp_path):
    jobs = [CaptionJob(OTHERS, str(vtt), "en"), CaptionJob("https://youtu.be/" + "x" * 11, str(vtt), "en"),
            CaptionJob(VID, str(vtt), "en")]
    results = list(upload.publish_many(jobs, opts(), keep_going=True))
    assert [r.action for r in results] == ["failed", "failed", "inserted"]
    assert "does not own" in results[0].error and "no such video" in results[1].error
    assert str(results[0]).startswith(f"failed {OTHERS} en 'vidtrans': ")
    assert len(srv.standard_tracks(VID)) == 1


def test_missing_scope_is_insufficient_permissions(srv, vtt):
    # granular consent: the user unticked the YouTube box, the token file still lists the requested scope
    info = srv.authorized_user()
    srv.refresh_tokens[info["refresh_token"]] = "openid"
    write_token(info)
    with pytest.raises(InsufficientPermissionsError, match="force-ssl"):
        upload.publish(VID, vtt, "en", options=opts())


def test_invalid_grant_asks_to_reauthorise(srv, vtt, capsys):
    info = srv.authorized_user()
    srv.revoked.add(info["refresh_token"])
    write_token(info)
    with pytest.raises(ReauthorizationRequiredError) as e:
        upload.publish(VID, vtt, "en", options=opts())
    msg = str(e.value)
    assert "invalid_grant" in msg and "vidtrans auth youtube" in msg and "7 days" in msg and "Testing" in msg
    assert info["refresh_token"] not in msg and srv.client_secret not in msg
    assert srv.api_requests() == []


@pytest.mark.parametrize("text, rule", [
    ("00:00:00.500 --> 00:00:02.000\nno header\n", "header"),
    ("WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nends before it starts\n", "end_before_start"),
    ("WEBVTT\n\n00:00:00.5 --> 00:00:02.000\nbad timestamp\n", "timestamp"),
])
def test_invalid_vtt_refused_before_any_request(srv, vtt, tmp_path, text, rule):
    bad = tmp_path / "bad.vtt"
    bad.write_text(text)
    with pytest.raises(InvalidUploadError, match=rule):
        list(upload.publish_many([CaptionJob(VID, str(vtt), "en"), CaptionJob(VID2, str(bad), "en")], opts()))
    assert srv.requests == []  # not even a token refresh: the valid file in the batch waited too


def test_bad_video_language_and_name_refused(srv, vtt):
    with pytest.raises(InvalidUploadError, match="not a YouTube video"):
        upload.publish("https://vimeo.com/12345", vtt, "en", options=opts())
    with pytest.raises(InvalidUploadError, match="BCP-47"):
        upload.publish(VID, vtt, "english", options=opts())
    with pytest.raises(InvalidUploadError, match="150"):
        upload.publish(VID, vtt, "en", name="x" * 151, options=opts())
    assert srv.requests == []


def test_video_id_forms():
    for url in (VID, f"https://www.youtube.com/watch?v={VID}", f"youtube.com/watch?feature=share&v={VID}",
                f"https://youtu.be/{VID}?si=abc", f"https://m.youtube.com/watch?v={VID}",
                f"https://www.youtube.com/shorts/{VID}", f"https://www.youtube.com/embed/{VID}",
                f"https://www.youtube.com/live/{VID}?feature=share", f"https://www.youtube-nocookie.com/embed/{VID}",
                f"https://music.youtube.com/watch?v={VID}&list=RD"):
        assert upload.video_id(url) == VID, url
    for bad in ("", "abc", "https://www.youtube.com/channel/UC123", "https://example.com/watch?v=" + VID):
        with pytest.raises(InvalidUploadError):
            upload.video_id(bad)


def test_token_file_0600_refreshed_token_saved_and_loose_file_refused(srv, vtt):
    path = youtube_auth.token_path()
    before = json.loads(path.read_text())
    upload.publish(VID, vtt, "en", options=opts())
    after = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert after["token"] and after.get("token") != before.get("token") and after["refresh_token"] == before["refresh_token"]
    assert after["token"] in srv.access_tokens  # the saved access token is the one the server issued
    assert not list(path.parent.glob(".youtube_token.json.*"))  # no temporary file left behind

    srv.calls.clear()
    srv.token_grants.clear()
    upload.publish(VID, vtt, "en", options=opts())
    assert srv.token_grants == []  # a fresh saved token is reused, not refreshed again

    srv.expire_access_tokens()  # revoked server-side before expiry: the client refreshes on the 401 itself
    upload.list_tracks(VID, opts())
    assert srv.token_grants == ["refresh_token"]
    assert json.loads(path.read_text())["token"] in srv.access_tokens

    path.chmod(0o644)
    from vidtrans.secrets import InsecureSecretsFileError

    with pytest.raises(InsecureSecretsFileError, match="chmod 600"):
        upload.list_tracks(VID, opts())


def test_list_download_delete_including_asr(srv, vtt):
    asr = srv.add_track(VID, "en", "", b"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nhello and welcome\n", kind="asr")
    r = upload.publish(VID, vtt, "en", options=opts())
    tracks = {t.id: t for t in upload.list_tracks(VID, opts())}
    assert tracks[asr.id].kind == "asr" and tracks[r.track_id].kind == "standard"
    assert upload.download_track(asr.id, "vtt", options=opts()).startswith(b"WEBVTT")
    srt = upload.download_track(r.track_id, "srt", options=opts()).decode()
    assert srt.startswith("1\n00:00:00,500 --> 00:00:02,000\nHello, and welcome.")
    srv.calls.clear()
    upload.delete_track(r.track_id, opts())
    assert srv.calls == ["delete"] and r.track_id not in srv.tracks and asr.id in srv.tracks
    assert f"{VID}|en|vidtrans" not in ledger()["tracks"]


def test_compare_with_youtube_asr_track(srv, vtt):
    srv.add_track(VID, "en", "", b"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nhello and welcome\n\n"
                                 b"00:00:02.000 --> 00:00:04.000\nthanks for having him\n", kind="asr")
    c = upload.compare_with_asr(VID, vtt, opts())
    # ours: "hello and welcome thanks for having me" vs asr "... having him": 1 substitution in 7 words
    assert (c.asr_words, c.words) == (7, 7) and c.difference == pytest.approx(1 / 7)
    assert srv.calls == ["list", "download"]
    srv.tracks.clear()
    with pytest.raises(upload.CaptionNotFoundError, match="no automatic"):
        upload.compare_with_asr(VID, vtt, opts())


def test_dry_run_plans_from_the_ledger_without_requests(srv, vtt, tmp_path):
    other = tmp_path / "b.vtt"
    other.write_text(VTT)
    jobs = [CaptionJob(VID, str(vtt), "en"), CaptionJob(VID, str(other), "en", name="alt")]
    p = upload.plan(jobs, opts())
    assert [r.action for r in p.items] == ["would insert", "would insert"] and p.units == 50 + 800
    assert list(upload.publish_many(jobs, opts(dry_run=True))) == list(p.items)
    assert srv.requests == []
    list(upload.publish_many(jobs[:1], opts()))
    vtt.write_text(VTT + "\n00:00:05.000 --> 00:00:06.000\nMore.\n")
    p = upload.plan(jobs, opts(quota_budget=600))
    assert [r.action for r in p.items] == ["would update", "would insert"] and p.units == 50 + 450 + 400
    assert not p.fits and "OVER BUDGET" in p.format()


def test_srt_upload(srv, tmp_path):
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello.\n\n2\n00:00:02,400 --> 00:00:04,100\nBye.\n")
    r = upload.publish(VID, srt, "en-GB", name="English (UK)", draft=True, options=opts())
    (t,) = srv.standard_tracks(VID)
    assert (t.id, t.language, t.name, t.draft, t.mime) == (r.track_id, "en-GB", "English (UK)", True,
                                                          "application/x-subrip")
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:00,500 -> oops\nHello.\n")
    with pytest.raises(InvalidUploadError):
        upload.publish(VID, bad, "en", options=opts())


def test_pacific_day_boundary():
    from datetime import datetime, timezone

    # 07:59 UTC is still the previous day in Los Angeles (PST, UTC-8); 08:00 starts the new quota day
    assert upload.pacific_day(datetime(2026, 12, 2, 7, 59, tzinfo=timezone.utc)) == "2026-12-01"
    assert upload.pacific_day(datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)) == "2026-12-02"
    assert upload.pacific_day(datetime(2026, 7, 2, 6, 59, tzinfo=timezone.utc)) == "2026-07-01"  # PDT, UTC-7
    assert upload.pacific_day(datetime(2026, 7, 2, 7, 0, tzinfo=timezone.utc)) == "2026-07-02"


def test_ledger_counts_per_pacific_day(tmp_path):
    from datetime import datetime, timezone

    now = [datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc)]
    led = Ledger(tmp_path / "l.json", clock=lambda: now[0])
    led.charge(9_900, 10_000, "x")
    with pytest.raises(QuotaBudgetError):
        led.charge(450, 10_000, "update")
    now[0] = datetime(2026, 12, 2, 8, 30, tzinfo=timezone.utc)  # midnight Pacific passed
    led.charge(450, 10_000, "update")
    assert Ledger(tmp_path / "l.json").data["quota"] == {"2026-12-01": 9_900, "2026-12-02": 450}


# --------------------------------------------------------------------------- OAuth flows
class ScriptedBrowser(webbrowser.BaseBrowser):
    """Stands in for the user's browser: loads the auth URL and follows the redirect to the loopback server."""

    def __init__(self):
        super().__init__("scripted")
        self.opened: list[str] = []
        self.landed: list[tuple[int, str, str]] = []
        self.threads: list[threading.Thread] = []

    def open(self, url, new=0, autoraise=True):
        self.opened.append(url)

        def visit():
            r = requests.get(url, allow_redirects=True, timeout=10)
            self.landed.append((r.status_code, r.url, r.text))

        t = threading.Thread(target=visit, daemon=True)
        t.start()
        self.threads.append(t)
        return True


@pytest.fixture
def client_secrets(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake token endpoint is plain http (tests only)
    youtube_auth.token_path().unlink()
    p = tmp_path / "client_secret.json"
    p.write_text(json.dumps(srv.client_secrets()))
    return p


def test_installed_app_flow_end_to_end_with_scripted_browser(srv, client_secrets, vtt, capsys):
    browser = ScriptedBrowser()
    webbrowser.register("vidtrans-scripted", None, browser)
    path = youtube_auth.authorize(client_secrets, console=False, browser="vidtrans-scripted", timeout=20)
    for t in browser.threads:
        t.join(10)
    (url,) = browser.opened
    q = {k: v[0] for k, v in __import__("urllib.parse").parse.parse_qs(url.split("?", 1)[1]).items()}
    assert q["scope"] == SCOPE  # exactly youtube.force-ssl, nothing else
    assert q["code_challenge_method"] == "S256" and q["access_type"] == "offline"
    assert q["redirect_uri"].startswith("http://localhost:")
    status, landed, text = browser.landed[0]
    assert status == 200 and landed.startswith(q["redirect_uri"]) and "authorised" in text
    assert srv.token_grants == ["authorization_code"]  # PKCE verifier matched the challenge

    assert path == youtube_auth.token_path() and stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["refresh_token"] in srv.refresh_tokens and saved["scopes"] == [SCOPE]
    assert saved["token_uri"] == srv.token_uri
    out = capsys.readouterr().out
    assert saved["refresh_token"] not in out and saved["token"] not in out and srv.client_secret not in out
    # and the stored authorisation publishes
    assert upload.publish(VID, vtt, "en", options=opts()).action == "inserted"


def test_console_paste_back_flow(srv, client_secrets):
    printed: list[str] = []

    def user_pastes(prompt: str) -> str:
        auth_url = next(line for line in printed[-1].splitlines() if line.startswith("http"))
        r = requests.get(auth_url, allow_redirects=False, timeout=10)  # the browser lands on an unreachable page
        assert r.status_code == 302
        return r.headers["Location"]  # ...whose address the user copies back

    path = youtube_auth.authorize(client_secrets, console=True, input_fn=user_pastes, print_fn=printed.append)
    assert "localhost:8085" in printed[-1]
    assert json.loads(path.read_text())["refresh_token"] in srv.refresh_tokens
    assert srv.token_grants == ["authorization_code"]

    # a pasted address from another attempt (different state) is refused
    def wrong(prompt: str) -> str:
        return "http://localhost:8085/?state=someone-else&code=4/x&scope=" + SCOPE

    with pytest.raises(youtube_auth.AuthenticationError, match="state"):
        youtube_auth.authorize(client_secrets, console=True, input_fn=wrong, print_fn=printed.append)


def test_consent_without_the_youtube_scope_is_refused(srv, client_secrets):
    srv.grant_scope = "openid"  # the user unticked the YouTube box on the consent screen
    browser = ScriptedBrowser()
    webbrowser.register("vidtrans-scripted-2", None, browser)
    with pytest.raises(youtube_auth.AuthenticationError, match="did not grant .*youtube.force-ssl"):
        youtube_auth.authorize(client_secrets, console=False, browser="vidtrans-scripted-2", timeout=20)
    assert not youtube_auth.token_path().exists()


def test_missing_token_headless_never_prompts(srv, vtt, monkeypatch):
    youtube_auth.token_path().unlink()
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("headless run prompted"))
    with pytest.raises(ReauthorizationRequiredError, match="no YouTube authorisation found"):
        upload.publish(VID, vtt, "en", options=opts())
    assert srv.requests == []


def test_scope_constant():
    assert youtube_auth.SCOPES == ("https://www.googleapis.com/auth/youtube.force-ssl",)
