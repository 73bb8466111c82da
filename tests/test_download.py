"""Download stage: real yt-dlp (generic extractor) and real ffmpeg against a loopback HTTP server.

Nothing here contacts any address but 127.0.0.1.  Media is made with ffmpeg at
test time from the pyannote sample (real speech).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import ffmpeg, run_notebook
from httpfixtures import LoopbackServer, free_port, http_server, write_html_page, write_rss_feed  # noqa: F401

pytest.importorskip("yt_dlp")

from vidtrans import download as dl  # noqa: E402
from vidtrans.errors import MediaError, MediaNotFoundError  # noqa: E402
from vidtrans.schema import Media, Transcript  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def clips(sample_wav: Path, media_dir: Path) -> dict[str, Path]:
    """Two short talks cut from the real speech sample (video + AAC), and a video without audio."""
    out = {}
    for name, start, dur in (("a", 0, 4), ("b", 10, 6)):
        p = media_dir / f"clip_{name}.mp4"
        if not p.exists():
            ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x90:r=5", "-ss", str(start), "-t", str(dur), "-i", str(sample_wav),
                   "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "64k", "-pix_fmt", "yuv420p", str(p))
        out[name] = p
    mute = media_dir / "mute.mp4"
    if not mute.exists():
        ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x90:r=5", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
               "-pix_fmt", "yuv420p", str(mute))
    out["mute"] = mute
    return out


YT_AUTO_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.000 --> 00:00:02.000 align:start position:0%
good<00:00:00.400><c> morning</c><00:00:00.900><c> everyone</c>

00:00:02.000 --> 00:00:02.010 align:start position:0%
good morning everyone
 

00:00:02.010 --> 00:00:04.000 align:start position:0%
good morning everyone
welcome<00:00:02.500><c> to</c><00:00:02.800><c> the</c><00:00:03.100><c> talk</c>
"""

PLAIN_VTT = """WEBVTT

00:00:00.000 --> 00:00:01.500
hello there

00:00:01.500 --> 00:00:03.000
general kenobi
"""


@pytest.fixture
def site(http_server: LoopbackServer, clips, sample_video: Path) -> LoopbackServer:
    """talk.mp4 (30 s), a.mp4, b.mp4, an HTML page with two <video>s, an RSS feed, text, captions."""
    srv = http_server
    srv.route("talk.mp4", sample_video)
    srv.route("a.mp4", clips["a"])
    srv.route("b.mp4", clips["b"])
    srv.route("mute.mp4", clips["mute"])
    write_html_page(srv.root / "page.html", ["a.mp4", "b.mp4"], title="Two talks")
    write_html_page(srv.root / "one.html", ["a.mp4"], title="One talk", tracks={"a.mp4": {"en": "a.en.vtt"}})
    write_html_page(srv.root / "auto.html", ["b.mp4"], title="Auto", tracks={"b.mp4": {"en": "b.en.vtt"}})
    srv.write("a.en.vtt", PLAIN_VTT)
    srv.write("b.en.vtt", YT_AUTO_VTT)
    srv.write("nomedia.html", "<!DOCTYPE html><html><head><title>blog</title></head><body><p>no video here</p></body></html>")
    srv.write("notes.txt", "these are meeting notes, not a recording\n")
    utc = dt.timezone.utc
    write_rss_feed(srv.root / "feed.xml", [
        {"url": srv.url("a.mp4"), "title": "Episode A", "duration": 4, "date": dt.datetime(2024, 1, 2, tzinfo=utc), "guid": "ep-a"},
        {"url": srv.url("b.mp4"), "title": "Episode B", "duration": 6, "date": dt.datetime(2024, 3, 5, tzinfo=utc), "guid": "ep-b"},
        {"url": srv.url("talk.mp4"), "title": "Episode C", "duration": 30, "date": dt.datetime(2024, 6, 9, tzinfo=utc), "guid": "ep-c"},
    ], title="Loopback podcast")
    return srv


@pytest.fixture
def opts(tmp_path: Path) -> dl.DownloadOptions:
    return dl.DownloadOptions(cache_dir=tmp_path / "cache", retries=2, backoff_base=0.001, backoff_max=0.01, workers=2, timeout=10)


def _gets(srv: LoopbackServer, path: str) -> list:
    return [r for r in srv.requests if r.path == "/" + path and r.method == "GET"]


