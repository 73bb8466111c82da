"""`vidtrans upload`, `vidtrans run --upload`, translated tracks and the 06_upload notebook (fake servers on 127.0.0.1)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("googleapiclient")
pytest.importorskip("google_auth_oauthlib")

from fake_youtube import ME, FakeGeminiTranslator, FakeYouTube  # noqa: E402
from vidtrans import captions, upload, youtube_auth  # noqa: E402
from vidtrans.cli import main  # noqa: E402
from vidtrans.schema import Media, Segment, Transcript  # noqa: E402

VID = "dQw4w9WgXcQ"
ROOT = Path(__file__).resolve().parents[1]
GEM_KEY = "AIzaFakeGeminiKey-translate-0123"

SEGMENTS = (
    Segment(0.5, 2.0, "Hello and welcome.", speaker="SPEAKER_00"),
    Segment(2.4, 4.1, "Thanks for having me.", speaker="SPEAKER_01"),
    Segment(5.0, 7.5, "This is a test of the captions.", speaker="SPEAKER_00"),
)


@pytest.fixture
def srv(tmp_path, monkeypatch):
    with FakeYouTube(videos={VID: ME}) as s:
        monkeypatch.setenv("VIDTRANS_YOUTUBE_ROOT", s.url)
        monkeypatch.setenv("VIDTRANS_OAUTH_TOKEN_URI", s.token_uri)
        monkeypatch.setenv("VIDTRANS_YOUTUBE_TOKEN", str(tmp_path / "cfg" / "youtube_token.json"))
        monkeypatch.delenv("VIDTRANS_YOUTUBE_LEDGER", raising=False)
        p = youtube_auth.token_path()
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(s.authorized_user()))
        p.chmod(0o600)
        yield s


@pytest.fixture
def gemini(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDTRANS_SECRETS_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("GEMINI_API_KEY", GEM_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with FakeGeminiTranslator(GEM_KEY) as g:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", g.url)
        yield g


def youtube_media(audio_path: str | None = None) -> Media:
    return Media(id=VID, extractor="youtube", title="Talk", webpage_url=f"https://www.youtube.com/watch?v={VID}",
                 audio_path=audio_path)


def write_run_dir(d: Path) -> Path:
    """What `vidtrans run` writes for a YouTube video: <stem>.json (with media) and <stem>.vtt."""
    t = Transcript(segments=SEGMENTS, language="en", media=youtube_media(), duration=8.0)
    captions.write(t, d / f"Talk-{VID}", formats=("vtt", "json"))
    return d


# --------------------------------------------------------------------------- CLI
def test_cli_upload_prints_one_line_per_track(srv, tmp_path, capsys):
    d = write_run_dir(tmp_path / "out")
    vtt = str(d / f"Talk-{VID}.vtt")
    assert main(["upload", f"https://youtu.be/{VID}", vtt, "--language", "en", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"would insert {VID} en 'vidtrans' (400 units)" and "450 units" in out
    assert srv.requests == []

    assert main(["upload", f"https://youtu.be/{VID}", vtt, "--language", "en"]) == 0
    (track,) = srv.standard_tracks(VID)
    assert capsys.readouterr().out == f"inserted {track.id}\n"
    assert main(["upload", VID, vtt, "--language", "en"]) == 0
    assert capsys.readouterr().out == f"unchanged {track.id}\n"

    assert main(["upload", "--list", VID]) == 0
    assert capsys.readouterr().out.startswith(f"{track.id}\ten\tstandard\tvidtrans\t")
    assert main(["upload", "--download", track.id, "--format", "srt", "-o", str(tmp_path / "dl.srt")]) == 0
    assert (tmp_path / "dl.srt").read_text().startswith("1\n00:00:00,500 --> ")
    assert main(["upload", "--delete", track.id]) == 0
    assert srv.standard_tracks(VID) == []


def test_cli_auth_console_flow(srv, tmp_path, monkeypatch, capsys):
    import requests

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake token endpoint is plain http (tests only)
    youtube_auth.token_path().unlink()
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps(srv.client_secrets()))

    def user(prompt: str) -> str:
        url = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("http"))
        return requests.get(url, allow_redirects=False, timeout=10).headers["Location"]

    monkeypatch.setattr("builtins.input", user)
    assert main(["auth", "youtube", "--client-secrets", str(secrets_file), "--console"]) == 0
    assert capsys.readouterr().out == f"authorised; token stored in {youtube_auth.token_path()}\n"
    assert json.loads(youtube_auth.token_path().read_text())["refresh_token"] in srv.refresh_tokens
    assert main(["auth", "youtube", "--client-secrets", str(tmp_path / "missing.json")]) == 2
    assert "Desktop app" in capsys.readouterr().err


def test_cli_errors_are_one_line_with_exit_codes(srv, tmp_path, capsys):
    bad = tmp_path / "bad.vtt"
    bad.write_text("WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nbackwards\n")
    assert main(["upload", VID, str(bad), "--language", "en"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidtrans: error: ") and "end_before_start" in err and len(err.splitlines()) == 1
    assert srv.requests == []
    good = write_run_dir(tmp_path / "o") / f"Talk-{VID}.vtt"
    assert main(["upload", VID, str(good), "--language", "en", "--quota-budget", "100"]) == 5
    assert "budget" in capsys.readouterr().err
    info = srv.authorized_user()  # expired access token; its refresh token revoked
    srv.revoked.add(info["refresh_token"])
    youtube_auth.token_path().write_text(json.dumps(info))
    assert main(["upload", VID, str(good), "--language", "en"]) == 5
    assert "7 days" in capsys.readouterr().err


def test_cli_upload_from_run_dir_with_gemini_translation(srv, gemini, tmp_path, capsys):
    d = write_run_dir(tmp_path / "out")
    assert main(["upload", "--from", str(d), "--translate", "de", "--name", "Talk captions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"translated de: {d / f'Talk-{VID}.de.vtt'}"
    assert [ln.split()[0] for ln in lines[1:]] == ["inserted", "inserted"]
    tracks = {t.language: t for t in srv.standard_tracks(VID)}
    assert set(tracks) == {"en", "de"} and {t.name for t in tracks.values()} == {"Talk captions"}
    de = tracks["de"].content.decode()
    assert captions.validate_vtt(de).ok
    # same caption rules and the source segments' times and speakers
    assert "00:00:00.500 --> " in de and "<v Speaker 1>Hallo und willkommen." in de
    assert "<v Speaker 2>Danke für dass ich." in de and "00:00:05.000 --> 00:00:07.500\n<v Speaker 1>Dies ist ein Test\nvon die Untertitel." in de
    assert '"id": 2' in gemini.prompts[0] and "into de" in gemini.prompts[0]


def test_gemini_translation_incomplete_answer_is_an_error(gemini):
    from vidtrans.translate import TranslationError, translate

    gemini.drop_ids = {1}
    with pytest.raises(TranslationError, match="left out 1 of 3"):
        translate(Transcript(segments=SEGMENTS, language="en"), "de")


def test_whisper_translate_task_gives_english_offline(shared_eval, srv, tmp_path):
    """Swedish speech -> English captions with Whisper's own translate task, published as an 'en' track."""
    from vidtrans.translate import translate, write_translation

    clip = shared_eval / "asr" / "sv_nst_se10x016-08071999-1334_u0016002.wav"  # "Testar en två tre ... åtta."
    source = Transcript(language="sv", media=youtube_media(str(clip)), duration=9.0)
    en = translate(source, "en", audio=str(clip), model="base")
    assert en.language == "en" and en.meta["translation"] == "whisper" and en.meta["options"]["task"] == "translate"
    words = re.findall(r"[a-z0-9]+", " ".join(s.text for s in en.segments).lower())
    numbers = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
    found = {numbers.get(w) or (int(w) if w.isdigit() else None) for w in words} - {None}
    assert len(found & set(range(1, 9))) >= 6, en.segments
    assert not {"två", "tre", "fyra", "sju"} & set(" ".join(s.text for s in en.segments).lower().split())
    paths = write_translation(en, tmp_path / "talk", ("vtt",))
    assert paths["vtt"].name == "talk.en.vtt" and captions.validate_vtt(paths["vtt"]).ok
    r = upload.publish(VID, paths["vtt"], "en", options=upload.UploadOptions())
    assert r.action == "inserted" and srv.standard_tracks(VID)[0].language == "en"


