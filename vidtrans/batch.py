"""Batches at scale: many sources -> one resumable run directory, on local processes or Ray.

::

    from vidtrans.batch import BatchOptions, run_batch
    from vidtrans.pipeline import PipelineOptions

    report = run_batch(["talks/", "https://…/playlist"], PipelineOptions(model="base", diarize=False),
                       BatchOptions(out_dir="out", workers=2))
    report.totals["done"], report.totals["failed"]

Each source (file, folder, URL, playlist, channel, feed) becomes one or more
*items*; item ``<stem>`` lives in ``OUT/<stem>/`` and is brought up to date by
:func:`vidtrans.rundir.process_item` (a stage cache: finished items are not
touched again; see :mod:`vidtrans.rundir`).  Items run on an *executor*:

``local``
    a process pool (spawned processes; each loads its models once, on its
    first item, and keeps them for the following ones).  Each worker gets
    ``cores / workers`` CPU threads for CTranslate2 and torch.
``ray``
    the same per-item function in Ray actors (one model copy per actor;
    ``num_gpus`` is requested when the cluster has GPUs), on a running
    cluster (``ray_address``) or a local one started for the batch and shut
    down afterwards.  Ray is optional: ``pip install 'vidtrans[ray]'``.

Playlists, channels and feeds are found out by trying them: a URL item that
turns out to be a playlist is listed with :func:`vidtrans.download.expand`
and its entries are queued as items.  Transient errors are retried per item
(``retries``), permanent ones are recorded and the batch goes on.  The batch
writes ``OUT/batch.log.jsonl`` (JSON lines, workers included) and
``OUT/batch_report.json``; Ctrl-C or SIGTERM stops it cleanly, and a SIGKILL
leaves nothing half-written under a final name (workers die with the batch
process), so the same command resumes.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from ._io import atomic_write_text
from .errors import ConfigurationError, MissingDependencyError, VidtransError
from .pipeline import PipelineOptions, _is_url, _stem
from .rundir import EventLog, ItemOutcome, WorkerCrashedError, error_record, process_item

log = logging.getLogger(__name__)

REPORT = "batch_report.json"
LOG = "batch.log.jsonl"
EXECUTORS = ("local", "ray")
#: stages whose audio counts towards throughput
_HEAVY = ("transcribe", "diarize", "notebook")


class BatchError(VidtransError):
    """The batch itself cannot run (e.g. no Ray cluster to run on)."""

    exit_code = 5


@dataclass
class BatchOptions:
    """How a batch runs (what to run is :class:`~vidtrans.pipeline.PipelineOptions`)."""

    #: run directory: ``<out_dir>/<stem>/`` per item, plus the report and the log
    out_dir: str = "out"
    #: parallel workers (processes or Ray actors)
    workers: int = 1
    #: "local" (process pool) or "ray"
    executor: str = "local"
    #: Ray cluster address ("auto", "ray://host:10001", "127.0.0.1:6379"); None starts a local cluster
    ray_address: str | None = None
    #: at most this many items (after playlists are expanded); None = all
    limit: int | None = None
    #: retries of an item after a transient error (network, 5xx/429, busy service, crashed worker)
    retries: int = 2
    #: first retry delay in seconds (doubles per retry; a server's Retry-After wins when longer)
    retry_delay: float = 2.0
    #: run this stage notebook per item with papermill instead of the built-in stages
    notebook: str | None = None
    #: show a progress bar (items, audio hours, throughput, ETA)
    progress: bool = True
    #: CPU cores to share between workers; 0 = all this process may use
    cores: int = 0
    #: called with each ItemOutcome as it arrives (notebooks, tests)
    on_item: Callable[[ItemOutcome], None] | None = field(default=None, repr=False, compare=False)

    def validate(self) -> BatchOptions:
        if self.executor not in EXECUTORS:
            raise ConfigurationError(f"unknown executor {self.executor!r}; choose one of: {', '.join(EXECUTORS)}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigurationError(f"workers must be a positive integer, got {self.workers!r}")
        if self.retries < 0:
            raise ConfigurationError(f"retries must be >= 0, got {self.retries}")
        if self.limit is not None and self.limit < 0:
            raise ConfigurationError(f"limit must be >= 0, got {self.limit}")
        if self.notebook and not Path(self.notebook).is_file():
            raise ConfigurationError(f"notebook not found: {self.notebook}")
        return self


@dataclass(frozen=True)
class Item:
    """One unit of work: a source and the folder name it gets."""

    stem: str
    source: str


@dataclass
class BatchReport:
    """What ``OUT/batch_report.json`` holds."""

    items: list[dict[str, Any]]
    totals: dict[str, Any]
    started_at: float
    finished_at: float
    executor: str
    workers: int
    interrupted: bool = False
    vidtrans_version: str = __version__
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [i for i in self.items if i["status"] == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=str))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BatchReport:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def format(self) -> str:
        """A plain-text table: one row per item, then the totals."""
        rows = [("item", "status", "tries", "audio s", "stages (s; c = cached)", "error")]
        for it in self.items:
            stages = " ".join(f"{n}={'c' if s.get('cached') else format(s.get('seconds', 0), '.1f')}"
                              for n, s in (it.get("stages") or {}).items())
            err = it.get("error") or {}
            msg = f"{err.get('class')}: {err.get('message')}" if err else ""
            audio = it.get("audio_seconds")
            rows.append((it["stem"], it["status"], str(it.get("attempts", 1)),
                         f"{audio:.1f}" if audio else "-", stages, msg[:100]))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + ("  " + r[5] if r[5] else "") for r in rows]
        t = self.totals
        lines.append(
            f"{t['items']} items: {t['done']} done, {t['cached']} already done (skipped), {t['failed']} failed"
            + (f", {t['not_run']} not run (interrupted)" if t.get("not_run") else "")
            + f"; {t['audio_hours']:.3f} h audio in {t['wall_seconds']:.1f} s"
            + (f" = {t['throughput']:.1f} audio h per wall h" if t.get("throughput") else "")
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------- planning
def _safe(text: str, limit: int = 80) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_.")[:limit]


def url_stem(url: str) -> str:
    """A folder name for a URL item without any network access (``?v=ID``, else the last path part)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    if query.get("v"):
        return _safe(query["v"][0])
    name = Path(urllib.parse.unquote(parts.path.rstrip("/"))).stem
    return _safe(name) or _safe(parts.netloc) or "item"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def plan(sources: Iterable[str], limit: int | None = None) -> list[Item]:
    """Items for *sources* without network access: files, folders' media files, URLs (playlists expand later)."""
    from .download import MEDIA_EXTENSIONS

    items: list[Item] = []
    for src in sources:
        src = str(src)
        if _is_url(src) and not src.startswith("file://"):
            items.append(Item(url_stem(src), src))
            continue
        path = Path(urllib.parse.unquote(src[7:]) if src.startswith("file://") else src).expanduser()
        if path.is_dir():
            for p in sorted(path.iterdir()):
                if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS:
                    items.append(Item(_safe(p.stem) or "item", str(p)))
        else:  # a missing file becomes an item that fails with a clear error
            items.append(Item(_safe(path.stem) or "item", src))
    return unique_stems(items)[: limit if limit is not None else None]