# --------------------------------------------------------------------------- single file
def test_fetch_single_file_extracts_16k_mono_wav(site, opts, sample_video):
    import soundfile as sf

    from vidtrans.audio import load_audio, probe

    events: list[dict] = []
    url = site.url("talk.mp4")
    media = dl.fetch(url, opts, progress=events.append)

    assert media.extractor == "generic" and media.id == "talk"
    assert media.webpage_url == url and media.source == url
    audio = Path(media.audio_path)
    assert audio.is_file() and audio.suffix == ".wav"
    assert opts.cache_dir in audio.parents
    info = sf.info(str(audio))
    assert (info.samplerate, info.channels) == (16000, 1)
    ref = probe(sample_video).duration
    assert media.duration == pytest.approx(ref, abs=0.1)
    assert info.duration == pytest.approx(ref, abs=0.1)
    # same speech as the source: the decoded signals line up sample for sample (AAC vs PCM, so loosely)
    a, b = load_audio(audio), load_audio(sample_video)
    n = min(a.size, b.size)
    corr = float((a[:n] * b[:n]).sum() / ((a[:n] ** 2).sum() * (b[:n] ** 2).sum()) ** 0.5)
    assert corr > 0.95
    # sidecar written, with the record
    side = json.loads((audio.parent / "media.json").read_text())
    assert side["media"]["id"] == "talk" and side["audio_file"] == audio.name
    assert not (audio.parent / ".work").exists()
    # yt-dlp progress dicts were relayed, tagged with the source
    downloading = [e for e in events if e.get("status") == "downloading"]
    finished = [e for e in events if e.get("status") == "finished"]
    assert downloading and finished and all(e["source"] == url for e in events)
    assert finished[-1]["total_bytes"] == sample_video.stat().st_size
    assert "info_dict" not in finished[-1]


def test_keep_best_audio_stream_copies_without_reencoding(site, tmp_path):
    from vidtrans.audio import probe

    o = dl.DownloadOptions(cache_dir=tmp_path / "c", audio_format="best", retries=0)
    media = dl.fetch(site.url("a.mp4"), o)
    p = probe(media.audio_path)
    assert Path(media.audio_path).suffix == ".m4a"
    assert p.audio_codec == "aac" and not p.has_video


def test_second_run_is_a_cache_hit_without_network(site, opts):
    url = site.url("talk.mp4")
    first = dl.fetch(url, opts)
    n_requests = len(site.requests)
    site.stop()  # connections are now refused
    again = dl.fetch(url, dl.DownloadOptions(cache_dir=opts.cache_dir, retries=0))
    assert again.audio_path == first.audio_path and again.id == first.id
    events: list[dict] = []
    dl.fetch(url, opts, progress=events.append)
    assert [e["status"] for e in events] == ["cached"]
    meta = dl.info(url, opts)  # info() is answered from the cache too
    assert meta.duration == first.duration
    assert dl.cached(url, opts) == dataclass_replace(first, source=url)
    # the cache is keyed on (extractor, id), not on the URL
    assert Path(first.audio_path).parent.parent.name == "generic"
    assert len(site.requests) == n_requests
    # without the cache the same URL needs the (stopped) server
    with pytest.raises(dl.NetworkError):
        dl.fetch(url, dl.DownloadOptions(cache_dir=opts.cache_dir, retries=0, use_cache=False))


def dataclass_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_same_file_name_on_two_sites_does_not_collide(site, opts, tmp_path, clips):
    other_root = tmp_path / "other"
    other_root.mkdir()
    with LoopbackServer(other_root) as other:
        other.route("talk.mp4", clips["b"])
        m1 = dl.fetch(site.url("talk.mp4"), opts)
        m2 = dl.fetch(other.url("talk.mp4"), opts)
    assert m1.id == m2.id == "talk"
    assert m1.audio_path != m2.audio_path
    assert m2.duration == pytest.approx(6.0, abs=0.2)


# --------------------------------------------------------------------------- transient faults
def test_truncated_body_is_retried_and_resumed(site, opts):
    site.add_fault("talk.mp4", truncate=60_000, times=3, methods=("GET",))
    media = dl.fetch(site.url("talk.mp4"), opts)
    assert Path(media.audio_path).is_file()
    gets = _gets(site, "talk.mp4")
    assert sum(1 for r in gets if r.fault and r.fault.startswith("truncate")) == 3
    assert any(r.status == 206 and r.headers.get("Range", "").startswith("bytes=") for r in gets), "resumed with Range"