def test_run_upload_after_captioning(srv, gemini, sample_wav, tmp_path, monkeypatch, capsys):
    """`vidtrans run URL --upload --translate de`: captions, a translated track, both published."""
    import soundfile as sf

    import vidtrans.pipeline as pipeline

    samples, sr = sf.read(sample_wav)
    clip = tmp_path / "talk.wav"
    sf.write(clip, samples[: 12 * sr], sr)  # the first 12 s (both speakers) keep the test quick

    def fake_resolve(source, options, progress=None):  # the download stage is tested elsewhere (yt-dlp fakes)
        assert upload.video_id(source) == VID
        return Media(id=VID, extractor="youtube", title="Talk", webpage_url=source, audio_path=str(clip),
                     duration=12.0, source=source), None  # (a download has no probe to pass on)

    monkeypatch.setattr(pipeline, "_resolve_source", fake_resolve)
    rc = main(["-q", "run", f"https://www.youtube.com/watch?v={VID}", "--model", "tiny.en", "--no-diarize",
               "--threads", "1", "--formats", "vtt,json", "--out", str(tmp_path / "out"), "--upload",
               "--translate", "de"])
    assert rc == 0
    out = capsys.readouterr().out
    tracks = {t.language: t for t in srv.standard_tracks(VID)}
    assert set(tracks) == {"en", "de"}
    assert f"inserted {tracks['en'].id}" in out and f"inserted {tracks['de'].id}" in out
    main_vtt = tmp_path / "out" / f"Talk-{VID}.vtt"
    assert tracks["en"].content == main_vtt.read_bytes()
    assert captions.validate_vtt(tracks["de"].content.decode()).ok
    assert (tmp_path / "out" / f"Talk-{VID}.de.vtt").read_bytes() == tracks["de"].content


