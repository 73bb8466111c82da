"""The `vidtrans` command as a user runs it: exit codes, one-line errors, real outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vidtrans.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "vidtrans.cli", "-q", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=600
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda d: d / "missing.mp4", "media file not found"),
        (lambda d: _write(d / "notes.mp3", b"this is not audio\n" * 50), "not a media file"),
        (lambda d: _write(d / "empty.wav", b""), "empty"),
    ],
    ids=["missing", "text-file", "zero-bytes"],
)
def test_run_bad_input_one_line_error(tmp_path, make, expected):
    path = make(tmp_path)
    proc = run_cli("run", str(path), "--out", str(tmp_path / "out"), "--model", "tiny.en")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vidtrans: error:") and expected in err[0], proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_run_corrupt_audio(tmp_path, sample_wav):
    """A wav whose data was cut in the header region: ffmpeg cannot decode it."""
    data = sample_wav.read_bytes()
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC" + data[4:200] + bytes(range(256)) * 40)
    proc = run_cli("run", str(bad), "--out", str(tmp_path / "out"), "--model", "tiny.en")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "broken.flac" in proc.stderr


def test_run_unknown_format_and_engine(tmp_path, sample_wav):
    assert main(["-q", "run", str(sample_wav), "--out", str(tmp_path), "--formats", "vtt,docx"]) == 2
    assert main(["-q", "run", str(sample_wav), "--out", str(tmp_path), "--engine", "nope", "--no-diarize"]) == 2


@pytest.mark.slow
def test_run_video_end_to_end_tiny(tmp_path, sample_video):
    proc = run_cli("run", str(sample_video), "--out", str(tmp_path), "--model", "tiny.en", "--no-diarize",
                   "--formats", "vtt,srt,json,txt,tsv")
    assert proc.returncode == 0, proc.stderr
    for fmt in ("vtt", "srt", "json", "txt", "tsv"):
        p = tmp_path / f"talk.{fmt}"
        assert p.exists() and p.stat().st_size > 0, fmt
    from vidtrans.captions import validate_vtt
    from vidtrans.schema import Transcript

    report = validate_vtt(tmp_path / "talk.vtt")
    assert not report.errors, report.errors
    t = Transcript.load(tmp_path / "talk.json")
    assert t.engine == "faster-whisper" and len(t.words) > 40
    assert t.media is not None and t.media.audio_path
    # the validate command agrees
    assert main(["validate", str(tmp_path / "talk.vtt")]) == 0


def test_validate_command_flags_broken_file(tmp_path, capsys):
    bad = tmp_path / "bad.vtt"
    bad.write_text("WEBVTT\n\n00:00:05.000 --> 00:00:01.000\nbackwards\n\n00:00:0x.000 --> 00:00:02.000\nbad stamp\n")
    assert main(["validate", str(bad)]) == 1


def test_doctor_reports_ready_environment(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ffmpeg" in out and "faster-whisper" in out and "base" in out


def test_secret_values_never_printed_by_doctor(monkeypatch, capsys):
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "sk-test-DO-NOT-PRINT-123456")
    main(["doctor"])
    out = capsys.readouterr()
    assert "DO-NOT-PRINT" not in out.out + out.err
    assert "ASSEMBLYAI_API_KEY" in out.out


def test_models_command_lists_offline_models(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["base", "offline"] for line in lines), lines
    assert any(line.split()[:2] == ["tiny.en", "offline"] for line in lines), lines