def test_truncated_body_retries_exhausted_and_partial_is_not_cached(site, opts):
    url = site.url("talk.mp4")
    site.add_fault("talk.mp4", truncate=20_000, times=None, methods=("GET",))
    with pytest.raises(dl.RetriesExhaustedError) as ei:
        dl.fetch(url, opts)
    err = ei.value
    assert err.url == url and "cut short" in str(err) and url in str(err)
    assert err.attempts == opts.retries + 1 and isinstance(err, dl.NetworkError)
    assert dl.cached(url, opts) is None
    assert not list(Path(opts.cache_dir).rglob("media.json"))
    assert list(Path(opts.cache_dir).rglob("*.part")), "the partial download is kept for resuming"
    # once the server behaves, the next run resumes and completes
    site.clear_faults()
    media = dl.fetch(url, opts)
    assert Path(media.audio_path).is_file() and dl.cached(url, opts) is not None
    assert not list(Path(opts.cache_dir).rglob("*.part"))


def test_http_429_then_200(site, opts):
    site.add_fault("talk.mp4", status=429, times=1, headers={"Retry-After": "0"})
    media = dl.fetch(site.url("talk.mp4"), opts)
    assert Path(media.audio_path).is_file()
    statuses = [r.status for r in _gets(site, "talk.mp4")]
    assert statuses[0] == 429 and 200 in statuses[1:]


def test_http_5xx_then_success_and_persistent_5xx(site, opts):
    site.add_fault("a.mp4", status=503, times=2)
    assert Path(dl.fetch(site.url("a.mp4"), opts).audio_path).is_file()
    site.add_fault("b.mp4", status=500, times=None, body=b"boom")
    with pytest.raises(dl.RetriesExhaustedError, match="HTTP 500"):
        dl.fetch(site.url("b.mp4"), opts)
    assert len(_gets(site, "b.mp4")) == opts.retries + 1


def test_connection_reset_is_retried(site, opts):
    site.add_fault("a.mp4", reset=True, times=1)
    assert Path(dl.fetch(site.url("a.mp4"), opts).audio_path).is_file()
    assert any(r.fault == "reset" for r in site.requests)


def test_connection_refused(opts):
    url = f"http://127.0.0.1:{free_port()}/talk.mp4"
    with pytest.raises(dl.RetriesExhaustedError, match="connection refused") as ei:
        dl.fetch(url, opts)
    assert ei.value.url == url and isinstance(ei.value.last, dl.NetworkError)