def unique_stems(items: Sequence[Item], taken: Iterable[str] = ()) -> list[Item]:
    """Give items sharing a stem distinct ones (``<stem>-<hash of source>``); the same source is kept once."""
    seen_src: set[str] = set()
    used = set(taken)
    out = []
    for it in items:
        if it.source in seen_src:
            continue
        seen_src.add(it.source)
        stem = it.stem
        if stem in used:
            stem = f"{stem}-{_short_hash(it.source)}"
        used.add(stem)
        out.append(Item(stem, it.source))
    return out


def expand_playlist(source: str, options: PipelineOptions) -> list[Item]:
    """The entries of a playlist / channel / feed URL as items (stems ``<title>-<id>``)."""
    from . import download

    dl = download.DownloadOptions(**options.download_options)
    return [Item(_stem(m, m.source or ""), m.source or m.webpage_url or source) for m in download.expand(source, dl)]


# --------------------------------------------------------------------------- executors
def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _thread_env(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(threads)


def _init_worker(threads: int) -> None:
    """Process-pool initializer: thread counts, die with the batch process, let the batch handle Ctrl-C."""
    _thread_env(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):  # Linux: SIGKILL this worker when the batch process dies
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")


def _work(item: Item, options: PipelineOptions, out_root: str, kwargs: dict[str, Any]) -> ItemOutcome:
    return process_item(item.stem, item.source, options, out_root, **kwargs)


class LocalExecutor:
    """A pool of spawned worker processes; each keeps its models loaded between items."""

    def __init__(self, workers: int, threads: int):
        self.workers = workers
        self.threads = threads
        self._pool = self._new_pool()
        self._owner: dict[Any, Any] = {}  # future -> the pool it was submitted to

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.threads,))

    @property
    def capacity(self) -> int:
        return self.workers

    def submit(self, item: Item, options: PipelineOptions, out_root: str, kwargs: dict[str, Any]):
        fut = self._pool.submit(_work, item, options, out_root, kwargs)
        self._owner[fut] = self._pool
        return fut

    def wait(self, handles: list, timeout: float) -> list:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle) -> ItemOutcome:
        from concurrent.futures.process import BrokenProcessPool

        pool = self._owner.pop(handle, None)
        try:
            return handle.result()
        except BrokenProcessPool as exc:
            if pool is self._pool:  # the first crash report of this pool replaces it
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            raise WorkerCrashedError(f"worker process died ({exc})") from exc

    def close(self, cancel: bool = False) -> None:
        if cancel:
            procs = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:  # items caught mid-stage are redone on the next run
                with contextlib.suppress(Exception):
                    p.terminate()
            for p in procs:
                with contextlib.suppress(Exception):
                    p.join(5)
        else:
            self._pool.shutdown(wait=True)


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray", extra="ray", purpose="the Ray executor (--executor ray)") from exc
    return ray


