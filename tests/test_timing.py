"""Word timing (vidtrans.timing): bound against a forced alignment, and properties on real speech."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from vidtrans.schema import Segment, Transcript, Word

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from align_score import read_textgrid, score  # noqa: E402

pytest.importorskip("faster_whisper")


def _words(t: Transcript) -> list[tuple[str, float, float]]:
    return [(w.text, w.start, w.end) for w in t.words]


def _transcribe(audio):
    from vidtrans.transcribe import TranscribeOptions, transcribe

    return transcribe(audio, TranscribeOptions(model="base", language="en"))


# --------------------------------------------------------------------------- the aligned clip
@pytest.fixture(scope="module")
def aligned_clip(shared_eval, shared_manifest):
    from vidtrans.audio import load_audio

    entry = shared_manifest["alignment"][0]
    audio = load_audio(shared_eval / entry["file"])
    return audio, read_textgrid(shared_eval / entry["word_alignment"]), _transcribe(audio)


def test_refined_word_times_meet_the_bound_on_a_forced_alignment(aligned_clip):
    """MFA word alignment of spontaneous English: Whisper's own times give ~73 % of words with
    both boundaries within 200 ms and a ~100 ms median start error; refined times must do far better."""
    pytest.importorskip("pocketsphinx")
    from vidtrans.timing import refine_words

    audio, ref, raw = aligned_clip
    refined = refine_words(raw, audio)
    before, after = score(ref, _words(raw)), score(ref, _words(refined))
    assert after.matched >= 45, after
    assert after.median_start <= 0.04, (before, after)
    assert after.median_end <= 0.05, (before, after)
    assert after.both_200 >= 0.85, (before, after)
    assert after.both_200 >= before.both_200 + 0.08, (before, after)
    info = refined.meta["word_timing"]
    assert info["refined"] and "pocketsphinx-align" in info["passes"]
    assert info["words_aligned"] >= 0.8 * info["words"]
    assert [w.text for w in refined.words] == [w.text for w in raw.words]  # text and order untouched


def test_sniffs_before_a_word_go_to_the_garbage_word_not_into_the_word(aligned_clip):
    """The speaker has a cold: at 6.6 s and 14.6 s a sniff, a pause, then "I" (MFA: 7.21 s, 15.39 s).
    Without the garbage word the aligner starts "I" on the sniff, 0.6-0.8 s early."""
    pytest.importorskip("pocketsphinx")
    from align_score import match

    from vidtrans.timing import TimingOptions, refine_words

    audio, ref, raw = aligned_clip

    def start_errors(options):
        pairs = match(ref, _words(refine_words(raw, audio, options)))
        return [s - r.start for r, s, _ in pairs if r.text == "i" and r.start is not None and r.start > 7.0]

    with_garbage, without = start_errors(TimingOptions()), start_errors(TimingOptions(garbage=0.0))
    assert len(with_garbage) == len(without) == 2
    assert all(abs(d) <= 0.1 for d in with_garbage), with_garbage
    assert all(d <= -0.3 for d in without), without


# --------------------------------------------------------------------------- properties on the pyannote sample
def _long_silences(audio: np.ndarray, min_len: float = 0.5) -> list[tuple[float, float]]:
    """Independent of vidtrans.timing: 20 ms RMS frames more than 30 dB under the clip's loud frames."""
    hop = 320
    n = audio.size // hop
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    quiet = db < np.percentile(db, 95) - 30
    out, start = [], None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * hop / 16000 >= min_len:
                out.append((start * hop / 16000, i * hop / 16000))
            start = None
    return out


@pytest.fixture(scope="module")
def sample_runs(sample_wav):
    """Whisper base on the pyannote sample, unrefined and refined."""
    pytest.importorskip("pocketsphinx")
    from vidtrans.audio import load_audio
    from vidtrans.timing import refine_words

    audio = load_audio(sample_wav)
    raw = _transcribe(audio)
    return audio, refine_words(raw, audio), raw


def _overlap_with(words, spans) -> float:
    return max((max(0.0, min(w.end, b) - max(w.start, a)) for w in words for a, b in spans), default=0.0)