def test_backoff_is_exponential_capped_jittered_and_honours_retry_after():
    import random

    o = dl.DownloadOptions(backoff_base=1.0, backoff_max=8.0, jitter=0.0)
    assert [o.backoff(i) for i in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert o.backoff(0, retry_after=5.0) == 5.0
    assert o.backoff(0, retry_after=100.0) == 8.0  # Retry-After is capped too
    j = dl.DownloadOptions(backoff_base=1.0, backoff_max=8.0, jitter=0.5)
    rng = random.Random(1)
    samples = [j.backoff(2, rng=rng) for _ in range(200)]
    assert min(samples) >= 2.0 and max(samples) <= 4.0 and len(set(samples)) > 100


# --------------------------------------------------------------------------- permanent faults
def test_404_is_not_retried(site, opts):
    url = site.url("missing.mp4")
    with pytest.raises(dl.NotFoundError, match="404") as ei:
        dl.fetch(url, opts)
    assert ei.value.url == url and url in str(ei.value) and not ei.value.retryable
    assert len(_gets(site, "missing.mp4")) == 1
    assert isinstance(ei.value, MediaError)


def test_text_plain_is_not_media(site, opts):
    with pytest.raises(dl.NotMediaError, match="text/plain"):
        dl.fetch(site.url("notes.txt"), opts)
    with pytest.raises(dl.NotMediaError, match="no video or audio"):
        dl.fetch(site.url("nomedia.html"), opts)
    # a text body served under a media name is caught after download, by probing
    site.write("fake.mp4", "not really a video\n")
    with pytest.raises(dl.NotMediaError, match="no audio"):
        dl.fetch(site.url("fake.mp4"), opts)
    with pytest.raises(dl.NotMediaError, match="no audio"):
        dl.fetch(site.url("mute.mp4"), opts)
    assert not list(Path(opts.cache_dir).rglob("media.json"))


def test_unsupported_scheme_makes_no_request(site, opts):
    with pytest.raises(dl.UnsupportedURLError, match="ftp://"):
        dl.fetch(f"ftp://127.0.0.1:{site.port}/talk.mp4", opts)
    assert site.requests == []


def test_playlist_given_to_fetch(site, opts):
    with pytest.raises(dl.PlaylistError, match="2 entries"):
        dl.fetch(site.url("page.html"), opts)


def test_classify_site_errors_from_real_ytdlp_exceptions():
    """The messages YouTube's extractor raises (private, age gate, geo, removed) map to specific classes."""
    import yt_dlp.utils as yu
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.networking.common import Response

    url = "https://www.youtube.com/watch?v=xxxxxxxxxxx"

    def wrapped(exc):
        try:
            raise exc
        except Exception:
            return yu.DownloadError(f"ERROR: {exc}", sys.exc_info())

    cases = [
        (yu.ExtractorError("Private video. Sign in if you've been granted access to this video", expected=True), dl.PrivateVideoError),
        (yu.ExtractorError("Join this channel to get access to members-only content like this video", expected=True), dl.PrivateVideoError),
        (yu.ExtractorError("Sign in to confirm your age. This video may be inappropriate for some users.", expected=True), dl.AgeRestrictedError),
        (yu.GeoRestrictedError("The uploader has not made this video available in your country", countries=["DE"]), dl.GeoBlockedError),
        (yu.ExtractorError("Video unavailable. This video has been removed by the uploader", expected=True), dl.NotFoundError),
        (yu.UnsupportedError("gopher://x"), dl.UnsupportedURLError),
    ]
    for exc, cls in cases:
        got = dl.classify(url if cls is not dl.UnsupportedURLError else "gopher://x", wrapped(exc))
        assert type(got) is cls, (exc, got)
        assert not got.retryable
    resp = Response(io.BytesIO(b""), url, {"Retry-After": "7"}, status=429)
    err = dl.classify(url, wrapped(HTTPError(resp)))
    assert type(err) is dl.NetworkError and err.retryable and err.retry_after == 7.0
    resp = Response(io.BytesIO(b""), url, {}, status=403)
    assert type(dl.classify(url, wrapped(HTTPError(resp)))) is dl.AccessDeniedError


# --------------------------------------------------------------------------- local files
def test_local_path_and_file_url(sample_video, opts, tmp_path):
    m1 = dl.fetch(str(sample_video), opts)
    m2 = dl.fetch(sample_video.as_uri(), opts)
    assert m1.extractor == m2.extractor == "local"
    assert m1.id == m2.id and len(m1.id) == 16  # content hash prefix
    assert m1.audio_path == m2.audio_path == str(sample_video.resolve())
    assert m2.source == sample_video.as_uri()
    assert m1.duration == pytest.approx(30, abs=1)
    assert not Path(opts.cache_dir).exists() or not any(Path(opts.cache_dir).iterdir()), "local files are not copied"
    copy = tmp_path / "-odd name.mp4"
    copy.write_bytes(sample_video.read_bytes())
    assert dl.fetch(str(copy), opts).id == m1.id  # same content, same id
    with pytest.raises(dl.UnsupportedURLError):
        dl.fetch(sample_video.as_uri(), dl.DownloadOptions(cache_dir=opts.cache_dir, allow_file_urls=False))
    with pytest.raises(MediaNotFoundError):
        dl.fetch(str(tmp_path / "nope.mp4"), opts)
    listed = dl.expand(str(sample_video.parent), opts)  # a directory: its media files, mute.mp4 skipped
    names = {Path(m.audio_path).name for m in listed}
    assert "talk.mp4" in names and "clip_a.mp4" in names and "mute.mp4" not in names
    assert all(m.extractor == "local" for m in listed)


def test_is_url():
    assert dl.is_url("https://youtu.be/x") and dl.is_url("file:///tmp/a.mp4") and dl.is_url("http://127.0.0.1:1/a")
    assert not dl.is_url("/tmp/a.mp4") and not dl.is_url("C:\\talks\\a.mp4") and not dl.is_url("talk.mp4")


# --------------------------------------------------------------------------- playlists
def test_expand_html_page_with_video_tags(site, opts):
    entries = dl.expand(site.url("page.html"), opts)
    assert all(isinstance(e, Media) and e.audio_path is None for e in entries)
    assert [e.source for e in entries] == [site.url("a.mp4"), site.url("b.mp4")]
    assert all(e.title.startswith("Two talks") for e in entries)
    assert [r.path for r in site.requests if r.method == "GET"] == ["/page.html"], "flat: no request per entry"
    result = dl.fetch_many(entries, opts)
    assert [i.ok for i in result] == [True, True]
    assert [round(m.duration) for m in result.media] == [4, 6]


def test_expand_rss_feed_with_limit_and_filters(site, opts):
    feed = site.url("feed.xml")
    entries = dl.expand(feed, opts)
    assert [e.title for e in entries] == ["Episode A", "Episode B", "Episode C"]
    assert [e.upload_date for e in entries] == ["20240102", "20240305", "20240609"]
    assert [e.duration for e in entries] == [4.0, 6.0, 30.0]
    assert entries[0].webpage_url == site.url("a.mp4")

    def titles(**kw):
        return [e.title for e in dl.expand(feed, dl.DownloadOptions(cache_dir=opts.cache_dir, **kw))]

    assert titles(limit=2) == ["Episode A", "Episode B"]
    assert titles(date_after="2024-03-01") == ["Episode B", "Episode C"]
    assert titles(date_before=dt.date(2024, 3, 5)) == ["Episode A", "Episode B"]
    assert titles(min_duration=5) == ["Episode B", "Episode C"]
    assert titles(max_duration=10, limit=1) == ["Episode A"]
    feed_info = dl.info(feed, opts)
    assert feed_info.title == "Loopback podcast" and feed_info.duration == 40.0


def test_fetch_many_one_failure_does_not_stop_the_others(site, opts):
    sources = [site.url("a.mp4"), site.url("missing.mp4"), site.url("b.mp4"), site.url("notes.txt"), site.url("a.mp4")]
    result = dl.fetch_many(sources, opts)
    assert [i.source for i in result] == sources
    assert [i.ok for i in result] == [True, False, True, False, True]
    assert isinstance(result.items[1].error, dl.NotFoundError)
    assert isinstance(result.items[3].error, dl.NotMediaError)
    assert result.items[0].media == result.items[4].media  # repeated source fetched once
    summary = result.summary()
    assert summary.splitlines()[0].startswith("3 of 5 downloaded, 2 failed")
    assert "NotFoundError" in summary and site.url("missing.mp4") in summary and "text/plain" in summary
    assert len(_gets(site, "a.mp4")) == 2  # extraction probe + download, once


def test_fetch_all_expands_sources_and_keeps_going(site, opts):
    sources = [site.url("feed.xml"), site.url("missing.xml"), site.url("a.mp4")]
    result = dl.fetch_all(sources, dl.DownloadOptions(cache_dir=opts.cache_dir, retries=0, limit=2))
    assert [i.ok for i in result] == [False, True, True, True]
    assert isinstance(result.items[0].error, dl.NotFoundError) and result.items[0].source == site.url("missing.xml")
    assert {round(m.duration) for m in result.media} == {4, 6}
    assert result.summary().startswith("3 of 4 downloaded, 1 failed")


def test_fetch_many_runs_bounded_workers(site, opts):
    names = ("a.mp4", "b.mp4")
    for name in names:  # answer each media request late so that overlapping requests can be seen
        site.add_fault(name, delay=0.25, times=None, methods=("GET",))
    serial = dl.fetch_many([site.url(n) for n in names], dl.DownloadOptions(cache_dir=opts.cache_dir / "1", workers=1))
    # yt-dlp may abandon its probe of a file while the server still answers it, so count
    # distinct files being served at once: that is how many items were worked on together
    assert all(i.ok for i in serial) and site.max_paths_in_flight == 1
    site.clear_log()
    parallel = dl.fetch_many([site.url(n) for n in names], dl.DownloadOptions(cache_dir=opts.cache_dir / "2", workers=2))
    assert all(i.ok for i in parallel) and site.max_paths_in_flight == 2
    assert [i.media.id for i in parallel] == ["a", "b"]


# --------------------------------------------------------------------------- captions
def test_fetch_captions_from_page_subtitles(site, opts):
    t = dl.fetch_captions(site.url("one.html"), ("en",), opts)
    assert isinstance(t, Transcript)
    assert [s.text for s in t.segments] == ["hello there", "general kenobi"]
    assert t.segments[1].start == 1.5 and t.language == "en" and t.engine == "captions:subtitles"
    assert dl.fetch_captions(site.url("one.html"), ("de",), opts) is None


def test_fetch_captions_youtube_style_automatic_captions(site, opts):
    t = dl.fetch_captions(site.url("auto.html"), ["en"], opts)
    assert t.text == "good morning everyone welcome to the talk"
    words = t.words
    assert [w.text for w in words][:3] == [" good", " morning", " everyone"]
    assert [w.start for w in words] == [0.0, 0.4, 0.9, 2.01, 2.5, 2.8, 3.1]
    assert words[2].end == 2.0 and words[-1].end == 4.0


def test_captions_to_transcript_dedupes_rolling_lines(tmp_path):
    p = tmp_path / "roll.vtt"
    p.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nfirst line\n\n"
                 "00:00:02.000 --> 00:00:04.000\nfirst line\nsecond line\n\n"
                 "00:00:04.000 --> 00:00:06.000\nsecond line\nthird line\n")
    t = dl.captions_to_transcript(p)
    assert [s.text for s in t.segments] == ["first line", "second line", "third line"]


