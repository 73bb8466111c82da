"""Cloud engines through their real SDKs against fake services on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from vidtrans.errors import AuthenticationError, MediaError, QuotaExceededError, ServiceError
from vidtrans.schema import Transcript
from vidtrans.secrets import MissingSecretError
from vidtrans.transcribe import TranscribeOptions, transcribe

from fake_services import FakeAssemblyAI, FakeGemini, find_bursts

pytest.importorskip("assemblyai")
pytest.importorskip("google.genai")

AAI_KEY = "aai-0123456789abcdef-secret"
GEM_KEY = "AIzaFakeGeminiKey-0123456789"
SR = 16_000


@pytest.fixture(autouse=True)
def keys(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDTRANS_SECRETS_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", AAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEM_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


def tones(duration: float, bursts: list[tuple[float, float, float]]) -> np.ndarray:
    """Silence with sine bursts (start, length, Hz): the Gemini fake answers one segment per burst."""
    t = np.arange(int(duration * SR)) / SR
    out = np.zeros(t.size, dtype=np.float32)
    for start, length, hz in bursts:
        m = (t >= start) & (t < start + length)
        out[m] = 0.3 * np.sin(2 * np.pi * hz * t[m])
    return out


# --------------------------------------------------------------------------- AssemblyAI
@pytest.fixture
def aai(monkeypatch):
    def start(**kw):
        srv = FakeAssemblyAI(AAI_KEY, **kw).__enter__()
        monkeypatch.setenv("ASSEMBLYAI_BASE_URL", srv.url)  # the SDK's own setting, read at call time
        servers.append(srv)
        return srv

    servers: list[FakeAssemblyAI] = []
    yield start
    for s in servers:
        s.__exit__(None, None, None)


def aai_options(**extra) -> TranscribeOptions:
    return TranscribeOptions(engine="assemblyai", extra={"polling_interval": 0.01, "retry_delay": 0.01, **extra})


def test_assemblyai_upload_create_poll_complete_with_speakers(aai, sample_wav):
    srv = aai(polls_before_done=2)
    opts = aai_options(auto_chapters=True, sentiment_analysis=True)
    opts.speaker_labels = True
    opts.key_terms = ("pyannote",)
    t = transcribe(sample_wav, opts)

    assert srv.paths() == ["/v2/upload", "/v2/transcript"] + ["/v2/transcript/" + next(iter(srv.jobs))] * 3
    assert srv.uploads and next(iter(srv.uploads.values())) == sample_wav.read_bytes()
    req = srv.transcript_requests[0]
    assert req["speech_models"] == ["universal-3-5-pro", "universal-2"]
    assert req["speaker_labels"] is True and req["language_detection"] is True
    assert req["keyterms_prompt"] == ["pyannote"] and req["auto_chapters"] and req["sentiment_analysis"]

    assert t.engine == "assemblyai" and t.language == "en" and t.model == "universal-3-5-pro"
    assert t.duration == pytest.approx(30.0, abs=0.1)  # probed from the file, not the API's whole seconds
    assert [s.text for s in t.segments] == ["Hello there, how are you?", "Fine, thanks.", "Great news."]
    assert [s.speaker for s in t.segments] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    w = t.words[0]
    assert (w.start, w.end, w.text, w.probability, w.speaker) == (0.24, 0.56, " Hello", 0.9, "SPEAKER_00")
    assert [(x.start, x.end, x.speaker) for x in t.speaker_turns] == [
        (0.24, 1.6, "SPEAKER_00"), (2.3, 3.15, "SPEAKER_01"), (4.0, 4.9, "SPEAKER_00")]
    ins = t.insights
    assert ins["assemblyai"]["speaker_map"] == {"A": "SPEAKER_00", "B": "SPEAKER_01"}
    assert ins["assemblyai"]["language_confidence"] == 0.97
    assert ins["chapters"][0] == {"start": 0.24, "end": 4.9, "title": "Greeting", "gist": "hello", "summary": "A greeting."}
    assert ins["sentiment"][0]["sentiment"] == "POSITIVE" and ins["sentiment"][0]["speaker"] == "SPEAKER_00"
    assert Transcript.from_json(t.to_json()).replace(meta=t.meta) == t  # meta holds tuples that come back as lists


def test_assemblyai_without_speakers_groups_words_into_sentences(aai):
    srv = aai()
    opts = aai_options(redact_pii=["person_name"], summarization=True)
    opts.language = "en"
    t = transcribe(tones(5.0, [(0.2, 4.5, 300.0)]), opts)  # an array goes up as a WAV
    req = srv.transcript_requests[0]
    assert req["language_code"] == "en" and "language_detection" not in req and "speaker_labels" not in req
    assert req["redact_pii"] is True and req["redact_pii_policies"] == ["person_name"]
    assert next(iter(srv.uploads.values()))[:4] == b"RIFF"
    assert [s.text for s in t.segments] == ["Hello there, how are you?", "Fine, thanks.", "Great news."]
    assert all(s.speaker is None for s in t.segments) and t.speaker_turns == ()
    assert t.insights["summary"] == "Two people greet each other."
    assert t.insights["pii_redaction"]["policies"] == ["person_name"]


def test_assemblyai_job_error_status_raises(aai):
    aai(job_error="Transcoding failed. File does not appear to contain audio.")
    from vidtrans.transcribe.assemblyai import AssemblyAIJobError

    with pytest.raises(AssemblyAIJobError, match="does not appear to contain audio") as e:
        transcribe(tones(2.0, []), aai_options())
    assert isinstance(e.value, ServiceError) and e.value.engine == "assemblyai"


def test_assemblyai_bad_key_is_authentication_error_without_the_key(aai, monkeypatch, caplog):
    srv = aai()
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "wrong-key-0000000000")
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as e:
        transcribe(tones(2.0, []), aai_options())
    assert "401" in str(e.value) and "ASSEMBLYAI_API_KEY" in str(e.value)
    assert "wrong-key-0000000000" not in str(e.value) and "wrong-key-0000000000" not in caplog.text
    assert srv.paths() == ["/v2/upload"]  # no retry on 401


def test_assemblyai_429_then_success_and_persistent_429(aai):
    srv = aai(fail_first=2)
    t = transcribe(tones(2.0, []), aai_options())
    assert len(t.segments) == 3
    assert srv.paths()[:3] == ["/v2/upload"] * 3

    aai(fail_first=100)
    with pytest.raises(QuotaExceededError, match="429"):
        transcribe(tones(2.0, []), aai_options(retries=2))


def test_assemblyai_missing_key_and_bad_media(aai, monkeypatch, tmp_path):
    aai()
    monkeypatch.delenv("ASSEMBLYAI_API_KEY")
    with pytest.raises(MissingSecretError, match="ASSEMBLYAI_API_KEY"):
        transcribe(tones(1.0, []), aai_options())
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", AAI_KEY)
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(MediaError):
        transcribe(bad, aai_options())


# --------------------------------------------------------------------------- Gemini
@pytest.fixture
def gem(monkeypatch):
    servers: list[FakeGemini] = []

    def start(**kw):
        srv = FakeGemini(GEM_KEY, **kw).__enter__()
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", srv.url)  # the SDK's own setting
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.__exit__(None, None, None)


def gem_options(**extra) -> TranscribeOptions:
    return TranscribeOptions(engine="gemini", extra={"retry_delay": 0.01, **extra})


BURSTS = [(1.0, 1.5, 440.0), (4.0, 1.0, 880.0), (7.5, 1.2, 440.0)]


def test_gemini_structured_output_parsed(gem):
    srv = gem(language="de")
    t = transcribe(tones(10.0, BURSTS), gem_options(emotion=True))
    body = srv.generate_bodies[0]
    cfg = body["generationConfig"]
    assert cfg["responseMimeType"] == "application/json"
    assert set(cfg["responseSchema"]["properties"]) == {"language", "segments"}
    assert "emotion" in cfg["responseSchema"]["properties"]["segments"]["items"]["properties"]
    assert any("inlineData" in p for p in body["contents"][0]["parts"])

    assert t.engine == "gemini" and t.language == "de" and t.model == "gemini-2.5-flash"
    assert t.duration == pytest.approx(10.0)
    got = [(s.start, s.end, s.speaker) for s in t.segments]
    want = [(b[0], b[0] + b[1], spk) for b, spk in zip(BURSTS, ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"])]
    for (gs, ge, gspk), (ws, we, wspk) in zip(got, want, strict=True):
        assert gs == pytest.approx(ws, abs=0.06) and ge == pytest.approx(we, abs=0.06) and gspk == wspk
    assert [s.emotion.label for s in t.segments] == ["happy", "sad", "happy"]
    assert t.segments[0].emotion.score == 0.8
    # word times are spread inside their segment, in order
    for s in t.segments:
        assert s.words[0].start == pytest.approx(s.start) and s.words[-1].end == pytest.approx(s.end)
        assert all(a.end <= b.start + 1e-6 for a, b in zip(s.words, s.words[1:]))
    assert [x.speaker for x in t.speaker_turns] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]


def test_gemini_long_audio_is_chunked_with_overlap_without_losing_or_doubling(gem):
    # bursts every 3 s over 61 s; windows of 20 s overlapping 4 s put several bursts in two windows
    bursts = [(s, 0.8, 440.0 if i % 2 == 0 else 880.0) for i, s in enumerate(np.arange(0.5, 60.0, 3.0))]
    srv = gem()
    t = transcribe(tones(61.0, bursts), gem_options(chunk_seconds=20, overlap_seconds=4))
    windows = t.insights["gemini"]["windows"]
    assert len(windows) == len(srv.generate_bodies) == 4 and windows[1][0] == 16.0
    # overlapping windows really did see some bursts twice...
    seen = sum(len(find_bursts(tones(61.0, bursts)[int(a * SR):int(b * SR)])) for a, b in windows)
    assert seen > len(bursts)
    # ...but each burst appears once, at its absolute time
    assert len(t.segments) == len(bursts)
    for seg, (start, length, _) in zip(t.segments, bursts):
        assert seg.start == pytest.approx(start, abs=0.06) and seg.end == pytest.approx(start + length, abs=0.06)
    assert all(a.start < b.start for a, b in zip(t.segments, t.segments[1:]))


def test_gemini_malformed_json_is_a_clear_error_after_a_retry(gem):
    from vidtrans.transcribe.gemini import GeminiResponseError

    srv = gem(mode="malformed")
    with pytest.raises(GeminiResponseError, match=r"malformed JSON .*2 attempts"):
        transcribe(tones(3.0, BURSTS[:1]), gem_options())
    assert len(srv.generate_bodies) == 2


def test_gemini_timestamps_outside_the_audio_are_rejected(gem):
    from vidtrans.transcribe.gemini import GeminiResponseError

    gem(mode="out_of_range")
    with pytest.raises(GeminiResponseError, match=r"ends at 34\.0 s, after the clip's 3\.0 s end"):
        transcribe(tones(3.0, BURSTS[:1]), gem_options(junk_retries=0))


@pytest.mark.parametrize("status", [429, 503])
def test_gemini_retries_429_and_5xx_then_succeeds(gem, status):
    srv = gem(fail_first=2, fail_status=status)
    t = transcribe(tones(3.0, BURSTS[:1]), gem_options())
    assert len(t.segments) == 1
    assert len([p for p in srv.paths() if p.endswith(":generateContent")]) == 3


def test_gemini_quota_exhausted_after_retries(gem):
    gem(fail_first=100)
    with pytest.raises(QuotaExceededError, match="RESOURCE_EXHAUSTED"):
        transcribe(tones(3.0, BURSTS[:1]), gem_options(retries=2))


def test_gemini_bad_key_is_authentication_error(gem, monkeypatch):
    gem()
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaWrongKey-99999999")
    with pytest.raises(AuthenticationError) as e:
        transcribe(tones(3.0, BURSTS[:1]), gem_options())
    assert "GEMINI_API_KEY" in str(e.value) and "AIzaWrongKey" not in str(e.value)


def test_gemini_large_audio_goes_through_the_files_api(gem):
    srv = gem()
    t = transcribe(tones(10.0, BURSTS), gem_options(inline_max_bytes=1024))
    assert any(p.startswith("/upload/") and p.endswith("/files") for p in srv.paths("POST"))
    parts = srv.generate_bodies[0]["contents"][0]["parts"]
    assert any("fileData" in p for p in parts) and not any("inlineData" in p for p in parts)
    assert len(srv.deleted) == 1  # the uploaded file is removed afterwards
    assert t.insights["gemini"]["files_api_uploads"] == 1
    assert [round(s.start, 1) for s in t.segments] == [1.0, 4.0, 7.5]


def test_gemini_time_parsing_and_window_plan():
    from vidtrans.transcribe.gemini import parse_response, parse_time, plan_windows

    assert parse_time(12.5) == 12.5 and parse_time("01:02.5") == 62.5 and parse_time("1:00:01") == 3601.0
    assert parse_time("3.25s") == 3.25
    with pytest.raises(ValueError):
        parse_time("soon")
    with pytest.raises(ValueError):
        parse_time(math.nan)
    lang, segs = parse_response('```json\n{"language": "EN", "segments": [{"start": "00:01", "end": "00:02", "text": "hi"}]}\n```', 5.0)
    assert lang == "en" and segs[0]["start"] == 1.0 and segs[0]["speaker"] is None
    from vidtrans.transcribe.gemini import GeminiResponseError

    junk = {
        '{"segments": [{"start": 1, "end": 2, "text": "  "}]}': "segment 0 .* has empty text",
        '{"segments": [{"start": 3, "end": 4, "text": "a"}, {"start": 1, "end": 2, "text": "b"}]}':
            "segment 1 starts at 1.0 s, before the previous one",
        '{"segments": [{"start": 2, "end": 1, "text": "a"}]}': "segment 0 runs from 2.00 s to 1.00 s",
        '{"segments": [{"start": "later", "end": 1, "text": "a"}]}': "unreadable times",
        '{"text": "hello"}': "without a 'segments' list",
        "": "empty answer",
    }
    for answer, message in junk.items():
        with pytest.raises(GeminiResponseError, match=message):
            parse_response(answer, 5.0)
    ws = plan_windows(100.0, 40.0, 10.0)
    assert [(w.start, w.end) for w in ws] == [(0.0, 40.0), (30.0, 70.0), (60.0, 100.0)]
    assert ws[0].keep_to == ws[1].keep_from == 35.0 and ws[2].keep_to == math.inf
    assert len(plan_windows(30.0, 40.0, 10.0)) == 1


# --------------------------------------------------------------------------- secrets stay out of notebooks
def test_no_secret_in_papermill_executed_notebook(aai, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    papermill = pytest.importorskip("papermill")
    good = aai()
    bad = FakeAssemblyAI("a-different-key-000000")
    with bad:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        params = nbformat.v4.new_code_cell("good_url = ''\nbad_url = ''")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [
            params,
            nbformat.v4.new_code_cell(
                "import logging, os, sys\n"
                "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, force=True)\n"
                "import numpy as np\n"
                "from vidtrans.transcribe import TranscribeOptions, transcribe\n"
                "opts = TranscribeOptions(engine='assemblyai', speaker_labels=True, extra={'polling_interval': 0.01})"
            ),
            nbformat.v4.new_code_cell(
                "os.environ['ASSEMBLYAI_BASE_URL'] = good_url\n"
                "t = transcribe(np.zeros(16000, dtype='float32'), opts)\n"
                "print(t.to_json())\nt.meta"
            ),
            nbformat.v4.new_code_cell(
                "os.environ['ASSEMBLYAI_BASE_URL'] = bad_url\n"
                "try:\n    transcribe(np.zeros(16000, dtype='float32'), opts)\n"
                "except Exception as exc:\n    print(type(exc).__name__, exc)\n    err = exc\nerr"
            ),
        ]
        src = tmp_path / "leak.ipynb"
        out = tmp_path / "leak.out.ipynb"
        nbformat.write(nb, src)
        monkeypatch.setenv("PYTHONPATH", str(__import__("pathlib").Path(__file__).resolve().parents[1]))
        papermill.execute_notebook(
            str(src), str(out), parameters={"good_url": good.url, "bad_url": bad.url},
            kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
        )
    text = out.read_text()
    executed = json.loads(text)
    outputs = json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "Hello there" in outputs and "AuthenticationError" in outputs  # the notebook really ran both calls
    assert AAI_KEY not in text
    assert good.requests[0]["headers"]["authorization"] == AAI_KEY  # ...with the key from the environment


# --------------------------------------------------------------------------- openai-whisper (offline, same interface)
@pytest.fixture(scope="module")
def one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_ct2_base_converts_to_an_equivalent_openai_whisper_model(one_thread, sample_wav):
    whisper = pytest.importorskip("whisper")
    ctranslate2 = pytest.importorskip("ctranslate2")
    import base64
    import gzip

    import torch

    from vidtrans.audio import load_audio
    from vidtrans.models import resolve_model
    from vidtrans.transcribe.openai_whisper import converted_checkpoint, load_model

    ckpt = torch.load(converted_checkpoint("base"), map_location="cpu", weights_only=True)
    ref = whisper.model.Whisper(whisper.model.ModelDimensions(**ckpt["dims"])).state_dict()
    assert {k: tuple(v.shape) for k, v in ckpt["model_state_dict"].items()} == {k: tuple(v.shape) for k, v in ref.items()}
    heads = lambda dump: np.frombuffer(gzip.decompress(base64.b85decode(dump)), dtype=bool)  # noqa: E731
    assert (heads(ckpt["alignment_heads"]) == heads(whisper._ALIGNMENT_HEADS["base"])).all()  # config.json == OpenAI's

    model = load_model("base", device="cpu")
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(load_audio(sample_wav))).numpy()[None]
    ct2 = ctranslate2.models.Whisper(str(resolve_model("base")), device="cpu", compute_type="float32", intra_threads=1)
    ct2_enc = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))))
    with torch.no_grad():
        ow_enc = model.encoder(torch.from_numpy(mel)).numpy()
    assert ow_enc.shape == ct2_enc.shape == (1, 1500, 512)
    assert np.abs(ow_enc - ct2_enc).max() < 1e-3 * np.abs(ct2_enc).max()  # measured 4e-5: the same network
    # the decoder (self- and cross-attention split back) agrees on the language too
    ct2_lang, ct2_p = ct2.detect_language(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)))[0][0]
    _, probs = model.detect_language(torch.from_numpy(mel[0]))
    ow_lang = max(probs, key=probs.get)
    assert ct2_lang == f"<|{ow_lang}|>" == "<|en|>" and probs[ow_lang] == pytest.approx(ct2_p, abs=1e-3)


@pytest.mark.slow
def test_openai_whisper_engine_gives_word_timed_segments(one_thread, sample_wav):
    pytest.importorskip("whisper")
    from vidtrans.audio import load_audio
    from vidtrans.transcribe.compare import normalize_word

    clip = load_audio(sample_wav)[: 11 * SR]
    t = transcribe(clip, TranscribeOptions(engine="openai-whisper", model="tiny.en", beam_size=1, cpu_threads=1))
    assert t.engine == "openai-whisper" and t.model == "openai-whisper:tiny.en" and t.language == "en"
    text = " ".join(normalize_word(w.text) for w in t.words)
    assert "didn't know you were there" in text  # sample.stm: "i didn't know you were there" at 8.9 s
    words = t.words
    assert words and all(0 <= w.start <= w.end <= 11.0 + 1e-3 for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    there = next(w for w in words if normalize_word(w.text) == "there")
    assert 8.5 < there.start < 10.5  # word timing from the alignment heads lands where the word is spoken


def test_openai_whisper_unknown_model_offline_is_a_model_error():
    pytest.importorskip("whisper")
    from vidtrans.errors import ModelError
    from vidtrans.transcribe.openai_whisper import checkpoint_for

    with pytest.raises(ModelError, match="no model 'no-such-model'"):
        checkpoint_for("no-such-model")


# --------------------------------------------------------------------------- FireRedASR (loading code; no weights here)
def test_fireredasr_without_model_says_how_to_get_it(monkeypatch, tmp_path):
    from vidtrans.transcribe.fireredasr import FireRedModelError

    monkeypatch.delenv("FIREREDASR_MODEL_DIR", raising=False)
    with pytest.raises(FireRedModelError, match="no FireRedASR model directory configured.*huggingface-cli download FireRedTeam/FireRedASR-AED-L.*FIREREDASR_MODEL_DIR"):
        transcribe(tones(1.0, []), TranscribeOptions(engine="fireredasr"))
    (tmp_path / "cmvn.ark").write_text("x")
    monkeypatch.setenv("FIREREDASR_MODEL_DIR", str(tmp_path))
    with pytest.raises(FireRedModelError, match=r"lacks model\.pth\.tar, dict\.txt, train_bpe1000\.model"):
        transcribe(tones(1.0, []), TranscribeOptions(engine="fireredasr"))
    for f in ("model.pth.tar", "dict.txt", "train_bpe1000.model"):
        (tmp_path / f).write_text("x")
    import sys

    monkeypatch.setitem(sys.modules, "fireredasr", None)  # package absent
    from vidtrans.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError, match="pip install fireredasr"):
        transcribe(tones(1.0, []), TranscribeOptions(engine="fireredasr"))


def test_fireredasr_cuts_at_pauses_and_maps_times(monkeypatch, tmp_path, sample_wav):
    """The engine's own code around FireRedAsr, with the package replaced by a recording stand-in."""
    import sys
    import types

    import soundfile as sf

    from vidtrans.audio import load_audio

    calls = []

    class StandIn:
        @classmethod
        def from_pretrained(cls, asr_type, model_dir):
            calls.append(("load", asr_type, model_dir))
            return cls()

        def transcribe(self, ids, paths, args):
            calls.append(("transcribe", list(ids), [sf.info(p).duration for p in paths], dict(args)))
            return [{"uttid": u, "text": "你好 world", "wav": p, "rtf": "0.1"} for u, p in zip(ids, paths)]

    mod = types.ModuleType("fireredasr.models.fireredasr")
    mod.FireRedAsr = StandIn
    for name in ("fireredasr", "fireredasr.models"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "fireredasr.models.fireredasr", mod)
    for f in ("cmvn.ark", "model.pth.tar", "dict.txt", "train_bpe1000.model"):
        (tmp_path / f).write_text("x")

    audio = load_audio(sample_wav)
    opts = TranscribeOptions(engine="fireredasr", device="cpu", beam_size=3,
                             extra={"model_dir": str(tmp_path), "max_chunk_seconds": 8, "batch_size": 2})
    t = transcribe(audio, opts)
    assert calls[0] == ("load", "aed", str(tmp_path))
    durations = [d for c in calls[1:] for d in c[2]]
    assert all(0 < d <= 8.0 + 1e-6 for d in durations) and len(durations) >= 30 / 8
    assert calls[1][3] == {"use_gpu": 0, "beam_size": 3}
    assert len(t.segments) == len(durations) and t.language == "zh" and t.model.startswith("FireRedASR-AED")
    for seg, d in zip(t.segments, durations):
        assert seg.end - seg.start == pytest.approx(d, abs=1e-3)
        assert [w.text for w in seg.words] == ["你", "好", " world"]
        assert seg.words[0].start == seg.start and seg.words[-1].end == pytest.approx(seg.end)
    assert all(a.end <= b.start for a, b in zip(t.segments, t.segments[1:]))
    # the chunks hold the speech: the pyannote sample talks from ~6 s to ~30 s
    assert t.segments[0].start > 3.0 and t.segments[-1].end > 25.0


def test_cli_run_reaches_a_compatible_endpoint_through_the_sdk_environment(aai, monkeypatch, tmp_path, sample_wav):
    """`vidtrans run FILE --engine assemblyai` pointed elsewhere by ASSEMBLYAI_BASE_URL alone."""
    cli = pytest.importorskip("vidtrans.cli")
    srv = aai()
    monkeypatch.setenv("ASSEMBLYAI_POLLING_INTERVAL", "0.01")  # also an SDK setting
    rc = cli.main(["-q", "run", str(sample_wav), "--engine", "assemblyai", "--no-diarize", "--out", str(tmp_path),
                   "--formats", "vtt,json"])
    assert rc in (0, None)
    assert srv.paths("POST") == ["/v2/upload", "/v2/transcript"]
    vtt = (tmp_path / "sample.vtt").read_text()
    assert "00:00:02.300 --> 00:00:03.150" in vtt and "Fine, thanks." in vtt
    assert Transcript.load(tmp_path / "sample.json").engine == "assemblyai"
