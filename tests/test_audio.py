"""vidtrans.audio on real speech: many containers/codecs/rates decode to the same signal; bad input fails clearly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import ffmpeg
from vidtrans.audio import (
    SAMPLE_RATE,
    AudioOptions,
    is_silent,
    iter_chunks,
    load_audio,
    probe,
    to_wav,
    write_wav,
)
from vidtrans.errors import CorruptMediaError, EmptyAudioError, MediaError, MediaNotFoundError, NoAudioStreamError

# (file name, ffmpeg output args, sample-count tolerance in seconds, min correlation with the wav)
FORMATS = [
    ("s.flac", ["-c:a", "flac"], 0.001, 0.999),
    ("s.mp3", ["-c:a", "libmp3lame", "-b:a", "64k"], 0.03, 0.95),
    ("s.opus", ["-c:a", "libopus", "-b:a", "32k"], 0.03, 0.9),
    ("s.m4a", ["-c:a", "aac", "-b:a", "64k"], 0.03, 0.95),
    ("s_stereo.wav", ["-ac", "2"], 0.001, 0.999),
    ("s_44k.wav", ["-ar", "44100"], 0.001, 0.99),
    ("s_8k.wav", ["-ar", "8000"], 0.001, 0.9),
    ("s_48k_stereo.ogg", ["-ar", "48000", "-ac", "2", "-c:a", "libvorbis", "-q:a", "4"], 0.03, 0.9),
]


@pytest.fixture(scope="module")
def reference(sample_wav):
    ref, sr = sf.read(str(sample_wav), dtype="float32")
    assert sr == SAMPLE_RATE and ref.ndim == 1
    return ref


def _best_correlation(x: np.ndarray, ref: np.ndarray, max_lag: int = 1600) -> float:
    """Pearson correlation after aligning by the FFT cross-correlation peak (lossy codecs shift a few ms)."""
    n = min(len(x), len(ref))
    a, b = x[:n] - x[:n].mean(), ref[:n] - ref[:n].mean()
    size = 1 << (2 * n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lags = np.r_[xc[: max_lag + 1], xc[-max_lag:]]
    lag = int(np.argmax(lags))
    lag = lag if lag <= max_lag else lag - len(lags)
    if lag >= 0:
        a, b = a[lag:], b[: n - lag]
    else:
        a, b = a[: n + lag], b[-lag:]
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("name,args,tol,min_corr", FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_decode_to_same_signal(sample_wav, media_dir, reference, name, args, tol, min_corr):
    path = media_dir / name
    if not path.exists():
        ffmpeg("-i", str(sample_wav), *args, str(path))
    info = probe(path)
    assert info.duration == pytest.approx(len(reference) / SAMPLE_RATE, abs=0.1)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - len(reference)) <= tol * SAMPLE_RATE + 1
    assert np.max(np.abs(x)) <= 1.5
    assert _best_correlation(x, reference) >= min_corr


@pytest.mark.parametrize("container", ["mp4", "mkv", "webm"])
def test_video_containers(sample_wav, sample_video, media_dir, reference, container):
    if container == "mp4":
        path = sample_video
    else:
        path = media_dir / f"talk.{container}"
        if not path.exists():
            vcodec = ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "50k"] if container == "webm" else ["-c:v", "libx264", "-preset", "ultrafast"]
            acodec = ["-c:a", "libopus"] if container == "webm" else ["-c:a", "flac"]
            ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x90:r=5", "-i", str(sample_wav), "-shortest",
                   *vcodec, *acodec, str(path))
    info = probe(path)
    assert info.has_video and info.audio_codec
    x = load_audio(path)
    assert abs(len(x) - len(reference)) <= 0.25 * SAMPLE_RATE
    assert _best_correlation(x, reference) >= 0.9


def test_probe_facts(sample_wav, media_dir):
    st = media_dir / "probe_stereo.flac"
    ffmpeg("-i", str(sample_wav), "-ac", "2", "-ar", "44100", "-c:a", "flac", str(st))
    info = probe(st)
    assert (info.audio_codec, info.sample_rate, info.channels, info.has_video) == ("flac", 44100, 2, False)


def test_iter_chunks_and_to_wav_match_load_audio(sample_wav, tmp_path, reference):
    chunks = list(iter_chunks(sample_wav, chunk_seconds=7.0))
    assert all(len(c) == 7 * SAMPLE_RATE for c in chunks[:-1])
    joined = np.concatenate(chunks)
    np.testing.assert_allclose(joined, load_audio(sample_wav), atol=0)
    out = to_wav(sample_wav, tmp_path / "copy.wav")
    back, sr = sf.read(str(out), dtype="float32")
    assert sr == SAMPLE_RATE and len(back) == len(reference)
    np.testing.assert_allclose(back, reference, atol=2 / 32768)


def test_options_window_and_filters(sample_wav, reference):
    part = load_audio(sample_wav, AudioOptions(start=10.0, duration=5.0))
    assert len(part) == pytest.approx(5 * SAMPLE_RATE, abs=2)
    np.testing.assert_allclose(part, reference[10 * SAMPLE_RATE : 15 * SAMPLE_RATE], atol=1e-4)
    hp = load_audio(sample_wav, AudioOptions(highpass_hz=1000, lowpass_hz=2000))
    spec = np.abs(np.fft.rfft(hp)) ** 2
    freqs = np.fft.rfftfreq(len(hp), 1 / SAMPLE_RATE)
    ref_spec = np.abs(np.fft.rfft(reference)) ** 2
    low = freqs < 300
    # the band-pass removes most low-frequency energy relative to the original
    assert spec[low].sum() / ref_spec[low].sum() < 0.05


def test_write_wav_round_trip(tmp_path):
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    p = write_wav(tmp_path / "tone.wav", tone)
    np.testing.assert_allclose(load_audio(p), tone, atol=1e-4)
    assert not list(tmp_path.glob(".tone.wav*"))  # no temp file left


def test_is_silent(silent_wav, reference):
    assert is_silent(load_audio(silent_wav))
    assert not is_silent(reference)
    assert is_silent(np.zeros(0, dtype=np.float32))


# --------------------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    with pytest.raises(MediaNotFoundError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_directory_is_rejected(tmp_path):
    with pytest.raises(MediaError, match="directory"):
        load_audio(tmp_path)


def test_text_file_renamed_mp3(tmp_path):
    p = tmp_path / "notes.mp3"
    p.write_text("this is not audio at all\n" * 50)
    with pytest.raises(CorruptMediaError, match="notes.mp3"):
        load_audio(p)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.touch()
    with pytest.raises(EmptyAudioError, match="0 bytes"):
        load_audio(p)


def test_zero_length_audio_stream(tmp_path):
    p = tmp_path / "header_only.wav"
    sf.write(str(p), np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        load_audio(p)


def test_video_without_audio(media_dir):
    p = media_dir / "mute.mp4"
    if not p.exists():
        ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x90:r=5", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", str(p))
    with pytest.raises(NoAudioStreamError, match="no audio stream"):
        load_audio(p)
    with pytest.raises(NoAudioStreamError):
        probe(p)


def test_truncated_mp4_is_corrupt(sample_video, tmp_path):
    data = sample_video.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 3])  # moov atom is at the end: unreadable
    with pytest.raises(CorruptMediaError, match="cut.mp4"):
        load_audio(p)


def test_garbage_after_valid_header_is_corrupt(sample_wav, tmp_path):
    p = tmp_path / "garbage.flac"
    ffmpeg("-i", str(sample_wav), "-c:a", "flac", str(p))
    raw = bytearray(p.read_bytes())
    rng = np.random.default_rng(0)
    raw[8:4096] = rng.integers(0, 256, 4088, dtype=np.uint8).tobytes()  # smash STREAMINFO
    p.write_bytes(bytes(raw))
    with pytest.raises(MediaError):
        load_audio(p)


def test_truncated_wav_decodes_what_is_there(sample_wav, tmp_path, reference):
    data = sample_wav.read_bytes()
    p = tmp_path / "half.wav"
    p.write_bytes(data[: 44 + (len(data) - 44) // 2])  # header still claims the full length
    x = load_audio(p)
    assert len(x) == pytest.approx(len(reference) / 2, abs=SAMPLE_RATE * 0.01)
    np.testing.assert_allclose(x[: SAMPLE_RATE], reference[: SAMPLE_RATE], atol=1e-4)


def test_ffmpeg_missing_gives_install_hint(monkeypatch, sample_wav):
    from vidtrans.errors import MissingDependencyError

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda n, *a, **k: None if n in ("ffmpeg", "ffprobe") else real_which(n, *a, **k))
    with pytest.raises(MissingDependencyError, match="ffmpeg"):
        load_audio(sample_wav)


def test_shared_eval_clips_all_decode(shared_manifest, shared_eval):
    """Every clip in ../shared/eval (wav/flac/mp3/opus, 16-48 kHz, mono/stereo) decodes to its stated length."""
    for e in shared_manifest["asr"]:
        x = load_audio(shared_eval / e["file"])
        assert len(x) / SAMPLE_RATE == pytest.approx(e["audio"]["duration_s"], abs=0.1), e["file"]
        assert not is_silent(x), e["file"]