def test_local_sidecar_captions(sample_video, tmp_path):
    video = tmp_path / "talk.mp4"
    video.write_bytes(sample_video.read_bytes())
    assert dl.fetch_captions(str(video)) is None
    (tmp_path / "talk.en.vtt").write_text(PLAIN_VTT)
    t = dl.fetch_captions(str(video), ("en",))
    assert t.text == "hello there general kenobi" and t.meta["captions"]["kind"] == "sidecar"


# --------------------------------------------------------------------------- options, progress
def test_options_are_validated():
    for bad in ({"retries": -1}, {"workers": 0}, {"jitter": 2.0}, {"date_after": "last tuesday"}, {"audio_format": "../x"}):
        with pytest.raises(ValueError):
            dl.DownloadOptions(**bad)
    assert "cookies" not in repr(dl.DownloadOptions(cookies_file="/secret/cookies.txt"))


def test_tqdm_hook_draws_a_bytes_bar():
    buf = io.StringIO()
    hook = dl.tqdm_hook(file=buf, mininterval=0, ascii=True)
    src = "http://127.0.0.1:1/talk.mp4"
    hook({"status": "downloading", "downloaded_bytes": 1000, "total_bytes": 4096, "source": src})
    bar = hook.bars[src]
    assert bar.n == 1000 and bar.total == 4096 and bar.unit == "B"
    hook({"status": "downloading", "downloaded_bytes": 3000, "total_bytes": 4096, "source": src})
    assert bar.n == 3000
    hook({"status": "finished", "downloaded_bytes": 4096, "total_bytes": 4096, "source": src})
    assert bar.n == 4096
    hook({"status": "postprocessed", "source": src})
    assert src not in hook.bars
    hook({"status": "cached", "source": "other"})
    hook.close()
    out = buf.getvalue()
    assert "talk.mp4: 100%" in out and "4.00k/4.00k" in out and "B/s" in out and "done]" in out and "other" in out and "cached]" in out


