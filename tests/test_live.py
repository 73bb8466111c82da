"""Live captions on real speech: a file at real-time pace, ffmpeg-served and stalling HTTP streams.

One run at real-time pace (the 30 s two-speaker pyannote sample, ~35 s); the
others read short clips as fast as the source delivers them.  Models are
loaded once per module and shared by every run.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import warnings
from pathlib import Path

import jiwer
import numpy as np
import pytest

from vidtrans.captions import validate_vtt
from vidtrans.errors import MissingDependencyError
from vidtrans.live import (
    LiveOptions, LiveSpeakers, LiveVttWriter, StreamingTranscriber, load_whisper, read_events, run_live,
)
from vidtrans.schema import Word, join_words

from conftest import ffmpeg, run_notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def whisper_tiny():
    return load_whisper("tiny.en", LiveOptions())


@pytest.fixture(scope="module")
def clip9(sample_wav: Path, media_dir: Path) -> Path:
    """6-15 s of the pyannote sample: 'Hello? Hello? Oh, hello. I didn't know you were there. ...'."""
    out = media_dir / "live_clip9.wav"
    if not out.exists():
        ffmpeg("-ss", "6", "-i", str(sample_wav), "-t", "9", "-ac", "1", "-ar", "16000", str(out))
    return out


def _norm(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c in " '").split())


def _run(source, tmp_path: Path, model, options: LiveOptions, **kw):
    tr = StreamingTranscriber(options, model=model)
    spk = LiveSpeakers(options, tr.vad) if options.speakers else None
    return run_live(source, tmp_path / "live.vtt", tmp_path / "words.jsonl", options, transcriber=tr,
                    speakers=spk, **kw)


def _check_append_only(result, events_path: Path) -> list[dict]:
    events = read_events(events_path)
    assert [e["text"] for e in events] == [w.text for w in result.words]
    assert [e["speaker"] for e in events] == [w.speaker for w in result.words]
    for a, b in zip(events, events[1:]):  # never a word twice: time moves forward word by word
        assert b["start"] >= a["end"] - 1e-6, (a, b)
        assert b["committed_at"] >= a["committed_at"]
    for e in events:
        assert e["end"] >= e["start"] >= 0
    assert any(e["text"][:1] == " " for e in events)  # the engine's leading spaces are kept
    assert join_words(e["text"] for e in events) == result.text
    return events


