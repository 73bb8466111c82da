"""Long runs hand freed heap memory back to the OS between phases (vidtrans._heap)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from vidtrans import _heap
from vidtrans._heap import malloc_trim, release_freed_memory
from vidtrans.pipeline import PipelineOptions, run

glibc = pytest.mark.skipif(malloc_trim() is None, reason="needs glibc's malloc_trim")


@pytest.fixture
def trims(monkeypatch):
    """Record malloc_trim calls instead of making them."""
    calls: list[int] = []
    monkeypatch.setattr(_heap, "malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    return calls


def test_release_only_for_long_inputs(trims):
    assert not release_freed_memory(_heap.TRIM_FROM_SECONDS - 1, "short")
    assert trims == []
    assert release_freed_memory(_heap.TRIM_FROM_SECONDS, "long")
    assert trims == [0]


def test_release_without_glibc_does_nothing(monkeypatch):
    monkeypatch.setattr(_heap, "malloc_trim", lambda: None)
    assert not release_freed_memory(7200, "two hours")


_FRAGMENTED = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    from vidtrans._heap import release_freed_memory

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    kept = []

    def work():
        # 64 KiB blocks come from the thread's malloc arena (below the mmap threshold); keeping every 16th
        # leaves holes that glibc neither returns nor can trim from the top of the heap
        blocks = [np.ones(8192) for _ in range(4000)]
        kept.extend(blocks[::16])

    t = threading.Thread(target=work)
    t.start()
    t.join()
    freed = rss_mb()
    release_freed_memory(float(sys.argv[1]), "test")
    print(freed, rss_mb())
    """
)


@glibc
@pytest.mark.parametrize("seconds", [7200.0, 60.0])
def test_release_returns_the_pages_another_thread_freed(seconds):
    """250 MB allocated and mostly freed by a helper thread stay resident until a long input's trim."""
    out = subprocess.run([sys.executable, "-c", _FRAGMENTED, str(seconds)], capture_output=True, text=True,
                         check=True)
    freed, after = map(float, out.stdout.split())
    assert freed > 200  # glibc kept what the thread freed
    if seconds >= _heap.TRIM_FROM_SECONDS:
        assert after < freed - 150
    else:
        assert after > freed - 20


@pytest.mark.slow
def test_pipeline_trims_after_each_long_phase(tmp_path, sample_wav, trims, monkeypatch, caplog):
    """With the threshold lowered to the 30 s sample: a trim once the speakers are embedded (before
    clustering) and one once diarization is done; at the default threshold, none."""
    caplog.set_level(logging.DEBUG, logger="vidtrans._heap")
    run(str(sample_wav), PipelineOptions(out_dir=str(tmp_path / "a"), model="tiny.en"))
    assert trims == []
    monkeypatch.setattr(_heap, "TRIM_FROM_SECONDS", 5.0)
    run(str(sample_wav), PipelineOptions(out_dir=str(tmp_path / "b"), model="tiny.en"))
    phases = [r.args[0] for r in caplog.records if r.name == "vidtrans._heap"]
    assert sorted(phases) == ["diarization", "speaker embeddings"]
    assert trims == [0, 0]


def test_engine_trims_after_an_up_front_vad_pass(sample_wav, trims, monkeypatch, caplog):
    """Inputs too long for the VAD beside decoding run it first; a long one trims right after it."""
    from vidtrans.audio import load_audio
    from vidtrans.transcribe import TranscribeOptions
    from vidtrans.transcribe.local import faster_whisper_engine

    caplog.set_level(logging.DEBUG, logger="vidtrans._heap")
    monkeypatch.setattr(_heap, "TRIM_FROM_SECONDS", 5.0)
    audio = load_audio(str(sample_wav))[: 8 * 16000]
    stream = faster_whisper_engine(audio, TranscribeOptions(model="tiny.en", extra={"vad_in_background_seconds": 0}))
    assert [r.args[0] for r in caplog.records if r.name == "vidtrans._heap"] == ["voice activity detection"]
    assert trims == [0]
    assert list(stream)