# --------------------------------------------------------------------------- CLI end to end
def _cli():
    if importlib.util.find_spec("vidtrans.cli") is None:
        pytest.skip("vidtrans.cli is not there yet")
    from vidtrans import cli

    return cli


def test_cli_download_feed(site, tmp_path, capsys):
    cli = _cli()
    out = tmp_path / "dl"
    rc = cli.main(["-q", "download", site.url("feed.xml"), "--out", str(out), "--limit", "2", "--workers", "2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    wavs = sorted(out.rglob("audio.wav"))
    assert len(wavs) == 2
    assert "2 of 2 downloaded" in captured.err
    rc = cli.main(["-q", "download", site.url("feed.xml"), "--info"])
    captured = capsys.readouterr()
    assert rc == 0 and "Episode C" in captured.out and len(list(out.rglob("audio.wav"))) == 2


def test_cli_download_reports_failures(site, tmp_path, capsys):
    cli = _cli()
    rc = cli.main(["-q", "download", site.url("a.mp4"), site.url("missing.mp4"), "--out", str(tmp_path / "dl")])
    captured = capsys.readouterr()
    assert rc != 0 and site.url("missing.mp4") in captured.err and "not found" in captured.err


@pytest.mark.slow
def test_cli_run_url_end_to_end(site, tmp_path, monkeypatch, capsys, sample_reference_text):
    cli = _cli()
    monkeypatch.setenv("VIDTRANS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    rc = cli.main(["-q", "run", site.url("talk.mp4"), "--out", str(out), "--no-diarize", "--model", "tiny.en",
                   "--beam-size", "1", "--language", "en", "--formats", "vtt,json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    vtts = list(out.glob("*.vtt"))
    assert len(vtts) == 1 and vtts[0].read_text().startswith("WEBVTT")
    t = Transcript.load(next(out.glob("*.json")))
    ref = set(sample_reference_text.lower().split())
    hyp = set(t.text.lower().replace(",", " ").replace(".", " ").split())
    assert len(ref & hyp) / len(ref) > 0.5  # real speech was transcribed from the downloaded audio
    assert list((tmp_path / "cache").rglob("audio.wav")), "downloaded through the cache"


# --------------------------------------------------------------------------- notebook
def _run_notebook(tmp_path: Path, parameters: dict) -> dict:
    nb = ROOT / "notebooks" / "01_download.ipynb"
    out = tmp_path / "01_download.out.ipynb"
    env_before = os.environ.get("VIDTRANS_CACHE")
    os.environ["VIDTRANS_CACHE"] = str(tmp_path / "nbcache")
    try:
        run_notebook(nb, out, timeout=240, **parameters)
    finally:
        if env_before is None:
            os.environ.pop("VIDTRANS_CACHE", None)
        else:
            os.environ["VIDTRANS_CACHE"] = env_before
    return json.loads(out.read_text())


def _outputs_text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            parts.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_notebook_headless_against_loopback_feed(site, tmp_path):
    nb = _run_notebook(tmp_path, {"source": site.url("feed.xml"), "limit": 2, "download": True})
    text = _outputs_text(nb)
    assert "Episode A" in text and "Episode B" in text and "Episode C" not in text
    assert "2 of 2 downloaded" in text
    assert len(list((tmp_path / "nbcache").rglob("audio.wav"))) == 2
    assert any(o.get("data", {}).get("image/png") for c in nb["cells"] for o in c.get("outputs", []))


def test_notebook_default_parameters_run_offline(tmp_path, sample_wav):
    nb = _run_notebook(tmp_path, {})
    assert "1 of 1 downloaded" in _outputs_text(nb)


@pytest.mark.slow
def test_cli_run_feed_captions_each_entry(site, tmp_path, monkeypatch, capsys):
    """`vidtrans run FEED --limit 2`: the feed is expanded and every entry gets its own captions."""
    cli = _cli()
    monkeypatch.setenv("VIDTRANS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    rc = cli.main(["-q", "run", site.url("feed.xml"), "--limit", "2", "--out", str(out), "--no-diarize",
                   "--model", "tiny.en", "--beam-size", "1", "--formats", "vtt"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "playlist with 2 entries" in captured.err
    vtts = sorted(out.glob("*.vtt"))
    assert len(vtts) == 2 and all(v.read_text().startswith("WEBVTT") for v in vtts)
    assert len(list((tmp_path / "cache").rglob("audio.wav"))) == 2


@pytest.mark.slow
def test_make_demo_url_path(site, tmp_path, monkeypatch, capsys):
    """`make demo URL=...` runs `vidtrans demo --url URL`: the main job on that URL instead of the sample."""
    cli = _cli()
    monkeypatch.setenv("VIDTRANS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    rc = cli.main(["-q", "demo", "--url", site.url("talk.mp4"), "--out", str(out), "--no-diarize",
                   "--model", "tiny.en", "--beam-size", "1", "--formats", "vtt"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "demo input" not in captured.out  # the bundled sample was not used
    vtts = list(out.glob("*.vtt"))
    assert len(vtts) == 1 and "-->" in vtts[0].read_text()