class RayExecutor:
    """The same per-item function in Ray actors: one actor per worker, models loaded once per actor."""

    def __init__(self, workers: int, threads: int, address: str | None = None):
        ray = _ray()
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:  # a local cluster, on loopback only
                    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
                    ray.init(num_cpus=max(1, usable_cores()), **kwargs)
            except Exception as exc:  # Ray raises bare Exceptions (timeouts, refused connections)
                with contextlib.suppress(Exception):
                    ray.shutdown()
                where = f"connect to the Ray cluster at {address}" if address else "start a local Ray cluster"
                raise BatchError(f"cannot {where}: {exc}") from exc
            self.started = True
        res = ray.cluster_resources()
        cpus = float(res.get("CPU", 1))
        gpus = float(res.get("GPU", 0))
        # fractional CPUs: on a 2-core box two actors of num_cpus=1 leave nothing for anything else
        self.num_cpus = round(min(threads, cpus / workers) * 0.9, 3)
        self.num_gpus = round(gpus / workers, 3) if gpus else 0
        actor_threads = threads if address is None else max(1, int(cpus // workers))
        cls = ray.remote(_RayWorker).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=1)
        self.actors = [cls.remote(actor_threads) for _ in range(workers)]
        self.idle = list(self.actors)
        self.busy: dict[Any, Any] = {}

    @property
    def capacity(self) -> int:
        return len(self.actors)

    def submit(self, item: Item, options: PipelineOptions, out_root: str, kwargs: dict[str, Any]):
        actor = self.idle.pop(0) if self.idle else self.actors[len(self.busy) % len(self.actors)]
        ref = actor.process.remote(item, options, out_root, kwargs)
        self.busy[ref] = actor
        return ref

    def wait(self, handles: list, timeout: float) -> list:
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        return list(done)

    def result(self, handle) -> ItemOutcome:
        actor = self.busy.pop(handle, None)
        if actor is not None:
            self.idle.append(actor)
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayActorError as exc:
            raise WorkerCrashedError(f"Ray actor died ({type(exc).__name__})") from exc

    def close(self, cancel: bool = False) -> None:
        for a in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(a)
        if self.started:
            self.ray.shutdown()


class _RayWorker:
    """A Ray actor: sets its thread counts, then runs items; models stay loaded between items."""

    def __init__(self, threads: int):
        _thread_env(threads)
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
        self.threads = threads

    def process(self, item: Item, options: PipelineOptions, out_root: str, kwargs: dict[str, Any]) -> ItemOutcome:
        return _work(item, options, out_root, kwargs)


# --------------------------------------------------------------------------- progress
class _Progress:
    """tqdm bar over items, with audio hours, throughput (audio h per wall h) and an ETA."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        self.t0 = time.time()
        self.audio = 0.0
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="item", desc="batch", dynamic_ncols=True)

    def add_total(self, n: int) -> None:
        if self.bar is not None:
            self.bar.total += n
            self.bar.refresh()

    def update(self, outcome: ItemOutcome) -> None:
        if outcome.state == "done" and outcome.audio_seconds and any(
                not s.get("cached") for n, s in outcome.stages.items() if n in _HEAVY):
            self.audio += outcome.audio_seconds
        if self.bar is not None:
            wall = max(time.time() - self.t0, 1e-6)
            self.bar.set_postfix_str(f"{self.audio / 3600:.3f} h audio, {self.audio / wall:.1f} audio h/wall h")
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- the batch
def _item_row(o: ItemOutcome) -> dict[str, Any]:
    status = {"done": "done", "cached": "skipped", "failed": "failed"}.get(o.state, o.state)
    return {"stem": o.stem, "source": o.source, "status": status, "attempts": o.attempts, "stages": o.stages,
            "audio_seconds": o.audio_seconds, "error": o.error, "errors": o.errors, "outputs": o.outputs,
            "worker": o.worker, "started": o.started, "finished": o.finished,
            "seconds": round(o.finished - o.started, 3) if o.finished else None}


def _totals(rows: list[dict[str, Any]], pending: int, wall: float) -> dict[str, Any]:
    done = [r for r in rows if r["status"] == "done"]
    # throughput counts audio that was transcribed (or run through a notebook) in this run, not re-captioned
    audio = sum(r["audio_seconds"] or 0 for r in done
                if any(not s.get("cached") for n, s in (r["stages"] or {}).items() if n in _HEAVY))
    by_cause: dict[str, int] = collections.Counter(r["error"]["class"] for r in rows if r["status"] == "failed")
    loads = {}
    for r in rows:
        w = r.get("worker") or {}
        if "pid" in w:
            loads[f"{w.get('host')}:{w['pid']}"] = w.get("whisper_model_loads")
    return {
        "items": len(rows) + pending, "done": len(done), "failed": sum(r["status"] == "failed" for r in rows),
        "cached": sum(r["status"] == "skipped" for r in rows), "not_run": pending,
        "audio_seconds": round(audio, 3), "audio_hours": audio / 3600, "wall_seconds": round(wall, 3),
        "throughput": (audio / wall) if wall > 0 and audio else None,
        "failures_by_cause": dict(by_cause), "whisper_model_loads_per_worker": loads,
    }


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM stops the batch like Ctrl-C (clean shutdown, report written)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_batch(sources: Sequence[str], options: PipelineOptions | None = None,
              batch: BatchOptions | None = None) -> BatchReport:
    """Run every item of *sources* into ``batch.out_dir``; return (and save) the report.

    Raises KeyboardInterrupt after a Ctrl-C/SIGTERM, once the workers are
    stopped and a report marked ``interrupted`` is saved.
    """
    from . import captions

    options = options or PipelineOptions()
    batch = (batch or BatchOptions()).validate()
    for fmt in options.formats:
        captions.get_writer(fmt)  # a bad format name fails before any work
    out = Path(batch.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        return _run_batch(sources, options, batch, out)


@contextlib.contextmanager
def _exclusive(out: Path):
    """One batch per run directory at a time (an flock, released by the OS even after a SIGKILL)."""
    import fcntl

    with open(out / "batch.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise BatchError(f"another batch is running in {out}") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_batch(sources: Sequence[str], options: PipelineOptions, batch: BatchOptions, out: Path) -> BatchReport:
    events = EventLog(out / LOG)
    cores = batch.cores or usable_cores()
    threads = max(1, cores // batch.workers)
    if not options.cpu_threads:
        options = dataclasses.replace(options, cpu_threads=threads)
    listing = options  # playlists are listed in this process with the download module's own retries
    # one retry layer per item: the batch's (recorded in status.json); item downloads do not retry inside it
    options = dataclasses.replace(options, out_dir=str(out),
                                  download_options={"retries": 0, **options.download_options})
    kwargs = {"retries": batch.retries, "retry_delay": batch.retry_delay, "log_path": str(out / LOG),
              "notebook": str(Path(batch.notebook).resolve()) if batch.notebook else None}

    queue = collections.deque(plan(sources, batch.limit))
    stems = {i.stem for i in queue}
    planned = len(queue)
    rows: list[dict[str, Any]] = []
    crashes: dict[str, int] = collections.Counter()
    started = time.time()
    events.event("batch_start", items=len(queue), executor=batch.executor, workers=batch.workers, threads=threads,
                 sources=list(map(str, sources)), version=__version__)
    progress = _Progress(len(queue), batch.progress)
    in_flight: dict[Any, Item] = {}
    executor = None
    interrupted = False

    def finish(outcome: ItemOutcome) -> None:
        rows.append(_item_row(outcome))
        progress.update(outcome)
        if batch.on_item is not None:
            batch.on_item(outcome)

    try:
        with _sigterm_as_interrupt():
            executor = (RayExecutor(batch.workers, threads, batch.ray_address) if batch.executor == "ray"
                        else LocalExecutor(batch.workers, threads))
            while queue or in_flight:
                while queue and len(in_flight) < executor.capacity:
                    item = queue.popleft()
                    in_flight[executor.submit(item, options, str(out), kwargs)] = item
                for handle in executor.wait(list(in_flight), timeout=0.5):
                    item = in_flight.pop(handle)
                    try:
                        outcome = executor.result(handle)
                    except WorkerCrashedError as exc:
                        crashes[item.stem] += 1
                        events.event("worker_crash", item=item.stem, message=str(exc), attempt=crashes[item.stem])
                        if crashes[item.stem] <= batch.retries:
                            queue.appendleft(item)
                            # other items in flight on a broken pool come back as crashes too
                            continue
                        err = error_record(exc, None)
                        outcome = ItemOutcome(item.stem, item.source, "failed", attempts=crashes[item.stem],
                                              error=err, errors=[err], finished=time.time(), started=time.time())
                    except Exception as exc:  # an error outside process_item's own handling: fail the item, go on
                        log.exception("item %s failed outside its stages", item.stem)
                        err = error_record(exc, None)
                        outcome = ItemOutcome(item.stem, item.source, "failed", error=err, errors=[err],
                                              finished=time.time(), started=time.time())
                    if outcome.state == "playlist":
                        try:
                            entries = expand_playlist(item.source, listing)
                        except VidtransError as exc:
                            err = error_record(exc, "download")
                            finish(ItemOutcome(item.stem, item.source, "failed", error=err, errors=[err],
                                               started=outcome.started, finished=time.time()))
                            continue
                        entries = unique_stems(entries, taken=stems)
                        if batch.limit is not None:
                            entries = entries[: max(0, batch.limit - planned + 1)]
                        planned += len(entries) - 1
                        stems.update(e.stem for e in entries)
                        queue.extend(entries)
                        progress.add_total(len(entries) - 1)
                        events.event("playlist", source=item.source, entries=len(entries))
                        continue
                    finish(outcome)
    except KeyboardInterrupt:
        interrupted = True
        events.event("batch_interrupted", in_flight=[i.stem for i in in_flight.values()])
    finally:
        if executor is not None:
            executor.close(cancel=interrupted)
        progress.close()
    wall = time.time() - started
    not_run = len(queue) + len(in_flight)
    report = BatchReport(items=rows, totals=_totals(rows, not_run, wall), started_at=started, finished_at=time.time(),
                         executor=batch.executor, workers=batch.workers, interrupted=interrupted,
                         options={"pipeline": dataclasses.asdict(options),
                                  "batch": {k: v for k, v in dataclasses.asdict(batch).items() if k != "on_item"}})
    report.save(out / REPORT)
    events.event("batch_end", interrupted=interrupted, **{k: v for k, v in report.totals.items() if k != "whisper_model_loads_per_worker"})
    if interrupted:
        raise KeyboardInterrupt
    return report


# --------------------------------------------------------------------------- monitoring helpers
def status_table(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per item folder from its status.json (for live tables while a batch runs)."""
    rows = []
    for status_file in sorted(Path(out_dir).glob("*/status.json")):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            st = json.loads(status_file.read_text(encoding="utf-8"))
            stages = st.get("stages") or {}
            running = [n for n, r in stages.items() if r.get("state") == "running"]
            err = st.get("error") or {}
            rows.append({
                "item": st.get("item", status_file.parent.name), "state": st.get("state"),
                "stage": running[0] if running else ",".join(n for n, r in stages.items() if r.get("state") == "done"),
                "audio_s": st.get("audio_seconds"), "attempts": st.get("attempts", 1),
                "error": f"{err.get('class')}: {err.get('message')}" if err else "",
            })
    return rows


def throughput_curve(report: BatchReport | dict) -> list[tuple[float, float]]:
    """(wall seconds since start, audio hours finished so far) per finished item, for plots."""
    data = report.to_dict() if isinstance(report, BatchReport) else report
    t0 = data["started_at"]
    done = sorted((r["finished"], r["audio_seconds"] or 0) for r in data["items"] if r["status"] == "done")
    out, acc = [], 0.0
    for t, a in done:
        acc += a
        out.append((t - t0, acc / 3600))
    return out



class BackgroundBatch:
    """:func:`run_batch` in a background thread, for notebooks that show a live table meanwhile."""

    def __init__(self, sources: Sequence[str], options: PipelineOptions | None = None,
                 batch: BatchOptions | None = None):
        self.batch = batch or BatchOptions()
        self.out_dir = Path(self.batch.out_dir)
        self._report: BatchReport | None = None
        self._error: BaseException | None = None

        def target() -> None:
            try:
                self._report = run_batch(sources, options, self.batch)
            except BaseException as exc:  # handed to result()
                self._error = exc

        self._thread = threading.Thread(target=target, name="vidtrans-batch", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def table(self) -> list[dict[str, Any]]:
        """The item folders' current state (see :func:`status_table`)."""
        return status_table(self.out_dir)

    def result(self, timeout: float | None = None) -> BatchReport:
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        if self._report is None:
            raise TimeoutError("the batch is still running")
        return self._report


def plot_summary(report: BatchReport | dict, axes: Any = None) -> Any:
    """Two panels: audio hours finished over wall time (with throughput), and failures by cause."""
    import matplotlib.pyplot as plt

    data = report.to_dict() if isinstance(report, BatchReport) else report
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    ax1, ax2 = axes
    curve = throughput_curve(data)
    if curve:
        xs = [0.0] + [t for t, _ in curve]
        ys = [0.0] + [h for _, h in curve]
        ax1.step(xs, ys, where="post", marker="o")
        rate = ys[-1] / (xs[-1] / 3600) if xs[-1] > 0 else 0
        ax1.set_title(f"throughput: {rate:.1f} audio h per wall h")
    else:
        ax1.set_title("no audio transcribed in this run")
    ax1.set_xlabel("wall time (s)")
    ax1.set_ylabel("audio done (h)")
    causes = data["totals"].get("failures_by_cause") or {}
    if causes:
        names = sorted(causes, key=causes.get, reverse=True)
        ax2.barh(names, [causes[n] for n in names], color="tab:red")
        ax2.set_xlabel("failed items")
        ax2.set_title("failures by cause")
    else:
        ax2.text(0.5, 0.5, "no failures", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
    return axes
