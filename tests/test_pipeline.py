"""The main job end to end (what `make demo` runs), and the lead-owned notebooks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_notebook
from vidtrans.cli import main
from vidtrans.pipeline import PipelineOptions, run
from vidtrans.schema import Transcript

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_main_job_offline_with_speakers(tmp_path, capsys):
    """`vidtrans demo`: bundled sample -> mp4 -> base model -> offline diarization -> captions."""
    assert main(["-q", "demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    vtt = tmp_path / "talk.vtt"
    assert str(vtt) in out
    text = vtt.read_text()
    assert text.startswith("WEBVTT")
    voices = set(re.findall(r"<v ([^>]+)>", text))
    assert len(voices) == 2, voices  # the sample has two speakers
    t = Transcript.load(tmp_path / "talk.json")
    assert t.speaker_turns and all(w.speaker for w in t.words)
    assert {s.speaker for s in t.segments} == voices
    # issue 9: the demo's captions with speakers are valid WebVTT with no warning and no cue over
    # any readability rule (hard: line length, lines, max duration, overlap, gap; soft: minimum
    # duration, reading speed), across the run-to-run variation of diarization and decoding
    from vidtrans.captions import validate_vtt

    capsys.readouterr()
    assert main(["validate", "--strict", str(vtt)]) == 0, capsys.readouterr().out
    report = validate_vtt(vtt)
    assert not report.warnings and not report.errors, report.format()
    assert not report.violations, report.format()
    import shutil

    if shutil.which("chromium"):  # a real browser reads the cues vidtrans wrote (see test_webvtt_conformance)
        from test_webvtt_conformance import chromium_cues

        from vidtrans.captions import parse_vtt

        got = chromium_cues(tmp_path, ["talk.vtt"])["talk.vtt"]
        assert [(c["start"], c["end"], c["text"]) for c in got] == [(c.start, c.end, c.text) for c in parse_vtt(vtt).cues]
    # nothing half-written left behind
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


@pytest.mark.slow
def test_pipeline_silent_file_gives_empty_captions(tmp_path, silent_wav):
    result = run(str(silent_wav), PipelineOptions(out_dir=str(tmp_path), model="tiny.en"))
    assert result.transcript.segments == ()
    vtt = result.outputs["vtt"].read_text()
    assert vtt.strip() == "WEBVTT"


def test_setup_notebook_headless(tmp_path):
    run_notebook(ROOT / "notebooks" / "00_setup.ipynb", tmp_path / "00.ipynb")
    text = (tmp_path / "00.ipynb").read_text()
    assert '"output_type": "error"' not in text and "offline models" in text


def test_colab_setup_notebook_outside_colab_reads_no_secret_values(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETVALUE_never_in_notebook")
    run_notebook(ROOT / "colab_setup.ipynb", tmp_path / "colab.ipynb", install=False)
    text = (tmp_path / "colab.ipynb").read_text()
    assert "install skipped" in text
    assert "hf_SECRETVALUE" not in text and "HF_TOKEN" in text


def test_a_local_file_is_probed_once(tmp_path, sample_wav, monkeypatch):
    """pipeline.run hands the probe it made to name the source on to the decoder (one ffprobe per
    file, not two), and the audio it decodes is the whole file."""
    import soundfile as sf

    from vidtrans import audio as audio_mod

    real_probe, probed = audio_mod.probe, []

    def probe(path):
        probed.append(path)
        return real_probe(path)

    monkeypatch.setattr(audio_mod, "probe", probe)
    result = run(str(sample_wav), PipelineOptions(out_dir=str(tmp_path), model="tiny.en", diarize=False))
    assert len(probed) == 1
    assert result.transcript.duration == pytest.approx(sf.info(str(sample_wav)).duration, abs=0.05)
    assert result.transcript.words
