"""Batches (issue #13): run directory + stage cache, retries, kill/resume, Ray executor, notebooks.

Real audio (slices of pyannote's bundled two-speaker sample), the real tiny.en
model with speakers off, real worker processes, a real loopback HTTP server
and a real local Ray cluster on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, ffmpeg, run_notebook
from httpfixtures import LoopbackServer, http_server  # noqa: F401
from vidtrans.batch import BatchOptions, BatchReport, plan, run_batch, status_table, url_stem
from vidtrans.pipeline import PipelineOptions
from vidtrans.rundir import read_events
from vidtrans.schema import Transcript

FAST = dict(model="tiny.en", diarize=False, cpu_threads=1, language="en")
CAPTIONS = ("vtt", "srt", "txt")


@pytest.fixture(scope="module")
def clips(sample_wav: Path, tmp_path_factory) -> Path:
    """Four 7 s slices of the sample, each with speech."""
    d = tmp_path_factory.mktemp("clips")
    for i, start in enumerate((4, 10, 16, 22)):
        ffmpeg("-ss", str(start), "-t", "7", "-i", str(sample_wav), "-ac", "1", "-ar", "16000", str(d / f"clip{i}.wav"))
    return d


@pytest.fixture(scope="module")
def local_batch(clips: Path, tmp_path_factory) -> tuple[Path, BatchReport]:
    """The clips batched once on the local executor (1 worker)."""
    out = tmp_path_factory.mktemp("local") / "out"
    report = run_batch([str(clips)], PipelineOptions(**FAST), BatchOptions(out_dir=str(out), workers=1, progress=False))
    return out, report


def _files(out: Path) -> dict[str, int]:
    """Every file under *out* (report and log aside) -> mtime_ns."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and p.parent != out}


def _no_temp_files(out: Path) -> None:
    leftovers = [p for p in out.rglob(".*") if p.is_file()]
    assert not leftovers, leftovers


def test_plan_names_items_without_network(clips, tmp_path):
    items = plan([str(clips), "https://www.youtube.com/watch?v=abc123", "http://127.0.0.1:1/a/talk.mp4",
                  "http://127.0.0.1:2/b/talk.mp4", str(tmp_path / "gone.wav")])
    stems = [i.stem for i in items]
    assert stems[:4] == ["clip0", "clip1", "clip2", "clip3"]
    assert stems[4] == "abc123" and stems[5] == "talk" and stems[6].startswith("talk-") and stems[7] == "gone"
    assert len(set(stems)) == len(stems)
    assert url_stem("https://example.com/feed/") == "feed"
    assert len(plan([str(clips)], limit=2)) == 2


def test_local_batch_writes_item_folders_and_report(local_batch, clips):
    out, report = local_batch
    assert report.totals["done"] == 4 and report.totals["failed"] == 0
    for i in range(4):
        d = out / f"clip{i}"
        status = json.loads((d / "status.json").read_text())
        assert status["state"] == "done" and status["vidtrans_version"]
        assert set(status["stages"]) == {"download", "transcribe", "captions"}
        for rec in status["stages"].values():
            assert rec["state"] == "done" and rec["input_hash"] and rec["options_hash"] and rec["seconds"] >= 0
        media = json.loads((d / "media.json").read_text())
        assert media["media"]["audio_path"] == str(clips / f"clip{i}.wav")
        t = Transcript.load(d / "transcript.json")
        assert t.words, f"clip{i}: no words"
        assert (d / f"clip{i}.vtt").read_text().startswith("WEBVTT")
    saved = json.loads((out / "batch_report.json").read_text())
    assert saved["totals"]["done"] == 4 and abs(saved["totals"]["audio_seconds"] - 28) < 0.5
    # one worker process, one model load for all four items
    assert list(saved["totals"]["whisper_model_loads_per_worker"].values()) == [1]
    kinds = [e["event"] for e in read_events(out / "batch.log.jsonl")]
    assert kinds[0] == "batch_start" and kinds[-1] == "batch_end" and kinds.count("item_done") == 4
    assert "4 items: 4 done" in report.format()
    _no_temp_files(out)


