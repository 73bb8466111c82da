import json
import os
import stat

import pytest

from vidtrans._io import atomic_path, atomic_write_text
from vidtrans.schema import (
    SCHEMA_VERSION,
    Chapter,
    Emotion,
    Media,
    Segment,
    SpeakerTurn,
    Transcript,
    Word,
    segments_from_words,
)


def _full_transcript() -> Transcript:
    w1 = Word(0.0, 0.4, "Hello", 0.91, "Speaker 1")
    w2 = Word(0.45, 0.9, "world.", 0.5, "Speaker 1")
    w3 = Word(1.5, 2.0, "Ça", None, "Speaker 2")
    seg1 = Segment(0.0, 0.9, "Hello world.", (w1, w2), "Speaker 1", Emotion("happy", 0.7, {"happy": 0.7, "neutral": 0.3}, "audio:x"), {"avg_logprob": -0.2})
    seg2 = Segment(1.5, 2.0, "Ça", (w3,), "Speaker 2")
    media = Media(
        id="abc", extractor="youtube", title="T", duration=2.0, upload_date="20260101",
        chapters=(Chapter(0.0, 1.0, "Intro"), Chapter(1.0, None, "Rest")),
        subtitles={"en": ["vtt", "srv3"]}, audio_path="/tmp/a.wav", source="https://example.invalid/v",
    )
    return Transcript(
        segments=(seg1, seg2), language="en", engine="faster-whisper", model="base", duration=2.0,
        source="x.mp4", media=media, speaker_turns=(SpeakerTurn(0.0, 1.0, "Speaker 1"), SpeakerTurn(1.4, 2.0, "Speaker 2")),
        insights={"summary": "s", "chapters": [{"start": 0, "title": "a"}]}, meta={"timings": {"decode": 0.1}},
    )


def test_json_round_trip_is_lossless():
    t = _full_transcript()
    back = Transcript.from_json(t.to_json())
    assert back == t
    # types survive, not just values
    assert isinstance(back.segments, tuple) and isinstance(back.segments[0].words[0], Word)
    assert isinstance(back.media.chapters[0], Chapter)
    assert isinstance(back.segments[0].emotion, Emotion)
    assert back.schema_version == SCHEMA_VERSION


def test_json_ints_become_floats_and_missing_fields_default():
    d = {"segments": [{"start": 1, "end": 2, "text": "x"}], "schema_version": 1}
    t = Transcript.from_dict(d)
    assert t.segments[0].start == 1.0 and isinstance(t.segments[0].start, float)
    assert t.segments[0].words == () and t.language is None


def test_newer_schema_version_is_refused():
    d = _full_transcript().to_dict()
    d["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="newer"):
        Transcript.from_dict(d)


def test_records_are_frozen():
    w = Word(0, 1, "a")
    with pytest.raises(Exception):
        w.text = "b"  # type: ignore[misc]


def test_convenience_views():
    t = _full_transcript()
    assert [w.text for w in t.words] == ["Hello", "world.", "Ça"]
    assert t.text == "Hello world. Ça"
    assert t.speakers == ["Speaker 1", "Speaker 2"]
    seg = segments_from_words(t.words[:2], speaker="Speaker 1")
    assert (seg.start, seg.end, seg.text) == (0.0, 0.9, "Hello world.")


def test_save_load_atomic(tmp_path):
    t = _full_transcript()
    p = t.save(tmp_path / "sub" / "t.json")
    assert Transcript.load(p) == t
    assert json.loads(p.read_text())["language"] == "en"
    assert not [f for f in os.listdir(p.parent) if f.startswith(".")]


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.vtt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out.vtt"]
    assert stat.S_ISREG(target.stat().st_mode)


def test_join_words_keeps_engine_spacing():
    from vidtrans.schema import join_words, segments_from_words

    # faster-whisper tokens carry their own leading space: "self-love" is two tokens, one word
    assert join_words([" Self", "-love", " is", " not", " so", " vile"]) == "Self-love is not so vile"
    assert join_words([" I", " don't", " know."]) == "I don't know."
    # CJK: no spaces between characters, a space before a spaced word
    assert join_words(["你", "好", " ok"]) == "你好 ok"
    # legacy bare words (old JSON, hand-built) are joined with spaces
    assert join_words(["Hello", "world"]) == "Hello world"
    seg = segments_from_words([Word(0.0, 0.5, " self"), Word(0.5, 0.9, "-love")])
    assert seg.text == "self-love"