class _Watcher(threading.Thread):
    """Reads the VTT and the word log over and over while they grow."""

    def __init__(self, vtt: Path, events: Path):
        super().__init__(daemon=True)
        self.vtt, self.events = vtt, events
        self.stop = threading.Event()
        self.reads = 0
        self.bad: list[str] = []
        self.snapshots: list[list[str]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            if self.vtt.exists():
                text = self.vtt.read_bytes()
                report = validate_vtt(text)
                self.reads += 1
                if not report.ok:
                    self.bad.append(report.format())
            if self.events.exists():
                lines = self.events.read_text(encoding="utf-8").splitlines(keepends=True)
                self.snapshots.append([ln for ln in lines if ln.endswith("\n")])
            time.sleep(0.02)


# --------------------------------------------------------------------------- real-time file
@pytest.mark.slow
def test_file_at_realtime_pace_two_speakers(tmp_path, sample_wav, sample_reference_text, whisper_tiny):
    """The 30 s two-speaker sample read at real-time pace: files valid at every read, words never
    revised or repeated, two live speakers, latency bounded by what this machine can decode."""
    opts = LiveOptions(model="tiny.en", realtime=True)
    w = _Watcher(tmp_path / "live.vtt", tmp_path / "words.jsonl")
    w.start()
    t = time.monotonic()
    result = _run(sample_wav, tmp_path, whisper_tiny, opts)
    wall = time.monotonic() - t
    w.stop.set()
    w.join()
    assert wall >= 29.0  # it really ran at the pace of the audio

    # the VTT was valid every time it was read while growing, and at the end
    assert w.reads > 20 and not w.bad, w.bad[:1]
    final = validate_vtt(tmp_path / "live.vtt")
    assert final.ok, final.format()
    # committed words never change: every snapshot of the log is a prefix of the final log
    final_lines = (tmp_path / "words.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(w.snapshots) > 20
    for snap in w.snapshots:
        assert snap == final_lines[: len(snap)]
    assert any(0 < len(s) < len(final_lines) for s in w.snapshots)  # it really grew while read
    _check_append_only(result, tmp_path / "words.jsonl")

    # every committed word is in the captions, once, in order
    assert _caption_text(tmp_path / "live.vtt") == _norm(result.text)

    wer = jiwer.wer(_norm(sample_reference_text), _norm(result.text))
    assert wer < 0.45, (wer, result.text)

    # two voices in this telephone call; both got talk time
    assert len(result.speakers) == 2, result.talk_time
    assert len([v for v in result.talk_time.values() if v > 3]) == 2, result.talk_time
    assert "<v Speaker 2>" in (tmp_path / "live.vtt").read_text()

    # latency: bounded by the decode speed this (shared) machine delivered.  Only judged when the
    # machine kept up (decoding took less time than the audio lasted); an overloaded machine
    # necessarily falls behind and the bench, not this test, reports that.
    lat = np.array(result.latencies)
    decode = np.median([d["decode_seconds"] for d in result.decodes])
    # speaker labels: most words are written as soon as they are committed (the latest speaker
    # window covers them), not a step later
    assert len(result.speaker_waits) == len(result.words)
    assert np.mean(np.array(result.speaker_waits) < 0.05) >= 0.5, sorted(result.speaker_waits)
    # committed_at counts from the stream's first sample, not from opening the source
    assert 0 <= result.start_delay < 30
    # judged only when the machine kept up steadily: a tiny.en decode of this <= 15 s buffer takes
    # 0.1-0.7 s on 2 free cores; when other jobs starve some decodes (2-4 s each at load 8-9 here)
    # tiny.en's hypotheses stop agreeing for seconds and a 9 s median follows (seen 1 in ~6 runs)
    slow = np.percentile([d["decode_seconds"] for d in result.decodes], 90)
    if result.rtf < 0.9 and slow <= 1.5:
        # generous: one of five runs on a quiet 2-core box reached ~7 s; the bench reports the real figure
        assert np.median(lat) <= 4.0 + 4.0 * decode, (np.median(lat), decode)
        half = len(lat) // 2
        assert np.median(lat[half:]) <= np.median(lat[:half]) + 3.0 * decode + 3.0
    else:
        warnings.warn(f"latency not judged: decoding took {result.rtf:.2f} s per audio second here, 90th "
                      f"percentile decode {slow:.1f} s (median commit latency {np.median(lat):.1f} s)")


def _caption_text(path: Path) -> str:
    from vidtrans.captions import read_captions

    return _norm(" ".join(seg.text for seg in read_captions(path).segments))


# --------------------------------------------------------------------------- loopback streams
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (read from /proc, without connecting)."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(r.split()[1].endswith(want) and r.split()[3] == "0A" for r in rows):
            return True
    return False


@pytest.mark.slow
def test_ffmpeg_served_stream_that_stops(tmp_path, clip9, whisper_tiny):
    """ffmpeg serves a clip over HTTP at real-time pace and then closes: the run ends by itself,
    with everything committed in the log and the captions."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    port = _free_port()
    server = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip9),
         "-f", "wav", "-listen", "1", f"http://127.0.0.1:{port}/live.wav"],
        stdin=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if _listening(port):
                break
            time.sleep(0.05)
        else:
            pytest.skip("ffmpeg's HTTP server did not start")
        opts = LiveOptions(model="tiny.en", speakers=False, stall_timeout=20)
        result = _run(f"http://127.0.0.1:{port}/live.wav", tmp_path, whisper_tiny, opts)
    finally:
        server.kill()
        server.wait()
    assert not result.stalled
    assert 8.5 <= result.audio_seconds <= 9.5
    _check_append_only(result, tmp_path / "words.jsonl")
    assert "know you were there" in _norm(result.text), result.text
    report = validate_vtt(tmp_path / "live.vtt")
    assert report.ok and len(report.readability.cues) >= 2, report.format()
    assert "<v " not in (tmp_path / "live.vtt").read_text()  # speakers off: no voice spans


class _StallingWav(http.server.BaseHTTPRequestHandler):
    """Sends a WAV header and some seconds of audio, then stays silent on an open connection."""

    audio: np.ndarray = np.zeros(0, dtype=np.float32)
    release: threading.Event = threading.Event()

    def do_GET(self):  # noqa: N802 - http.server API
        pcm = (np.clip(self.audio, -1, 1) * 32767).astype("<i2").tobytes()
        header = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + struct.pack(
            "<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", 0xFFFFFFFF)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.end_headers()
        self.wfile.write(header)
        for i in range(0, len(pcm), 8000):
            self.wfile.write(pcm[i : i + 8000])
            self.wfile.flush()
        self.release.wait(60)  # the stall

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_stalled_stream_ends_cleanly(tmp_path, clip9, whisper_tiny):
    """A stream that stops sending (connection left open) ends after stall_timeout with every
    committed word flushed to the word log and the captions."""
    from vidtrans.audio import load_audio

    handler = type("H", (_StallingWav,), {"audio": load_audio(clip9), "release": threading.Event()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        opts = LiveOptions(model="tiny.en", speakers=False, stall_timeout=2.0)
        t = time.monotonic()
        result = _run(f"http://127.0.0.1:{httpd.server_address[1]}/stream.wav", tmp_path, whisper_tiny, opts)
        took = time.monotonic() - t
    finally:
        handler.release.set()
        httpd.shutdown()
        httpd.server_close()
    assert result.stalled
    assert took < 120
    assert 8.5 <= result.audio_seconds <= 9.5
    events = _check_append_only(result, tmp_path / "words.jsonl")
    assert len(events) >= 5 and "know you were there" in _norm(result.text), result.text
    assert validate_vtt(tmp_path / "live.vtt").ok
    # every committed word reached the captions too (the pending hypothesis was flushed at the end)
    assert _caption_text(tmp_path / "live.vtt") == _norm(result.text)


# --------------------------------------------------------------------------- pieces
def test_vtt_writer_is_valid_after_every_cue_and_never_straddles_a_page(tmp_path):
    """Cue blocks are appended whole: after every append the file validates, and no block crosses
    a page boundary (a reader can never see half of one)."""
    path = tmp_path / "w.vtt"
    writer = LiveVttWriter(path, labels=True)
    page = os.sysconf("SC_PAGE_SIZE")
    text = ("Bei Nacht & Nebel <sagte> sie: das geht schon, " * 3).split()
    t = 0.0
    for i in range(400):
        words = []
        for k in range(1 + i % 9):
            words.append(Word(round(t, 3), round(t + 0.3, 3), " " + text[(i + k) % len(text)], speaker=f"Speaker {1 + i % 2}"))
            t += 0.35
        t += 0.6
        writer.add(words)
        writer.emit(horizon=t, close_last=i % 3 == 0)
        data = path.read_bytes()
        assert validate_vtt(data).ok, validate_vtt(data).format()
    writer.close(horizon=t)
    data = path.read_bytes()
    report = validate_vtt(data)
    assert report.ok and len(report.readability.cues) == len(writer.cues) > 100
    assert len(data) > 3 * page
    pos = len(b"WEBVTT\n\n")
    for block in data[pos:].split(b"\n\n"):
        if block.strip(b"\n"):
            start = data.index(block, pos)
            assert start // page == (start + len(block) - 1) // page
            pos = start + len(block)
    assert "&amp;" in data.decode() and "&lt;sagte&gt;" in data.decode()


def test_microphone_without_sounddevice_or_portaudio_fails_with_an_install_hint():
    """No sounddevice -> the `vidtrans[live]` hint; sounddevice without PortAudio -> the apt hint;
    no input device -> SourceError.  (A machine with a real microphone skips.)"""
    from vidtrans.live import SourceError

    try:
        import sounddevice

        sounddevice.query_devices(kind="input")
    except ImportError:
        expected, match = MissingDependencyError, r"vidtrans\[live\]"
    except OSError:
        expected, match = MissingDependencyError, r"PortAudio"
    except Exception:  # sounddevice.PortAudioError: no input device
        expected, match = SourceError, r"microphone"
    else:
        pytest.skip("a microphone is present here")
    with pytest.raises(expected, match=match):
        run_live("mic", options=LiveOptions(speakers=False), transcriber=object())


@pytest.mark.slow
def test_cli_live_on_a_file(tmp_path, clip9, monkeypatch):
    """`vidtrans live FILE --out --events` as fast as possible: valid VTT, one event per word."""
    from vidtrans.cli import main

    out, ev = tmp_path / "cli.vtt", tmp_path / "cli.jsonl"
    rc = main(["-q", "live", str(clip9), "--out", str(out), "--events", str(ev), "--no-speakers", "--step", "2"])
    assert rc == 0
    assert validate_vtt(out).ok
    events = read_events(ev)
    assert events and all(set(e) >= {"text", "start", "end", "speaker", "committed_at"} for e in events)
    assert "know you were there" in _norm(join_words(e["text"] for e in events))


def test_cli_live_bad_source(tmp_path, capsys):
    from vidtrans.cli import main

    rc = main(["live", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "x.vtt")])
    assert rc == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_notebook_08_live_headless(tmp_path, clip9):
    nb = ROOT / "notebooks" / "08_live.ipynb"
    out = tmp_path / "08.ipynb"
    run_notebook(nb, out, timeout=600, source=str(clip9), realtime=False, speakers=False, step=2.0,
                 out_vtt=str(tmp_path / "nb.vtt"), events=str(tmp_path / "nb.jsonl"))
    cells = json.loads(out.read_text())["cells"]
    text = json.dumps([c.get("outputs", []) for c in cells])
    assert "committed" in text
    assert validate_vtt(tmp_path / "nb.vtt").ok
    assert read_events(tmp_path / "nb.jsonl")


def test_no_repeated_commits_at_end_of_stream(sample_wav, whisper_tiny):
    """Issue #14: with 2 s steps (a loaded machine) Whisper, prompted with the committed text, looped on
    the sample's last sentence in the trailing silence and it was committed 4-6 times. Fed as fast as
    possible, committed words must keep time order and no >= 4-word n-gram may repeat back to back."""
    import soundfile as sf

    from vidtrans.live.streaming import SAMPLE_RATE

    audio, sr = sf.read(str(sample_wav), dtype="float32")
    assert sr == SAMPLE_RATE
    tr = StreamingTranscriber(LiveOptions(model="tiny.en"), model=whisper_tiny)
    words = []
    n = 2 * SAMPLE_RATE
    for i in range(0, audio.size, n):
        tr.insert(audio[i : i + n])
        words += tr.process()
    words += tr.finish()
    assert len(words) > 50
    for a, b in zip(words, words[1:]):
        assert b.start >= a.end - 0.05, (a, b)
    seq = [_norm(w.text) for w in words]
    for n_ in range(4, len(seq) // 2 + 1):
        for i in range(len(seq) - 2 * n_ + 1):
            assert seq[i : i + n_] != seq[i + n_ : i + 2 * n_], " ".join(seq[i : i + 2 * n_])


# --------------------------------------------------------------------------- adaptive step, speaker lag
def test_adaptive_step_follows_decode_time(clip9, whisper_tiny):
    """Live sources: the step is step_factor x the recent decode time within [min_step, max_step]
    (short when decoding is fast, so LocalAgreement-2 commits sooner; long when it is slow), and a
    decoder too slow for max_step falls back to the smaller model."""
    from vidtrans.audio import load_audio
    from vidtrans.live.streaming import SAMPLE_RATE, DecodeStats

    opts = LiveOptions(model="tiny.en", speakers=False, min_step=0.5)
    assert LiveOptions().adaptive_step and opts.min_step < opts.step < opts.max_step
    tr = StreamingTranscriber(opts, model=whisper_tiny)
    audio = load_audio(clip9)
    n = int(0.5 * SAMPLE_RATE)
    decodes = 0
    for i in range(0, audio.size, n):
        tr.insert(audio[i : i + n])
        tr.process()
        tr.adapt()
        if len(tr.history) > decodes:  # it decoded: the step follows the real decode times of this machine
            decodes = len(tr.history)
            recent = sorted(h.decode_seconds for h in list(tr.history)[-3:])
            want = min(opts.max_step, max(opts.min_step, opts.step_factor * recent[len(recent) // 2]))
            assert tr.step == pytest.approx(want, abs=1e-6), (tr.step, recent)
    assert decodes >= 5

    def decoded(seconds: float, new_audio: float) -> None:
        tr.history.append(DecodeStats(tr.audio_end, 5.0, new_audio, seconds, seconds, tr.model_name, 0, 0))
        tr.decode_ratio = 0.7 * tr.decode_ratio + 0.3 * seconds / new_audio

    for _ in range(3):  # fast decodes: the shortest step (the fixed 1 s step waited twice as long)
        decoded(0.12, tr.step)
    tr.adapt()
    assert tr.step == pytest.approx(opts.min_step)
    for _ in range(3):  # a loaded machine: the step grows with the decode time
        decoded(1.2, tr.step)
    tr.adapt()
    assert tr.step == pytest.approx(1.8)
    for _ in range(3):
        decoded(2.6, tr.step)
    tr.adapt()
    assert tr.step == opts.max_step
    assert tr.model_name == "tiny.en" and not tr.switches  # tiny.en has nothing smaller to fall back to

    # the old fixed step (adaptive_step=False) stays at `step` while decoding keeps up
    fixed = StreamingTranscriber(LiveOptions(model="tiny.en", speakers=False, adaptive_step=False), model=whisper_tiny)
    for _ in range(4):
        fixed.history.append(DecodeStats(0.0, 5.0, 1.0, 0.12, 0.12, "tiny.en", 0, 0))
        fixed.decode_ratio = 0.12
        fixed.adapt()
    assert fixed.step == 1.0


def test_pending_words_wait_at_most_max_pending(sample_wav, whisper_tiny):
    """Overlapping telephone speech keeps tiny.en's hypothesis head changing, so LocalAgreement-2 alone
    left words pending for 4.5-6 s (committed up to 9 s after they were spoken in the bench); with max_pending
    no word stays pending longer than that behind the newest audio, and the commits stay in order."""
    from vidtrans.audio import load_audio
    from vidtrans.live.streaming import SAMPLE_RATE

    audio = load_audio(sample_wav)

    def oldest_pending(max_pending: float) -> tuple[float, list[Word]]:
        tr = StreamingTranscriber(LiveOptions(model="tiny.en", speakers=False, max_pending=max_pending),
                                  model=whisper_tiny)
        worst, words = 0.0, []
        for i in range(0, audio.size, SAMPLE_RATE):
            tr.insert(audio[i : i + SAMPLE_RATE])
            words += tr.process()
            if tr.tentative:
                worst = max(worst, tr.audio_end - tr.tentative[0].end)
        return worst, words + tr.finish()

    assert LiveOptions().max_pending == 3.0
    unbounded, _ = oldest_pending(0.0)
    # a bound below the stall this clip has without one: 4.6 s on an AMX Xeon, 2.66 s on an AMD EPYC
    # (tiny.en's int8 numbers differ by CPU), so the test bound is 1.5 s rather than the default
    bounded, words = oldest_pending(1.5)
    assert unbounded > 1.5 + 0.5, unbounded  # the stall is real on this clip
    assert bounded <= 1.5 + 1e-6, bounded
    assert len(words) > 50
    for a, b in zip(words, words[1:]):
        assert b.start >= a.end - 1e-6, (a, b)
    # "Hello? Hello? Oh, hello.": tiny.en adds zero-length copies of "Hello?" that two decodes agreed
    # on (four were committed); a squeezed repeat is dropped, so at most the three said are written
    hellos = [w for w in words if w.start < 10.0 and _norm(w.text) == "hello"]
    assert 1 <= len(hellos) <= 3, [(w.text, w.start, w.end) for w in hellos]


def test_squeezed_repeats_are_dropped_from_a_hypothesis():
    """JFK, base, 1 s steps: after "ask not" and a pause the buffer restarts with "What?" squeezed into
    60 ms of silence before the real "What your country"; the squeezed copy goes, real repeats stay.
    Squeezed copies of the words just before go too."""
    from vidtrans.live.streaming import _drop_squeezed_repeats

    hyp = [Word(4.32, 4.38, " What?"), Word(5.02, 5.56, " What"), Word(5.56, 5.78, " your")]
    assert [w.start for w in _drop_squeezed_repeats(hyp)] == [5.02, 5.56]
    said_twice = [Word(1.0, 1.2, " the"), Word(1.3, 1.5, " the"), Word(1.5, 1.9, " cat")]
    assert _drop_squeezed_repeats(said_twice) == said_twice
    short_but_different = [Word(1.0, 1.02, " a"), Word(1.02, 1.4, " cat")]
    assert _drop_squeezed_repeats(short_but_different) == short_but_different
    # tiny.en on JFK: a squeezed copy of the words just before ("Ask not. Ask not. Yeah.", "S s not")
    copy = [Word(2.22, 3.86, " Ask"), Word(3.86, 4.36, " not."), Word(4.36, 4.36, " Ask"), Word(4.36, 4.36, " not."),
            Word(4.36, 4.56, " Yeah.")]
    assert [w.text for w in _drop_squeezed_repeats(copy)] == [" Ask", " not.", " Yeah."]
    split = [Word(2.22, 3.82, " S"), Word(3.82, 3.86, "s"), Word(3.86, 4.36, " not.")]
    assert [w.text for w in _drop_squeezed_repeats(split)] == [" S", " not."]
    new_words = [Word(1.0, 1.5, " ask"), Word(1.5, 1.55, " not"), Word(1.55, 2.0, " what")]
    assert _drop_squeezed_repeats(new_words) == new_words  # squeezed but no copy: kept
    # tiny.en on JFK (AMD EPYC): a squeezed copy of the last phrase whose last word took the audio left
    said = [Word(8.26, 8.66, " Ask"), Word(8.66, 8.96, " what"), Word(8.96, 9.26, " you"), Word(9.26, 9.46, " can"),
            Word(9.46, 9.68, " do"), Word(9.68, 9.9, " for"), Word(9.9, 10.16, " your"), Word(10.16, 10.22, " country.")]
    squeezed = [Word(10.22, 10.22, w.text) for w in said[:-1]] + [Word(10.22, 10.42, " country.")]
    kept = _drop_squeezed_repeats(said + squeezed)
    assert [w.text for w in kept] == [w.text for w in said]
    assert (kept[-1].start, kept[-1].end) == (10.16, 10.42)  # the real "country." gets that audio
    # two squeezed words and a real, different one after them: not a copy
    different = said + [Word(10.22, 10.22, " Ask"), Word(10.22, 10.22, " what"), Word(10.22, 10.6, " else")]
    assert _drop_squeezed_repeats(different) == different


def test_squeezed_words_at_a_hypothesis_end_wait_for_audio():
    """A word aligned to < 0.1 s at the end of a decode is held back; the same word with audio is kept."""
    from vidtrans.live.streaming import _drop_squeezed_tail

    hyp = [Word(9.92, 10.22, " your"), Word(10.22, 10.38, " country."), Word(10.38, 10.38, " Ask")]
    assert [w.text for w in _drop_squeezed_tail(hyp)] == [" your", " country."]
    assert _drop_squeezed_tail(hyp[:2]) == hyp[:2]
    inside = [Word(1.0, 1.02, " a"), Word(1.02, 1.4, " cat")]  # short words inside a hypothesis stay
    assert _drop_squeezed_tail(inside) == inside
    assert _drop_squeezed_tail([Word(1.0, 1.0, " Ask")]) == []


def test_live_jfk_ends_on_what_was_said(shared_eval, whisper_tiny):
    """JFK, tiny.en, fed as fast as possible: the final decode ended "... for your country. Ask" with the
    "Ask" 0 ms long after the speech (a copy of the earlier "ask not"), and it was committed.  On an AMD
    EPYC (other int8 numbers) it ended "... your country. Ask what you can do for your[all 0 ms at 10.22 s]
    country.[10.22-10.42]": a squeezed copy of the last phrase whose last word took the audio left."""
    from vidtrans.audio import load_audio
    from vidtrans.live.streaming import SAMPLE_RATE

    audio = load_audio(shared_eval / "asr" / "en_jfk_inaugural.flac")
    tr = StreamingTranscriber(LiveOptions(model="tiny.en", speakers=False), model=whisper_tiny)
    words = []
    for i in range(0, audio.size, SAMPLE_RATE):
        tr.insert(audio[i : i + SAMPLE_RATE])
        words += tr.process()
    words += tr.finish()
    assert _norm(words[-1].text) == "country", join_words(words)
    assert all(w.end - w.start >= 0.1 for w in words[-3:]), [(w.text, w.start, w.end) for w in words[-3:]]


def test_adaptive_step_falls_back_to_a_smaller_model_at_max_step(whisper_tiny):
    """A decoder that cannot keep up even at max_step is replaced by the fallback model."""
    from vidtrans.live.streaming import DecodeStats

    # a "base" transcriber (tiny's weights stand in for base here; the switch is what is tested)
    tr = StreamingTranscriber(LiveOptions(model="base", language="en", fallback_model="tiny.en", speakers=False),
                              model=whisper_tiny)
    tr.history.append(DecodeStats(10.0, 8.0, tr.step, 2.9, 2.9, "base", 0, 0))
    tr.decode_ratio = 2.9 / tr.step
    tr.adapt()
    assert tr.step == 3.0 and tr.model_name == "base"  # first the longest step
    for _ in range(2):
        tr.history.append(DecodeStats(10.0, 8.0, 3.0, 2.9, 2.9, "base", 0, 0))
    tr.decode_ratio = 2.9 / 3.0
    change = tr.adapt()
    assert tr.model_name == "tiny.en" and tr.switches and "tiny.en" in change


def test_options_reject_bad_adaptive_step():
    from vidtrans.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="step_factor"):
        LiveOptions(step_factor=0.5).validate()
    with pytest.raises(ConfigurationError, match="min_step"):
        LiveOptions(min_step=4.0).validate()
    with pytest.raises(ConfigurationError, match="speaker_lookahead"):
        LiveOptions(speaker_lookahead=-1).validate()


def test_speaker_lookahead_labels_words_from_the_latest_window(sample_wav):
    """A committed word just past the settled speaker timeline takes the latest window's voice
    at once when no new voice is being decided, instead of waiting a step in the lag buffer."""
    from vidtrans.audio import load_audio
    from vidtrans.live import VadTracker
    from vidtrans.live.streaming import SAMPLE_RATE

    audio = load_audio(sample_wav)[: 12 * SAMPLE_RATE]
    opts = LiveOptions()
    vad = VadTracker(opts.vad_threshold)
    spk = LiveSpeakers(opts, vad)
    strict = LiveSpeakers(LiveOptions(speaker_lookahead=0.0), VadTracker(opts.vad_threshold), embedder=spk.embedder)
    ahead = 0
    for i in range(0, audio.size, SAMPLE_RATE // 2):
        block = audio[i : i + SAMPLE_RATE // 2]
        for s in (spk, strict):
            s.vad.update(block)
            s.insert(block)
            s.update()
        assert strict.labelled_until == strict.settled
        assert spk.settled == pytest.approx(strict.settled)
        if spk._candidates or not spk.timeline or spk.timeline[-1][2] is None:
            assert spk.labelled_until == spk.settled  # a new voice pending, or silence: wait
        else:
            assert spk.labelled_until == pytest.approx(spk.settled + 0.5)
            ahead += 1
            w = Word(spk.settled + 0.1, spk.labelled_until - 0.05, " word")
            assert spk.speaker_of(w) == spk.timeline[-1][2]
        assert spk.labelled_until <= spk.audio_end
    assert ahead >= 3 and spk.speakers  # 4 of the 24 half-second updates on this clip (deterministic)


def test_agreement_gap_compares_with_a_hypothesis_a_second_older(clip9, whisper_tiny):
    """With 0.5 s steps and agreement_gap 1.0 a word is committed only when a decode made at least
    1 s of audio earlier had it too (two decodes 0.5 s apart agree on errors too easily)."""
    from vidtrans.audio import load_audio
    from vidtrans.live.streaming import SAMPLE_RATE, _norm as norm

    tr = StreamingTranscriber(LiveOptions(model="tiny.en", speakers=False, agreement_gap=1.0, silence_flush=0,
                                         max_pending=0),
                              model=whisper_tiny)
    audio = load_audio(clip9)
    n = SAMPLE_RATE // 2
    seen: list[tuple[float, list[Word]]] = []  # every hypothesis, as the transcriber decoded it
    committed = 0
    for i in range(0, audio.size, n):
        tr.insert(audio[i : i + n])
        before = len(tr._hyps)
        new = tr.process()
        if len(tr._hyps) > before:
            seen.append(tr._hyps[-1])
        for w in new:
            older = [h for t, h in seen if t <= tr.audio_end - 1.0 + 1e-6]
            # (a committed word's start may be moved up to the previous word's end, so match loosely)
            assert any(norm(x.text) == norm(w.text) and abs(x.end - w.end) < 1.0 for h in older for x in h), w
        committed += len(new)
    assert committed >= 5


def test_vad_decisions_do_not_depend_on_how_the_audio_is_chunked(sample_wav):
    """A real-time source delivers blocks of varying size; the speech/non-speech frames (which gate
    decoding, flush utterances and drive the speaker timeline) must be the same for any chunking.
    Silero's state ran across the frames of each call, so they differed (the third live speaker
    that made test_file_at_realtime_pace_two_speakers fail now and then)."""
    from vidtrans.audio import load_audio
    from vidtrans.live import VadTracker

    audio = load_audio(sample_wav)[: 16000 * 15]
    runs = []
    for chunk in (1600, 1234, 16000, 4097):
        vad = VadTracker(0.5)
        for i in range(0, audio.size, chunk):
            vad.update(audio[i : i + chunk])
        runs.append(list(vad._speech))
    n = min(len(r) for r in runs)
    assert n > 400 and 0.1 < np.mean(runs[0][:n]) < 0.9
    for r in runs[1:]:
        assert r[:n] == runs[0][:n]


def test_no_decode_once_every_word_heard_is_committed(whisper_tiny, monkeypatch):
    """When all words are committed and the VAD heard no speech after the last one, a decode can only echo the
    prompt into the silence (base ended the sonnet "... by the grave and thee. Pity the"): process() and
    finish() then do not decode, and the buffer is cut; speech after the last word is decoded as before."""
    from vidtrans.live.streaming import SAMPLE_RATE

    def run(speech_after: float) -> tuple[int, list[Word], float]:
        tr = StreamingTranscriber(LiveOptions(model="tiny.en", speakers=False), model=whisper_tiny)
        calls = []
        monkeypatch.setattr(tr, "_decode", lambda: calls.append(1) or [Word(2.1, 2.4, " Pity", probability=0.9)])
        # speech from 0 to 2 s, then `speech_after` seconds of it after 2.1 s
        monkeypatch.setattr(tr.vad, "speech_seconds",
                            lambda t0, t1=None: (2.0 - t0 if t0 < 2.0 else 0.0) + (speech_after if t0 < 2.2 else 0.0))
        tr.insert(np.zeros(3 * SAMPLE_RATE, dtype=np.float32))
        tr._commit([Word(0.5, 1.0, " by", probability=0.9), Word(1.0, 2.0, " thee.", probability=0.9)])
        words = tr.process() + tr.finish()
        return len(calls), words, tr.buf_t0

    calls, words, t0 = run(0.0)
    assert calls == 0 and words == []
    assert t0 >= 2.0  # the committed words' audio is dropped from the buffer
    calls, words, _ = run(0.3)
    assert calls >= 1 and [w.text for w in words] == [" Pity"]
