"""Engine choice table and the fallback chain (real SDKs against fake services)."""

from __future__ import annotations

import numpy as np
import pytest

from vidtrans.errors import ConfigurationError, MediaError
from vidtrans.schema import Media
from vidtrans.transcribe import TranscribeOptions, stream, transcribe
from vidtrans.transcribe.select import (
    AllEnginesFailedError,
    EngineNeeds,
    choose_engine,
    engine_status,
)

from fake_services import FakeAssemblyAI, FakeGemini

ALL = {"assemblyai": None, "gemini": None, "fireredasr": None, "faster-whisper": None, "openai-whisper": None}
NO_FIRERED = {**ALL, "fireredasr": "the fireredasr package is not installed"}
NO_CLOUD = {**NO_FIRERED, "assemblyai": "no ASSEMBLYAI_API_KEY configured", "gemini": "no GEMINI_API_KEY / GOOGLE_API_KEY configured"}
NO_GEMINI = {**NO_FIRERED, "gemini": "no GEMINI_API_KEY / GOOGLE_API_KEY configured"}

CASES = [
    # (needs, available, engine, chain starts with, a skipped engine and words from its reason)
    (EngineNeeds(language="en"), NO_FIRERED, "assemblyai", ("assemblyai", "gemini", "faster-whisper"), None),
    (EngineNeeds(language="de"), NO_FIRERED, "assemblyai", ("assemblyai", "gemini"), None),
    (EngineNeeds(language="ja"), NO_FIRERED, "gemini", ("gemini", "assemblyai"), None),
    (EngineNeeds(language="ja"), NO_GEMINI, "assemblyai", ("assemblyai", "faster-whisper"), ("gemini", "GEMINI_API_KEY")),
    (EngineNeeds(language="ja", diarization=True), NO_FIRERED, "assemblyai", ("assemblyai", "gemini"), None),
    (EngineNeeds(language="zh"), ALL, "fireredasr", ("fireredasr", "assemblyai", "gemini"), None),
    (EngineNeeds(language="zh-CN"), NO_FIRERED, "assemblyai", ("assemblyai",), ("fireredasr", "not installed")),
    (EngineNeeds(language="en"), NO_CLOUD, "faster-whisper", ("faster-whisper", "openai-whisper"), ("assemblyai", "ASSEMBLYAI_API_KEY")),
    (EngineNeeds(language="en", offline=True), NO_FIRERED, "faster-whisper", ("faster-whisper",), ("gemini", "offline")),
    (EngineNeeds(language="en", budget_usd=0), NO_FIRERED, "faster-whisper", ("faster-whisper",), ("assemblyai", "over budget")),
    (EngineNeeds(language="en", budget_usd=0.10, duration=3600), NO_FIRERED, "faster-whisper", ("faster-whisper",),
     ("gemini", "~$0.15 > $0.10")),
    (EngineNeeds(language="en", budget_usd=0.10, duration=600), NO_FIRERED, "assemblyai", ("assemblyai", "gemini"), None),
    (EngineNeeds(language="en", duration=11 * 3600), NO_FIRERED, "gemini", ("gemini", "faster-whisper"),
     ("assemblyai", "longer than its 10 h limit")),
]


@pytest.mark.parametrize("needs, available, engine, chain, skipped", CASES)
def test_choice_table(needs, available, engine, chain, skipped):
    c = choose_engine(None, needs, available=available)
    assert c.engine == engine
    assert c.chain[: len(chain)] == chain
    assert c.reason
    if skipped:
        name, words = skipped
        assert name not in c.chain and words in c.skipped[name]


def test_choice_reads_language_and_duration_from_the_media_record():
    media = Media(id="x", language="sv", duration=7200.0)
    c = choose_engine(media, EngineNeeds(budget_usd=0.4), available=NO_FIRERED)
    assert c.engine == "gemini" and "sv" in c.reason  # 2 h: gemini ~$0.30 fits, assemblyai ~$0.54 does not
    assert "over budget" in c.skipped["assemblyai"]


def test_nothing_available_is_a_clear_error():
    none = {k: "missing" for k in ALL}
    with pytest.raises(ConfigurationError, match="no transcription engine can run here"):
        choose_engine(None, EngineNeeds(language="en"), available=none)


def test_engine_status_follows_configured_keys(monkeypatch, tmp_path):
    pytest.importorskip("assemblyai")
    monkeypatch.setenv("VIDTRANS_SECRETS_FILE", str(tmp_path / "none.json"))
    for n in ("ASSEMBLYAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(n, raising=False)
    assert "ASSEMBLYAI_API_KEY" in engine_status("assemblyai")
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "k-1234567890")
    monkeypatch.setenv("GOOGLE_API_KEY", "g-1234567890")
    assert engine_status("assemblyai") is None and engine_status("gemini") is None
    monkeypatch.delenv("FIREREDASR_MODEL_DIR", raising=False)
    assert engine_status("fireredasr") is not None


# --------------------------------------------------------------------------- fallback chain
@pytest.fixture
def services(monkeypatch, tmp_path):
    pytest.importorskip("assemblyai")
    pytest.importorskip("google.genai")
    monkeypatch.setenv("VIDTRANS_SECRETS_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "aai-key-1234567890")
    monkeypatch.setenv("GEMINI_API_KEY", "gem-key-1234567890")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("FIREREDASR_MODEL_DIR", raising=False)
    with FakeAssemblyAI("aai-key-1234567890", job_error="Audio duration is too short.") as aai, \
            FakeGemini("gem-key-1234567890") as gem:
        monkeypatch.setenv("ASSEMBLYAI_BASE_URL", aai.url)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gem.url)
        yield aai, gem