def test_changed_caption_option_reruns_only_captions(local_batch, clips, tmp_path):
    src, _ = local_batch
    out = tmp_path / "out"
    shutil.copytree(src, out)  # copy2 keeps the mtimes
    before = _files(out)
    again = run_batch([str(clips)], PipelineOptions(**FAST), BatchOptions(out_dir=str(out), progress=False))
    assert again.totals["cached"] == 4 and again.totals["done"] == 0
    assert _files(out) == before  # nothing rewritten, not even status.json

    narrow = PipelineOptions(**FAST, caption_options={"max_chars_per_line": 16})
    report = run_batch([str(clips)], narrow, BatchOptions(out_dir=str(out), progress=False))
    after = _files(out)
    for item in report.items:
        assert item["status"] == "done"
        assert item["stages"]["download"]["cached"] and item["stages"]["transcribe"]["cached"]
        assert not item["stages"]["captions"]["cached"]
    for name, mtime in before.items():
        if name.endswith(("media.json", "transcript.json")):
            assert after[name] == mtime, name  # not re-transcribed
        if name.endswith((".vtt", ".srt", "status.json")):
            assert after[name] != mtime, name
    assert all(len(line) <= 16 for line in (out / "clip3" / "clip3.vtt").read_text().splitlines()[2:] if "-->" not in line)
    assert report.totals["audio_seconds"] == 0  # re-captioning is not counted as transcribed audio


def test_http_batch_permanent_and_transient_failures(clips, http_server: LoopbackServer, tmp_path):  # noqa: F811
    srv = http_server
    for name in ("clip0", "clip1", "flaky"):
        srv.route(f"{name}.wav", clips / f"{'clip2' if name == 'flaky' else name}.wav")
    srv.add_fault("flaky.wav", status=503, times=1, body=b"busy")
    sources = [srv.url("clip0.wav"), srv.url("gone.wav"), srv.url("flaky.wav"), srv.url("clip1.wav")]
    out = tmp_path / "out"
    options = PipelineOptions(**FAST, download_options={"cache_dir": str(tmp_path / "cache"), "timeout": 10})
    report = run_batch(sources, options, BatchOptions(out_dir=str(out), workers=2, retries=2, retry_delay=0.05,
                                                      progress=False))
    by = {i["stem"]: i for i in report.items}
    assert {k: v["status"] for k, v in by.items()} == {"clip0": "done", "gone": "failed", "flaky": "done", "clip1": "done"}
    gone = by["gone"]
    assert gone["error"]["class"] == "NotFoundError" and "404" in gone["error"]["message"]
    assert gone["error"]["stage"] == "download" and not gone["error"]["transient"] and gone["attempts"] == 1
    flaky = by["flaky"]
    assert flaky["attempts"] == 2 and flaky["errors"][0]["transient"] and "503" in flaky["errors"][0]["message"]
    assert report.totals["failures_by_cause"] == {"NotFoundError": 1}
    assert json.loads((out / "gone" / "status.json").read_text())["error"]["class"] == "NotFoundError"
    assert Transcript.load(out / "flaky" / "transcript.json").words
    assert "NotFoundError" in report.format()
    retries = [e for e in read_events(out / "batch.log.jsonl") if e["event"] == "item_error"]
    assert {(e["item"], e["will_retry"]) for e in retries} == {("gone", False), ("flaky", True)}
    # a second run needs the network only for the item that failed
    srv.clear_log()
    again = run_batch(sources, options, BatchOptions(out_dir=str(out), workers=1, retries=0, progress=False))
    assert {i["stem"]: i["status"] for i in again.items} == {"clip0": "skipped", "gone": "failed", "flaky": "skipped",
                                                            "clip1": "skipped"}
    assert {r.path for r in srv.requests} == {"/gone.wav"}


def _batch_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "vidtrans.cli", "-q", "batch", str(src), "--out", str(out), "--model", "tiny.en",
            "--no-diarize", "--language", "en", "--threads", "1", "--workers", "1"]