def test_jobs_from_dir_skips_media_not_from_youtube(tmp_path):
    d = write_run_dir(tmp_path / "out")
    local = Transcript(segments=SEGMENTS, language="en", media=Media(id="talk", extractor="local"))
    captions.write(local, d / "talk", formats=("vtt", "json"))
    (d / f"Talk-{VID}.pt-BR.vtt").write_text((d / f"Talk-{VID}.vtt").read_text())
    jobs = upload.jobs_from_dir(d)
    assert [(j.video, Path(j.caption_file).name, j.language) for j in jobs] == [
        (VID, f"Talk-{VID}.vtt", "en"), (VID, f"Talk-{VID}.pt-BR.vtt", "pt-BR")]


# --------------------------------------------------------------------------- notebook
def test_notebook_06_headless_dry_run_then_publish_without_leaking_secrets(srv, tmp_path):
    """Papermill: the default dry run sends nothing; confirm=True publishes; no token/secret in the saved notebook."""
    from conftest import run_notebook

    nb = ROOT / "notebooks" / "06_upload.ipynb"
    d = write_run_dir(tmp_path / "out")
    out1 = tmp_path / "dry.ipynb"
    run_notebook(nb, out1, timeout=120, video=VID, caption_file=str(d / f"Talk-{VID}.vtt"), language="en")
    text1 = out1.read_text()
    assert "would insert" in text1 and srv.api_requests() == []

    out2 = tmp_path / "publish.ipynb"
    run_notebook(nb, out2, timeout=120, out_dir=str(d), dry_run=False, confirm=True)
    text2 = out2.read_text()
    (track,) = srv.standard_tracks(VID)
    assert f"inserted {track.id}" in text2 or track.id in text2
    token = json.loads(youtube_auth.token_path().read_text())
    secrets = [token["refresh_token"], token["token"], token["client_secret"], *srv.access_tokens, *srv.refresh_tokens]
    for s in secrets:
        assert s not in text1 and s not in text2