def test_pipeline_refines_by_default_and_records_it(sample_wav, tmp_path):
    from vidtrans.pipeline import PipelineOptions, run

    res = run(str(sample_wav), PipelineOptions(out_dir=str(tmp_path), formats=("json",), model="tiny.en", diarize=False))
    info = res.transcript.meta["word_timing"]
    assert info["refined"] is True and info["words"] == len(res.transcript.words) > 40
    assert "word_timing" in res.timings
    saved = Transcript.load(res.outputs["json"])
    assert saved.meta["word_timing"]["refined"] is True


def test_refined_words_are_ordered_timed_and_out_of_long_silences(sample_runs):
    audio, refined, raw = sample_runs
    words = refined.words
    duration = audio.size / 16000
    assert words and all(np.isfinite([w.start, w.end]).all() for w in words)
    assert all(0.0 <= w.start <= w.end <= duration + 1e-6 for w in words)
    assert all(a.start <= b.start and a.end <= b.start + 1e-9 for a, b in zip(words, words[1:])), "overlap/order"
    for seg in refined.segments:
        if seg.words:
            assert seg.start == seg.words[0].start and seg.end == seg.words[-1].end
    silences = _long_silences(audio)
    assert silences, "the sample has pauses"
    # no word reaches more than 50 ms into a long silence; Whisper's own times do (teeth of the test)
    assert _overlap_with(words, silences) <= 0.05, silences
    assert _overlap_with(raw.words, silences) > 0.1


# --------------------------------------------------------------------------- units
def test_words_in_a_silence_numbers_and_symbols_all_get_times():
    from vidtrans.timing import TimingOptions, refine_words

    sr = 16000
    rng = np.random.default_rng(0)
    t = np.arange(int(3.0 * sr)) / sr
    audio = (0.001 * rng.standard_normal(t.size)).astype(np.float32)
    burst = (t >= 0.5) & (t < 1.0) | (t >= 2.0) & (t < 2.5)
    audio[burst] += (0.3 * np.sin(2 * np.pi * 220 * t[burst]) * (1 + 0.5 * np.sin(2 * np.pi * 5 * t[burst]))).astype(np.float32)
    words = (Word(0.2, 0.9, " 20"), Word(1.2, 1.6, " %"), Word(1.9, 2.6, " -"))  # " %" wholly inside the 1.0-2.0 s pause
    tr = Transcript(segments=(Segment(0.2, 2.6, "20 % -", words=words),), language="de")  # not English: pause pass only
    out = refine_words(tr, audio, TimingOptions())
    ws = out.words
    assert [w.text for w in ws] == [" 20", " %", " -"]
    assert abs(ws[0].start - 0.5) <= 0.03 and 0.85 <= ws[0].end <= 1.03  # snapped out of the silence before it
    assert not (1.05 < (ws[1].start + ws[1].end) / 2 < 1.95)  # moved next to speech
    assert ws[1].end > ws[1].start and ws[2].end > ws[2].start
    assert all(a.end <= b.start for a, b in zip(ws, ws[1:]))
    assert abs(ws[2].start - 2.0) <= 0.03 and abs(ws[2].end - 2.5) <= 0.03
    assert out.meta["word_timing"]["passes"] == ["energy-pauses"]


def test_spoken_tokens_spell_numbers_and_symbols():
    from vidtrans.timing import letter_to_sound, spoken_tokens

    assert spoken_tokens(" 1995,") == ["nineteen", "ninety", "five"]
    assert spoken_tokens(" 20%") == ["twenty", "percent"]
    assert spoken_tokens(" 3.5") == ["three", "point", "five"]
    assert spoken_tokens(" 1,200") == ["one", "thousand", "two", "hundred"]
    assert spoken_tokens(" self-love") == ["self", "love"]
    assert spoken_tokens(" Don’t") == ["don't"]
    assert spoken_tokens(" —") == []
    assert letter_to_sound("niggarding").split()[:2] == ["N", "IH"]