def test_killed_batch_resumes_without_redoing_finished_items(clips, tmp_path):
    src = tmp_path / "media"
    src.mkdir()
    for i in range(4):  # six items: finishing the first leaves several unfinished when the kill comes
        shutil.copy(clips / f"clip{i}.wav", src / f"a{i}.wav")
    shutil.copy(clips / "clip0.wav", src / "a4.wav")
    shutil.copy(clips / "clip1.wav", src / "a5.wav")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_batch_cmd(src, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    done: list[str] = []
    while time.time() < deadline and proc.poll() is None:
        done = [r["item"] for r in status_table(out) if r["state"] == "done"]
        if done:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed = {r["item"]: r for r in status_table(out)}
    assert len(done) >= 1 and len([s for s in killed.values() if s["state"] == "done"]) < 6
    # the worker died with the batch process (nothing keeps writing behind our back)
    pids = {e["pid"] for e in read_events(out / "batch.log.jsonl") if e["event"] == "stage_start"}
    time.sleep(0.5)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    # nothing half-written under a final name
    for f in out.rglob("*.json"):
        json.loads(f.read_text())
    for f in out.rglob("*.vtt"):
        assert f.read_text().startswith("WEBVTT")
    finished = {name: m for name, m in _files(out).items() if name.split("/")[0] in killed
                and killed[name.split("/")[0]]["state"] == "done"}
    assert finished

    rerun = subprocess.run(_batch_cmd(src, out), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads((out / "batch_report.json").read_text())
    status = {i["stem"]: i["status"] for i in report["items"]}
    assert all(status[item] == "skipped" for item, r in killed.items() if r["state"] == "done")
    assert sorted(status) == [f"a{i}" for i in range(6)] and set(status.values()) <= {"done", "skipped"}
    after = _files(out)
    assert {k: after[k] for k in finished} == finished  # finished items' files untouched
    _no_temp_files(out)
    for i in range(6):
        assert Transcript.load(out / f"a{i}" / "transcript.json").words


def test_ray_executor_gives_the_same_outputs(local_batch, clips, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    local_out, _ = local_batch
    out = tmp_path / "out"
    from vidtrans.batch import BatchError

    try:
        # one actor, like the local batch's one worker: the same thread count per decoder, since
        # CTranslate2's results are not bit-identical across thread counts
        report = run_batch([str(clips)], PipelineOptions(**FAST),
                           BatchOptions(out_dir=str(out), workers=1, executor="ray", progress=False))
    except BatchError as exc:
        if "timed out during startup" in str(exc):  # Ray's own 30 s start-up limit on a saturated machine
            pytest.skip(f"a local Ray cluster could not start here: {exc}")
        raise
    import ray

    assert not ray.is_initialized()  # the local cluster it started is shut down
    assert report.totals["done"] == 4 and report.executor == "ray"
    workers = {(i["worker"]["pid"]) for i in report.items}
    assert workers and os.getpid() not in workers
    for i in range(4):
        for fmt in CAPTIONS:
            name = f"clip{i}/clip{i}.{fmt}"
            assert (out / name).read_text() == (local_out / name).read_text(), name
        a = Transcript.load(out / f"clip{i}" / "transcript.json")
        b = Transcript.load(local_out / f"clip{i}" / "transcript.json")
        assert a.segments == b.segments


def test_notebook_per_item_keeps_executed_notebook_without_secrets(clips, tmp_path, monkeypatch):
    secret = "aai_SECRETVALUE_never_in_any_notebook"
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", secret)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    out = tmp_path / "out"
    nb = ROOT / "notebooks" / "02_transcribe.ipynb"
    report = run_batch([str(clips / "clip1.wav")], PipelineOptions(**FAST),
                       BatchOptions(out_dir=str(out), notebook=str(nb), progress=False))
    assert report.totals["done"] == 1, report.format()
    executed = out / "clip1" / "02_transcribe.ipynb"
    text = executed.read_text()
    assert '"output_type": "error"' not in text and "tiny.en" in text
    assert secret not in text
    assert (out / "clip1" / "clip1.transcript.json").is_file()  # the notebook's own output, in the item folder
    status = json.loads((out / "clip1" / "status.json").read_text())
    assert set(status["stages"]) == {"download", "notebook"}


def test_batch_notebook_headless(clips, tmp_path):
    out = tmp_path / "nbout"
    nb_out = tmp_path / "07.ipynb"
    run_notebook(ROOT / "notebooks" / "07_batch.ipynb", nb_out, timeout=300,
                 sources=[str(clips / "clip0.wav"), str(clips / "clip3.wav"), str(tmp_path / "missing.wav")],
                 out_dir=str(out), model="tiny.en", workers=1)
    text = nb_out.read_text()
    assert '"output_type": "error"' not in text
    assert "MediaNotFoundError" in text and "image/png" in text
    report = json.loads((out / "batch_report.json").read_text())
    assert report["totals"]["done"] == 2 and report["totals"]["failed"] == 1


def test_feed_expands_into_items_with_limit(clips, http_server: LoopbackServer, tmp_path):  # noqa: F811
    from httpfixtures import write_rss_feed

    srv = http_server
    srv.route("ep1.wav", clips / "clip1.wav")
    srv.route("ep2.wav", clips / "clip2.wav")
    write_rss_feed(srv.root / "feed.xml", [
        {"url": srv.url("ep1.wav"), "title": "Episode One", "duration": 7, "guid": "ep-1", "type": "audio/wav"},
        {"url": srv.url("ep2.wav"), "title": "Episode Two", "duration": 7, "guid": "ep-2", "type": "audio/wav"},
    ])
    out = tmp_path / "out"
    options = PipelineOptions(**FAST, download_options={"cache_dir": str(tmp_path / "cache"), "timeout": 10})
    report = run_batch([srv.url("feed.xml")], options, BatchOptions(out_dir=str(out), limit=1, progress=False))
    assert [i["status"] for i in report.items] == ["done"] and report.totals["items"] == 1
    stem = report.items[0]["stem"]
    assert stem.startswith("Episode_One") and (out / stem / f"{stem}.vtt").is_file()
    assert not (out / "feed").exists()  # the feed itself gets no folder
    assert [d.name for d in out.iterdir() if d.is_dir()] == [stem]  # --limit 1: the second episode is not run


def test_one_batch_per_run_directory(tmp_path, clips):
    import fcntl

    from vidtrans.batch import BatchError

    with open(tmp_path / "batch.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # as a running batch holds it
        with pytest.raises(BatchError, match="another batch is running"):
            run_batch([str(clips)], PipelineOptions(**FAST), BatchOptions(out_dir=str(tmp_path), progress=False))
    assert not list(tmp_path.glob("clip*"))


@pytest.mark.slow
def test_turning_speakers_on_adds_diarization_without_retranscribing(local_batch, tmp_path):
    src, _ = local_batch
    out = tmp_path / "out"
    shutil.copytree(src / "clip1", out / "clip1")
    audio = json.loads((out / "clip1" / "media.json").read_text())["media"]["audio_path"]
    transcript_mtime = (out / "clip1" / "transcript.json").stat().st_mtime_ns
    options = PipelineOptions(**{**FAST, "diarize": True}, diarize_preset="fast")
    report = run_batch([audio], options, BatchOptions(out_dir=str(out), progress=False))
    stages = report.items[0]["stages"]
    assert stages["transcribe"]["cached"] and not stages["diarize"]["cached"] and not stages["captions"]["cached"]
    assert (out / "clip1" / "transcript.json").stat().st_mtime_ns == transcript_mtime
    rttm = (out / "clip1" / "clip1.rttm").read_text()
    assert rttm.startswith("SPEAKER clip1 1 ")
    final = Transcript.load(out / "clip1" / "clip1.json")
    assert all(w.speaker for w in final.words)