def burst_audio() -> np.ndarray:
    t = np.arange(4 * 16000) / 16000
    return np.where((t > 1) & (t < 2), 0.3 * np.sin(2 * np.pi * 440 * t), 0).astype(np.float32)


EXTRA = {"polling_interval": 0.01, "retry_delay": 0.01}


def test_fallback_chain_records_the_failure_and_the_engine_that_worked(services):
    aai, gem = services
    t = transcribe(burst_audio(), TranscribeOptions(engine="assemblyai", fallback=("gemini",), extra=EXTRA))
    assert t.engine == "gemini" and len(t.segments) == 1 and aai.jobs and gem.generate_bodies
    sel = t.meta["engine_selection"]
    assert sel["engine"] == "gemini" and sel["chain"] == ["assemblyai", "gemini"]
    assert sel["attempts"][0]["engine"] == "assemblyai" and sel["attempts"][0]["status"] == "failed"
    assert "AssemblyAIJobError" in sel["attempts"][0]["error"] and "too short" in sel["attempts"][0]["error"]
    assert sel["attempts"][1] == {"engine": "gemini", "status": "ok"}


def test_auto_picks_by_language_and_falls_back(services, monkeypatch):
    aai, gem = services
    # Japanese: Gemini first, and it works
    t = transcribe(burst_audio(), TranscribeOptions(engine="auto", language="ja", extra=EXTRA))
    assert t.engine == "gemini" and not aai.requests
    sel = t.meta["engine_selection"]
    assert sel["requested"] == "auto" and "ja" in sel["reason"] and sel["chain"][:2] == ["gemini", "assemblyai"]
    # English: AssemblyAI first; its job fails, Gemini takes over
    t = transcribe(burst_audio(), TranscribeOptions(engine="auto", language="en", extra=EXTRA))
    assert t.engine == "gemini" and [a["engine"] for a in t.meta["engine_selection"]["attempts"]] == ["assemblyai", "gemini"]
    # no keys at all: the cloud engines are skipped, not tried
    monkeypatch.delenv("ASSEMBLYAI_API_KEY")
    monkeypatch.delenv("GEMINI_API_KEY")
    c = choose_engine(None, EngineNeeds(language="en"))
    assert "assemblyai" in c.skipped and "gemini" in c.skipped and c.engine in ("faster-whisper", "openai-whisper")


def test_every_engine_failing_lists_each_error(services, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "wrong-key-000000000")
    with pytest.raises(AllEnginesFailedError) as e:
        transcribe(burst_audio(), TranscribeOptions(engine="assemblyai", fallback=("gemini",), extra=EXTRA))
    assert [a["engine"] for a in e.value.attempts] == ["assemblyai", "gemini"]
    assert "too short" in str(e.value) and "AuthenticationError" in str(e.value)
    assert "wrong-key-000000000" not in str(e.value)


def test_bad_media_stops_the_chain(services, tmp_path):
    aai, gem = services
    missing = tmp_path / "nope.mp4"
    with pytest.raises(MediaError):
        transcribe(missing, TranscribeOptions(engine="assemblyai", fallback=("gemini",), extra=EXTRA))
    assert not aai.requests and not gem.requests


def test_stream_falls_back_when_an_engine_cannot_start(services, monkeypatch):
    monkeypatch.delenv("ASSEMBLYAI_API_KEY")  # assemblyai cannot start: no key
    s = stream(burst_audio(), TranscribeOptions(engine="assemblyai", fallback=("gemini",), extra=EXTRA))
    assert s.model.startswith("gemini") and len(list(s)) == 1


# --------------------------------------------------------------------------- engine comparison
def _t(engine: str, text: str, step: float = 0.5):
    from vidtrans.schema import Segment, Transcript, Word

    words = tuple(Word(i * step, i * step + 0.4, w) for i, w in enumerate(text.split()))
    return Transcript(segments=(Segment(0.0, len(words) * step, text, words=words),), engine=engine)


def test_word_diff_aligns_edits_and_ignores_case_and_punctuation():
    from vidtrans.transcribe.compare import word_diff

    a = _t("assemblyai", "Hello there, how are you today?")
    b = _t("gemini", "hello there how were you today friend")
    d = word_diff(a, b)
    assert d.labels == ("assemblyai", "gemini")
    ops = [(o.op, [w.text for w in o.a], [w.text for w in o.b]) for o in d]
    assert ops == [
        ("equal", ["Hello", "there,", "how"], ["hello", "there", "how"]),
        ("substitute", ["are"], ["were"]),
        ("equal", ["you", "today?"], ["you", "today"]),
        ("insert", [], ["friend"]),
    ]
    assert d.counts() == {"equal": 5, "substitute": 1, "delete": 0, "insert": 1}
    assert d.wer == pytest.approx(2 / 6)
    assert ops[1][2] and d.ops[1].b[0].start == 1.5  # words keep their times
    assert word_diff(a, a).wer == 0.0


def test_word_diff_with_an_empty_side():
    from vidtrans.schema import Transcript
    from vidtrans.transcribe.compare import word_diff

    d = word_diff(_t("x", "one two"), Transcript(engine="y"))
    assert [o.op for o in d] == ["delete"] and d.wer == 1.0


def test_diff_html_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    from vidtrans.transcribe.compare import diff_html, plot_word_diff, word_diff

    d = word_diff(_t("a", "fish <and> chips today"), _t("b", "fish and chips"))
    page = diff_html(d)
    assert "&lt;and&gt;" in page and "<and>" not in page  # transcript text is escaped
    assert "WER of b against a: 25.0%" in page and "1 missing" in page
    ax = plot_word_diff(d)
    assert len(ax.patches) == 4 + 3  # one bar per word of each transcript
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