@pytest.mark.parametrize("n", [1, 159, 400, 16000 * 61 + 37])
def test_band_energy_pads_each_block_as_a_padded_copy_of_the_whole_input_would(n):
    """band_energy_db zero-pads each 60 s block instead of copying the whole input padded (460 MB
    for two hours); frames across block edges and at both ends are the padded copy's exactly."""
    from vidtrans.timing import _WIN, HOP, band_energy_db

    x = (np.random.default_rng(n).standard_normal(n) * 0.1).astype(np.float32)
    hop = int(HOP * 16000)
    padded = np.pad(x, (_WIN // 2, _WIN // 2 + hop))
    frames = int(np.ceil(n / hop))
    idx = (np.arange(frames) * hop)[:, None] + np.arange(_WIN)[None, :]
    spec = np.abs(np.fft.rfft(padded[idx] * np.hanning(_WIN).astype(np.float32), n=512, axis=1)) ** 2
    freqs = np.fft.rfftfreq(512, 1.0 / 16000)
    want = 10.0 * np.log10(spec[:, (freqs >= 100.0) & (freqs <= 4000.0)].sum(axis=1) + 1e-10)
    np.testing.assert_array_equal(band_energy_db(x), want.astype(np.float32))


def test_method_none_and_bad_method():
    from vidtrans.errors import ConfigurationError
    from vidtrans.timing import TimingOptions, refine_words

    tr = Transcript(segments=(Segment(0.0, 1.0, "hi", words=(Word(0.0, 1.0, " hi"),)),))
    same = refine_words(tr, np.zeros(16000, dtype=np.float32), TimingOptions(method="none"))
    assert same.words == tr.words and same.meta["word_timing"]["refined"] is False
    with pytest.raises(ConfigurationError):
        refine_words(tr, np.zeros(16000, dtype=np.float32), TimingOptions(method="magic"))


@pytest.mark.parametrize("processes", [False, True], ids=["thread", "process"])
def test_segments_aligned_while_decoding_give_the_same_timing_as_aligning_afterwards(sample_runs, processes):
    """The pipeline aligns each segment in a worker process (a thread with ``processes=False``) as the
    engine yields it (SegmentAligner); refine_words takes those alignments, aligns what was not
    submitted itself, and the words and the recorded statistics equal a plain refine_words run: the
    one process makes the same attempts in the same order.  Non-English segments are not aligned."""
    from vidtrans.timing import SegmentAligner, TimingOptions, refine_words

    audio, refined, raw = sample_runs
    spoken = [s for s in raw.segments if s.words]
    assert len(spoken) >= 3
    with SegmentAligner(audio, TimingOptions(), processes=processes) as aligner:
        aligner.submit(spoken[0], "de")  # not English: skipped
        assert aligner.results() == {}
        for seg in spoken[:-1]:  # the last one is left to refine_words, as if the engine had changed it
            aligner.submit(seg, raw.language)
        done = aligner.results()
        out = refine_words(raw, audio, TimingOptions(), aligner)
    assert len(done) == len(spoken) - 1
    assert [(w.text, w.start, w.end) for w in out.words] == [(w.text, w.start, w.end) for w in refined.words]
    a, b = dict(out.meta["word_timing"]), dict(refined.meta["word_timing"])
    a.pop("seconds"), b.pop("seconds")
    assert a.pop("align_processes") is processes and b.pop("align_processes") is False
    assert a == b and a["segments_aligned"] + a["segments_failed"] == len(spoken)


def test_wide_beam_retries_stop_after_failing_until_one_helps(sample_wav):
    """A segment the default beams cannot align is retried with wide beams only until
    ``max_failed_retries`` retries have failed in the input; a retry that helps lifts the limit."""
    from vidtrans.audio import load_audio
    from vidtrans.timing import RetryBudget, TimingOptions, align_segments

    audio = load_audio(sample_wav)
    # forty words in half a second: no beam can fit them, so every segment fails both ways
    crammed = [Segment(t, t + 0.5, "", tuple(Word(t + i / 80, t + (i + 1) / 80, " nevertheless") for i in range(40)))
               for t in (8.0, 12.0, 16.0, 20.0, 24.0)]
    tr = Transcript(segments=tuple(crammed), duration=30.0, language="en")
    _, _, aligned, stats = align_segments(tr, audio, TimingOptions(max_failed_retries=2))
    assert not aligned.any()
    assert stats["segments_failed"] == 5 and stats["segments_retried"] == 2 and stats["segments_not_retried"] == 3
    budget = RetryBudget(TimingOptions(max_failed_retries=1))
    budget.record(False)
    assert not budget.allows()
    budget.record(True)  # a retry that aligned: retrying pays on this input, so it never stops
    budget.record(False)
    budget.record(False)
    assert budget.allows()


def test_the_wide_decoder_is_dropped_once_no_retry_can_be_made(sample_wav):
    """The wide-beam decoder (~90 MB) is kept while the retry budget may still allow a retry and
    dropped once it cannot (a two-hour phone call spends the budget in its first minutes)."""
    from vidtrans.audio import load_audio
    from vidtrans.timing import TimingOptions, _align_segment, _Decoders

    audio = load_audio(sample_wav)
    crammed = [Segment(t, t + 0.5, "", tuple(Word(t + i / 80, t + (i + 1) / 80, " nevertheless") for i in range(40)))
               for t in (8.0, 12.0)]
    opts = TimingOptions(max_failed_retries=2)
    decs = _Decoders(opts)
    assert _align_segment(decs, audio, crammed[0], opts)[0] is None
    assert decs._wide is not None and decs.retries.allows()
    assert _align_segment(decs, audio, crammed[1], opts)[0] is None
    assert decs._wide is None and not decs.retries.allows()


def _aligned_by_processes(raw, audio, workers=2):
    from vidtrans.timing import SegmentAligner, TimingOptions, refine_words

    with SegmentAligner(audio, TimingOptions(), workers=workers, processes=True) as aligner:
        for seg in raw.segments:
            aligner.submit(seg, raw.language)
        return refine_words(raw, audio, TimingOptions(), aligner)


def test_aligner_processes_match_one_aligner_on_real_speech(sample_runs):
    """On a GPU machine segments are aligned in worker processes (``SegmentAligner(workers=N)``).
    PocketSphinx carries state from one utterance to the next (a segment aligned right after
    another can move by a frame or a few), so the processes' times are not bit-equal to one
    aligner's; they must agree on almost every boundary and align as many words."""
    audio, refined, raw = sample_runs
    out = _aligned_by_processes(raw, audio)
    assert [w.text for w in out.words] == [w.text for w in refined.words]
    a = np.array([(w.start, w.end) for w in out.words])
    b = np.array([(w.start, w.end) for w in refined.words])
    assert np.mean(np.abs(a - b) <= 0.02) >= 0.9, np.abs(a - b).max()
    got, one = out.meta["word_timing"], refined.meta["word_timing"]
    assert got["align_workers"] == 2 and one["align_workers"] == 1
    assert got["words_aligned"] >= 0.9 * one["words_aligned"]
    assert got["segments_aligned"] + got["segments_failed"] == one["segments_aligned"] + one["segments_failed"]


def test_aligner_processes_meet_the_bound_on_a_forced_alignment(aligned_clip):
    audio, ref, raw = aligned_clip
    after = score(ref, _words(_aligned_by_processes(raw, audio, workers=3)))
    assert after.matched >= 45 and after.median_start <= 0.04 and after.median_end <= 0.05, after
    assert after.both_200 >= 0.85, after


@pytest.mark.parametrize("workers", [2, 1])
def test_aligner_processes_spend_the_retry_budget_in_submission_order(sample_wav, workers):
    """Two or more processes make the default-beam attempts; the wide-beam retries of the segments
    they cannot align are made in the main process in submission order.  One process makes the
    retries itself and hands its budget back.  Either way the budget runs out as it does for one
    aligner thread."""
    from vidtrans.audio import load_audio
    from vidtrans.timing import SegmentAligner, TimingOptions, align_segments

    audio = load_audio(sample_wav)
    crammed = [Segment(t, t + 0.5, "", tuple(Word(t + i / 80, t + (i + 1) / 80, " nevertheless") for i in range(40)))
               for t in (8.0, 12.0, 16.0, 20.0, 24.0)]
    tr = Transcript(segments=tuple(crammed), duration=30.0, language="en")
    opts = TimingOptions(max_failed_retries=2)
    with SegmentAligner(audio, opts, workers=workers, processes=True) as aligner:
        for seg in crammed:
            aligner.submit(seg, "en")
        _, _, aligned, stats = align_segments(tr, audio, opts, aligner.results(), aligner.retries)
        assert (aligner.retries.failed, aligner.retries.helped) == (2, False)
    assert not aligned.any()
    assert stats["segments_failed"] == 5 and stats["segments_retried"] == 2 and stats["segments_not_retried"] == 3


@pytest.mark.parametrize("workers", [2, 1])
def test_aligner_processes_that_cannot_start_leave_the_work_to_the_main_process(sample_runs, monkeypatch, caplog, workers):
    """No worker process (here: no Python to start): every segment fails over to refine_words,
    which aligns them itself in order -- one aligner's exact times, with a warning, and no hang."""
    import logging
    import sys

    audio, refined, raw = sample_runs
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with caplog.at_level(logging.WARNING, logger="vidtrans._align_procs"):
        out = _aligned_by_processes(raw, audio, workers)
    assert _words(out) == _words(refined)
    assert any("alignment worker process failed" in r.getMessage() for r in caplog.records)


def test_alignment_processes_only_beside_a_gpu_decoder(monkeypatch):
    """One aligner process on a CPU (not a thread: PocketSphinx holds the GIL the decoder's Python
    steps need); on a GPU machine one process per physical core but one, at most MAX_ALIGN_WORKERS."""
    import ctranslate2

    from vidtrans import pipeline
    from vidtrans.pipeline import PipelineOptions, align_workers

    from vidtrans.transcribe import local

    monkeypatch.setattr(local, "cuda_library_problem", lambda: None)
    monkeypatch.setattr(pipeline, "_cores", lambda: 16)
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    assert align_workers(PipelineOptions()) == 1
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert align_workers(PipelineOptions()) == pipeline.MAX_ALIGN_WORKERS == 8
    assert align_workers(PipelineOptions(device="cpu")) == 1
    assert align_workers(PipelineOptions(engine="assemblyai")) == 1
    monkeypatch.setattr(pipeline, "_cores", lambda: 4)
    assert align_workers(PipelineOptions()) == 3
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    with pipeline.word_aligner(np.zeros(16000, dtype=np.float32), PipelineOptions()) as aligner:
        assert aligner.workers == 1 and aligner.processes
    monkeypatch.setattr(pipeline, "_cores", lambda: 1)  # a one-core Colab GPU runtime: the thread
    assert align_workers(PipelineOptions()) == 1
    monkeypatch.setattr(pipeline, "_cores", lambda: 16)
    monkeypatch.setattr(local, "cuda_library_problem", lambda: "no cuBLAS")  # decoding falls back to the CPU
    assert align_workers(PipelineOptions()) == 1
    assert align_workers(PipelineOptions(align_workers=3)) == 3


def test_align_worker_processes_return_results_raise_errors_and_survive_a_killed_worker():
    """The worker protocol itself: results and exceptions come back; a task that cannot be pickled
    fails alone; a worker that dies (killed, here it exits mid-task) fails that task and every later
    one it takes with AlignWorkerError instead of hanging; queued tasks are cancelled on shutdown."""
    import os

    from vidtrans._align_procs import AlignProcesses, AlignWorkerError

    procs = AlignProcesses(1)
    try:
        assert procs.submit(len, "abcd").result(timeout=60) == 4
        with pytest.raises(ValueError):
            procs.submit(int, "not a number").result(timeout=60)
        with pytest.raises(AlignWorkerError, match="cannot send the task"):  # fails alone, the worker stays
            procs.submit(len, os).result(timeout=60)
        assert procs.submit(len, "abc").result(timeout=60) == 3
        dying = procs.submit(os._exit, 3)
        later = procs.submit(len, "ab")
        with pytest.raises(AlignWorkerError, match="alignment worker process failed"):
            dying.result(timeout=60)
        with pytest.raises(AlignWorkerError):
            later.result(timeout=60)
    finally:
        procs.shutdown()


def test_align_worker_shutdown_without_waiting_returns_while_the_worker_finishes():
    """``shutdown(wait=False)`` (the pipeline's, once every result is in) leaves the worker's exit off
    the caller's path: it returns while the worker is still busy, and the worker then finishes its
    task and its process exits on its own.  Until it has, interpreter exit would wait for it (an
    atexit entry, unregistered once the worker is reaped), so its CPU time counts as this process's."""
    import atexit
    import time

    from vidtrans._align_procs import AlignProcesses

    procs = AlignProcesses(1)
    assert procs.submit(len, "warm").result(timeout=60) == 4  # the process is up
    busy = procs.submit(time.sleep, 1.0)
    while not busy.running():
        time.sleep(0.01)
    exits = atexit._ncallbacks()
    t0 = time.perf_counter()
    procs.shutdown(cancel_futures=True, wait=False)
    assert time.perf_counter() - t0 < 0.5 and not busy.done()
    assert atexit._ncallbacks() == exits + 1
    assert busy.result(timeout=60) is None
    for t in procs._threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert procs._alive == 0  # (and the atexit entry unregistered)


@pytest.mark.skipif(not __import__("pathlib").Path("/proc/self/status").exists(), reason="reads /proc")
def test_align_worker_memory_stays_flat_over_many_segments(sample_runs):
    """The worker returns what PocketSphinx frees after each segment (glibc's malloc_trim): aligning the
    sample's segments over and over (5 minutes of speech) leaves its RSS near the models' alone.
    Without the trim it grew by ~55 MB (123 -> 179 MB)."""
    import dataclasses
    import os

    from vidtrans.timing import SegmentAligner, TimingOptions

    audio, _, raw = sample_runs
    long = np.tile(audio, 10)
    segments = [s for s in raw.segments if s.words]

    def rss_mb(pid: int) -> float:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024

    aligner = SegmentAligner(long, TimingOptions(), workers=1, processes=True)
    try:
        pid = aligner._processes().submit(os.getpid).result(timeout=60)  # after the models' warm-up
        warm, after = rss_mb(pid), []
        for k in range(10):
            dt = k * audio.size / 16000
            for s in segments:
                words = tuple(dataclasses.replace(w, start=w.start + dt, end=w.end + dt) for w in s.words)
                aligner.submit(dataclasses.replace(s, start=s.start + dt, end=s.end + dt, words=words), "en")
            assert all(len(r) == 2 for r in aligner.results().values())
            aligner._processes().submit(len, "").result(timeout=60)  # answered once the last task's trim is done
            after.append(rss_mb(pid))
        assert max(after) - warm < 20, (warm, after)
    finally:
        aligner.close()


@pytest.mark.skipif(not hasattr(__import__("os"), "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_align_worker_processes_run_idle_class_beside_the_decoder():
    """The aligner's process takes only cycles the decoder and its encoder leave (see
    vidtrans._threads.idle_process); the parent's own scheduling is untouched."""
    import os

    from vidtrans._align_procs import AlignProcesses

    procs = AlignProcesses(1)
    try:
        assert procs.submit(os.sched_getscheduler, 0).result(timeout=60) == os.SCHED_IDLE
    finally:
        procs.shutdown()
    assert os.sched_getscheduler(0) != os.SCHED_IDLE


def test_a_long_segment_is_aligned_in_pieces_cut_between_words(sample_runs):
    """Batched decoding (the GPU default) yields whole speech chunks of up to 30 s as segments.  One
    that long is aligned in windows of at most ``max_window`` cut at pauses between its words, which
    keeps a failure from costing every word of the chunk its alignment."""
    from vidtrans.timing import TimingOptions, _windows, refine_words

    audio, _, raw = sample_runs
    words = tuple(w for s in raw.segments for w in s.words)
    chunk = Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), words)
    assert chunk.end - chunk.start > 20
    merged = raw.replace(segments=(chunk,))
    opts = TimingOptions()
    wins = _windows(chunk, audio.size / 16000, opts)
    assert len(wins) >= 2
    assert [w[0] for w in wins] == [0] + [w[1] for w in wins[:-1]] and wins[-1][1] == len(words)  # every word once, in order
    for i0, i1, t0, t1 in wins:
        assert t1 - t0 <= opts.max_window + 2 * opts.pad
        assert t0 <= words[i0].start and t1 >= words[i1 - 1].end
    pieces = refine_words(merged, audio, opts)
    whole = refine_words(merged, audio, TimingOptions(max_window=1e9))
    assert pieces.meta["word_timing"]["segments_split"] == 1
    assert pieces.meta["word_timing"]["segments_aligned"] + pieces.meta["word_timing"]["segments_failed"] == len(wins)
    assert pieces.meta["word_timing"]["words_aligned"] >= whole.meta["word_timing"]["words_aligned"]
    assert [w.text for w in pieces.words] == [w.text for w in raw.words]
