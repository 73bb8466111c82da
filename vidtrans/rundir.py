"""Run directory and stage cache: one folder per item, each stage redone only when its inputs change.

A batch (``vidtrans batch``, :mod:`vidtrans.batch`) gives every item a folder
``OUT/<stem>/``::

    media.json          the media reference: Media record, audio path, audio sha256 and size/mtime
    transcript.json     the transcription stage's Transcript (before speakers)
    diarization.json    the diarization stage's turns (exact floats; read back by the caption stage)
    <stem>.rttm         the same turns as RTTM
    <stem>.vtt/.srt/... the captions (the ``json`` format is the final transcript with speakers)
    <notebook>.ipynb    with ``notebook=...``: the executed stage notebook
    status.json         stages done, their input/option hashes, timings, vidtrans version, error

Stages run in order ``download -> transcribe -> diarize -> captions`` (or
``download -> notebook``), through the same stage functions and option
builders as :func:`vidtrans.pipeline.run`.  Each stage's record holds an
``input_hash`` (what it read: the source, the audio's sha256, the hashes of the
transcript/diarization files) and an ``options_hash`` (the options that change
its output; thread counts and the output folder do not).  A stage is skipped
when both hashes match the record and its output files exist, so a changed
caption option re-renders only the captions, a changed model re-transcribes
and re-renders, and a finished item is not touched at all (not even its
status.json).

Every file is written to a temporary name and renamed into place (``_io``); a
stage is marked ``running`` in status.json before it starts and ``done`` only
after its files are in place, so an item killed mid-stage redoes that stage
on the next run, and leftover temporary files are removed when the item is
picked up again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from ._io import atomic_write_text
from .errors import EngineError, MediaError, VidtransError
from .pipeline import PipelineOptions
from .schema import Media, SpeakerTurn, Transcript

log = logging.getLogger(__name__)

STATUS = "status.json"
MEDIA = "media.json"
TRANSCRIPT = "transcript.json"
DIARIZATION = "diarization.json"
#: stages of the built-in pipeline, in order
STAGES = ("download", "transcribe", "diarize", "captions")
#: PipelineOptions fields that never change an output (excluded from option hashes)
_NOT_HASHED = ("out_dir", "cpu_threads")
#: a temporary file left by ``_io.atomic_path`` (".<final name>.<random><suffix>")
_TEMP = re.compile(r"^\.[^/]+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")


# --------------------------------------------------------------------------- hashing
def hash_json(value: Any) -> str:
    """Short sha256 of *value*'s canonical JSON (sorted keys; tuples as lists)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fingerprint(path: str | os.PathLike) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


# --------------------------------------------------------------------------- JSON lines log
class EventLog:
    """Append-only JSON-lines log (``OUT/batch.log.jsonl``), shared by the batch and its workers.

    Each event is one ``write`` on an ``O_APPEND`` descriptor, so lines from
    several processes never interleave.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None

    def event(self, kind: str, **fields: Any) -> None:
        if self.path is None:
            return
        rec = {"ts": round(time.time(), 3), "event": kind, "pid": os.getpid(), **fields}
        line = (json.dumps(rec, default=str, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def read_events(path: str | os.PathLike) -> list[dict]:
    """The events of a JSON-lines log (a torn last line, from a kill, is ignored)."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


# --------------------------------------------------------------------------- errors
def is_transient(exc: BaseException) -> bool:
    """Whether retrying *exc* later may succeed (network faults, 5xx/429, busy services, crashed workers)."""
    from .errors import QuotaExceededError, ServiceError

    try:
        from .download import RetriesExhaustedError
    except ImportError:  # pragma: no cover - download is part of the base package
        RetriesExhaustedError = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(exc, RetriesExhaustedError) or getattr(exc, "retryable", False):
        return True
    if isinstance(exc, (ServiceError, QuotaExceededError, ConnectionError, TimeoutError)):
        return True
    return isinstance(exc, WorkerCrashedError)


class WorkerCrashedError(VidtransError):
    """The process (or Ray actor) working on an item died (killed, out of memory)."""


def error_record(exc: BaseException, stage: str | None) -> dict[str, Any]:
    return {
        "class": type(exc).__name__,
        "message": str(exc) or repr(exc),
        "stage": stage,
        "transient": is_transient(exc),
        "user_error": isinstance(exc, (VidtransError, MediaError, EngineError)),
    }


# --------------------------------------------------------------------------- item folder
@dataclass
class StageRun:
    """What happened to one stage of one item in this run."""

    name: str
    cached: bool
    seconds: float = 0.0


@dataclass
class ItemOutcome:
    """The result of :func:`process_item` (picklable; crosses process and Ray boundaries)."""

    stem: str
    source: str
    #: "done" (stages ran), "cached" (nothing to do), "failed", or "playlist" (expand and queue its entries)
    state: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    audio_seconds: float | None = None
    attempts: int = 1
    error: dict[str, Any] | None = None
    #: every error met on the way (retried ones included)
    errors: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    #: worker pid, host and how many models it has loaded so far
    worker: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ItemDir:
    """``OUT/<stem>/`` and its ``status.json``."""

    def __init__(self, root: str | os.PathLike, stem: str):
        self.root = Path(root)
        self.stem = stem
        self.path = self.root / stem

    def file(self, name: str) -> Path:
        return self.path / name

    def load_status(self) -> dict[str, Any]:
        try:
            data = json.loads(self.file(STATUS).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_status(self, status: dict[str, Any]) -> None:
        status["updated_at"] = round(time.time(), 3)
        status["vidtrans_version"] = __version__
        atomic_write_text(self.file(STATUS), json.dumps(status, indent=2, default=str))

    def clean_temp(self) -> list[Path]:
        """Remove temporary files a killed run left behind (they never carry a final name)."""
        removed = []
        if self.path.is_dir():
            for p in self.path.iterdir():
                if p.is_file() and _TEMP.match(p.name):
                    with contextlib.suppress(OSError):
                        p.unlink()
                        removed.append(p)
        return removed


def option_hashes(options: PipelineOptions, notebook: str | None = None) -> dict[str, str]:
    """Per-stage option hashes: only the options that change that stage's output."""
    from .pipeline import caption_options, diarize_options, transcribe_options

    dl = {k: v for k, v in options.download_options.items() if k in ("audio_format", "sample_rate", "cookies_file", "ytdlp_params")}
    from .pipeline import LOCAL_ENGINES

    topts = transcribe_options(options).to_dict()
    topts.pop("cpu_threads", None)
    topts["word_timing"] = options.word_timing  # refined word times are part of transcript.json
    if options.engine in LOCAL_ENGINES:  # only cloud engines label speakers themselves
        topts.pop("speaker_labels", None)
    dopts = dataclasses.asdict(diarize_options(options))
    dopts.pop("num_threads", None)
    hashes = {
        "download": hash_json(dl),
        "transcribe": hash_json(topts),
        "diarize": hash_json({"diarize": options.diarize, **dopts}),
        "captions": hash_json({"formats": list(options.formats), **dataclasses.asdict(caption_options(options))}),
    }
    if notebook:
        hashes["notebook"] = hash_json({"notebook": file_sha256(notebook), "params": _hashable_options(options)})
    return hashes


def _hashable_options(options: PipelineOptions) -> dict[str, Any]:
    d = dataclasses.asdict(options)
    for k in _NOT_HASHED:
        d.pop(k, None)
    return d


# --------------------------------------------------------------------------- the stages
class _ItemRun:
    """Runs the stages of one item against its folder, skipping those whose record still matches."""

    def __init__(self, item_dir: ItemDir, source: str, options: PipelineOptions, log_: EventLog,
                 notebook: str | None = None, models: Any = None):
        self.dir = item_dir
        #: loaded models, reused across this process's items (see :func:`worker_models`)
        self.models = models if models is not None else worker_models()
        self.source = source
        self.options = options
        self.log = log_
        self.notebook = notebook
        self.hashes = option_hashes(options, notebook)
        self.status = item_dir.load_status()
        self.stages = self.status.setdefault("stages", {})
        self.runs: dict[str, StageRun] = {}
        self.current: str | None = None
        self.wrote = False
        self._audio = None
        self.media: Media | None = None
        self.media_info: dict[str, Any] = {}

    # -- bookkeeping ------------------------------------------------------------
    def _save(self) -> None:
        self.status.setdefault("item", self.dir.stem)
        self.status["source"] = self.source
        self.dir.save_status(self.status)
        self.wrote = True

    def _stage(self, name: str, input_hash: str, outputs_ok: Callable[[], bool],
               compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        rec = self.stages.get(name) or {}
        if (rec.get("state") == "done" and rec.get("input_hash") == input_hash
                and rec.get("options_hash") == self.hashes[name] and outputs_ok()):
            self.runs[name] = StageRun(name, cached=True)
            return rec
        self.current = name
        if not self.wrote:
            self.dir.path.mkdir(parents=True, exist_ok=True)
            self.status["state"] = "running"
        self.stages[name] = {"state": "running", "input_hash": input_hash, "options_hash": self.hashes[name],
                             "started_at": round(time.time(), 3)}
        self._save()
        self.log.event("stage_start", item=self.dir.stem, stage=name)
        t0 = time.perf_counter()
        extra = compute()
        seconds = time.perf_counter() - t0
        rec = {"state": "done", "input_hash": input_hash, "options_hash": self.hashes[name],
               "seconds": round(seconds, 3), "finished_at": round(time.time(), 3), **extra}
        self.stages[name] = rec
        self._save()
        self.runs[name] = StageRun(name, cached=False, seconds=seconds)
        self.log.event("stage_done", item=self.dir.stem, stage=name, seconds=round(seconds, 3))
        self.current = None
        return rec

    def audio(self):
        if self._audio is None:
            from .audio import load_audio

            assert self.media is not None and self.media.audio_path
            self._audio = load_audio(self.media.audio_path)
        return self._audio

    # -- download ---------------------------------------------------------------
    def download(self) -> str:
        media_file = self.dir.file(MEDIA)

        def outputs_ok() -> bool:
            try:
                info = json.loads(media_file.read_text(encoding="utf-8"))
                return _fingerprint(info["media"]["audio_path"]) == info["audio_fingerprint"]
            except (OSError, KeyError, TypeError, json.JSONDecodeError):
                return False

        def compute() -> dict[str, Any]:
            from .pipeline import resolve_source

            media = resolve_source(self.source, self.options)
            assert media.audio_path is not None
            info = {"media": media.to_dict(), "audio_sha256": file_sha256(media.audio_path),
                    "audio_fingerprint": _fingerprint(media.audio_path)}
            atomic_write_text(media_file, json.dumps(info, indent=2, ensure_ascii=False))
            return {"output_hash": info["audio_sha256"], "audio_seconds": media.duration}

        rec = self._stage("download", hash_json(self.source), outputs_ok, compute)
        self.media_info = json.loads(media_file.read_text(encoding="utf-8"))
        self.media = Media.from_dict(self.media_info["media"])
        return rec["output_hash"]

    # -- transcribe ---------------------------------------------------------------
    def transcribe(self, audio_hash: str) -> tuple[str, Transcript | None]:
        from .pipeline import LOCAL_ENGINES, transcribe_options, transcribe_timed

        path = self.dir.file(TRANSCRIPT)
        result: list[Transcript] = []

        def compute() -> dict[str, Any]:
            opts = self.options
            engine_input: Any = self.audio() if opts.engine in LOCAL_ENGINES else self.media.audio_path
            # same transcription and word timing as pipeline.run
            t, _ = transcribe_timed(engine_input, self.audio(), transcribe_options(opts), opts, source=self.source,
                                    models=self.models)
            t = t.replace(media=self.media, duration=t.duration or self.media.duration)
            t.save(path)
            result.append(t)
            return {"output_hash": file_sha256(path), "audio_seconds": t.duration,
                    "segments": len(t.segments), "words": len(t.words)}

        rec = self._stage("transcribe", audio_hash, path.is_file, compute)
        return rec["output_hash"], (result[0] if result else None)

    # -- diarize ------------------------------------------------------------------
    def diarize(self, audio_hash: str, transcript_hash: str) -> str | None:
        """Run diarization when asked for and useful (speech found, engine gave no speakers), like pipeline.run."""
        if not self.options.diarize:
            self.stages.pop("diarize", None)
            return None
        t = Transcript.load(self.dir.file(TRANSCRIPT))
        if not t.segments or t.speaker_turns:
            self.stages.pop("diarize", None)
            return None
        path = self.dir.file(DIARIZATION)
        rttm = self.dir.file(f"{self.dir.stem}.rttm")

        def compute() -> dict[str, Any]:
            from . import diarize as dz
            from .pipeline import diarize_options

            d = dz.diarize(self.audio(), diarize_options(self.options))
            dz.write_rttm(d.turns, rttm, uri=self.dir.stem)
            data = {"turns": [t.to_dict() for t in d.turns], "exclusive": [t.to_dict() for t in d.exclusive],
                    "overlaps": [list(o) for o in d.overlaps], "speakers": list(d.speakers),
                    "duration": d.duration, "meta": d.meta}
            atomic_write_text(path, json.dumps(data, indent=2, default=str))
            return {"output_hash": file_sha256(path), "speakers": len(d.speakers)}

        rec = self._stage("diarize", audio_hash, lambda: path.is_file() and rttm.is_file(), compute)
        return rec["output_hash"]

    # -- captions -----------------------------------------------------------------
    def captions(self, transcript_hash: str, diarization_hash: str | None) -> dict[str, str]:
        from . import captions
        from .pipeline import caption_options

        base = self.dir.path / self.dir.stem
        files = {fmt: f"{base}.{fmt}" for fmt in self.options.formats}

        def compute() -> dict[str, Any]:
            t = Transcript.load(self.dir.file(TRANSCRIPT))
            if diarization_hash is not None:
                from . import diarize as dz

                data = json.loads(self.dir.file(DIARIZATION).read_text(encoding="utf-8"))
                # the whole Diarization, as pipeline.run passes it: words in overlaps go to who says them
                d = dz.Diarization(
                    turns=tuple(SpeakerTurn.from_dict(x) for x in data["turns"]),
                    exclusive=tuple(SpeakerTurn.from_dict(x) for x in data["exclusive"]),
                    overlaps=tuple(tuple(o) for o in data["overlaps"]), speakers=tuple(data["speakers"]),
                    duration=data["duration"], meta=data.get("meta") or {},
                )
                t = dz.assign_speakers(t, d)
            captions.write(t, base, formats=tuple(self.options.formats), options=caption_options(self.options))
            return {"outputs": files}

        self._stage("captions", hash_json([transcript_hash, diarization_hash]),
                    lambda: all(Path(f).is_file() for f in files.values()), compute)
        return files

    # -- notebook -----------------------------------------------------------------
    def run_notebook(self, audio_hash: str) -> dict[str, str]:
        nb = Path(self.notebook or "")
        out = self.dir.file(nb.name)

        def compute() -> dict[str, Any]:
            execute_notebook(nb, out, self.notebook_parameters(nb))
            return {"outputs": {"notebook": str(out)}}

        self._stage("notebook", audio_hash, out.is_file, compute)
        return {"notebook": str(out)}

    def notebook_parameters(self, nb: Path) -> dict[str, Any]:
        """The notebook's declared parameters filled from the item and the run options (never a secret)."""
        import papermill

        declared = papermill.inspect_notebook(str(nb))
        assert self.media is not None
        known: dict[str, Any] = {"source": self.media.audio_path, "output_dir": str(self.dir.path),
                                 "out_dir": str(self.dir.path)}
        for name, value in dataclasses.asdict(self.options).items():
            if name not in known and isinstance(value, (str, int, float, bool, type(None))):
                known[name] = value
        return {k: v for k, v in known.items() if k in declared}

    # -- all ----------------------------------------------------------------------
    def run(self) -> dict[str, str]:
        audio_hash = self.download()
        if self.notebook:
            return self.run_notebook(audio_hash)
        transcript_hash, _ = self.transcribe(audio_hash)
        diarization_hash = self.diarize(audio_hash, transcript_hash)
        return self.captions(transcript_hash, diarization_hash)


def execute_notebook(nb: str | os.PathLike, out: str | os.PathLike, parameters: dict[str, Any]) -> Path:
    """Run *nb* headless with papermill into *out* (atomically), with every known secret value masked."""
    try:
        import papermill
    except ImportError as exc:
        from .errors import MissingDependencyError

        raise MissingDependencyError("papermill", extra="notebooks", purpose="running stage notebooks") from exc
    from ._io import atomic_path
    from .secrets import redact

    out = Path(out)
    with atomic_path(out, suffix=".ipynb") as tmp:
        papermill.execute_notebook(str(nb), str(tmp), parameters=parameters, kernel_name="python3",
                                   cwd=str(out.parent), progress_bar=False, log_output=False)
        text = tmp.read_text(encoding="utf-8")
        clean = redact(text)
        if clean != text:
            tmp.write_text(clean, encoding="utf-8")
    return out


# --------------------------------------------------------------------------- one item
@functools.lru_cache(maxsize=1)
def worker_models():
    """This process's :class:`vidtrans.models.ModelCache`: a batch worker (process or Ray
    actor) loads each model once and keeps it for every item it runs."""
    from .models import ModelCache

    return ModelCache()


def _worker_info() -> dict[str, Any]:
    import socket
    import sys

    info: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
    if sys.modules.get("vidtrans.transcribe.local") is not None:
        info["whisper_model_loads"] = worker_models().loads.get("faster-whisper", 0)
    dm = sys.modules.get("vidtrans.diarize_models")
    loader = getattr(dm, "load_segmentation", None)
    if loader is not None and hasattr(loader, "cache_info"):
        info["diarize_model_loads"] = loader.cache_info().misses
    return info


def process_item(stem: str, source: str, options: PipelineOptions, out_root: str | os.PathLike, *,
                 retries: int = 2, retry_delay: float = 2.0, log_path: str | os.PathLike | None = None,
                 notebook: str | None = None, sleep: Callable[[float], None] = time.sleep) -> ItemOutcome:
    """Bring ``out_root/<stem>/`` up to date for *source*: run the stages whose inputs changed.

    Transient errors (see :func:`is_transient`) are retried up to *retries*
    times with exponential backoff (``retry_delay`` * 2**n, at least the
    server's Retry-After); stages finished before the error are not redone.
    Any other error fails the item: it is recorded in status.json and the
    outcome, never raised (KeyboardInterrupt and SystemExit still are).
    """
    from .download import PlaylistError

    item_dir = ItemDir(out_root, stem)
    events = EventLog(log_path)
    item_dir.clean_temp()
    started = time.time()
    errors: list[dict[str, Any]] = []
    attempt = 0
    while True:
        attempt += 1
        run = _ItemRun(item_dir, source, options, events, notebook)
        try:
            outputs = run.run()
        except PlaylistError:
            # not an item but a list of them: the batch expands it; drop the folder made for it
            if set(run.stages) <= {"download"}:
                import shutil

                shutil.rmtree(item_dir.path, ignore_errors=True)
            return ItemOutcome(stem, source, "playlist", attempts=attempt, worker=_worker_info(), started=started,
                               finished=time.time())
        except Exception as exc:  # one item's failure never stops the batch
            err = error_record(exc, run.current)
            err["attempt"] = attempt
            errors.append(err)
            retry = err["transient"] and attempt <= retries
            events.event("item_error", item=stem, stage=run.current, error=err["class"], message=err["message"],
                         transient=err["transient"], attempt=attempt, will_retry=retry)
            log.warning("%s: %s: %s%s", stem, err["class"], err["message"], " (will retry)" if retry else "")
            if run.current is not None:
                run.stages[run.current] = {**run.stages.get(run.current, {}), "state": "failed"}
            run.status.update(state="retrying" if retry else "failed", error=err, attempts=attempt,
                              errors=run.status.get("errors", [])[-9:] + [err])
            with contextlib.suppress(OSError):
                run.dir.path.mkdir(parents=True, exist_ok=True)
                run._save()
            if retry:
                delay = retry_delay * (2 ** (attempt - 1))
                ra = getattr(exc, "retry_after", None)
                if ra:
                    delay = max(delay, float(ra))
                sleep(delay)
                continue
            return ItemOutcome(stem, source, "failed", stages=_stage_summary(run), audio_seconds=_audio_seconds(run),
                               attempts=attempt, error=err, errors=errors, worker=_worker_info(),
                               started=started, finished=time.time())
        ran = any(not r.cached for r in run.runs.values())
        if ran or run.status.get("state") != "done":
            run.status.update(state="done", error=None, attempts=attempt)
            run.status["audio_seconds"] = _audio_seconds(run)
            run._save()
        events.event("item_done", item=stem, cached=not ran, attempts=attempt)
        return ItemOutcome(stem, source, "done" if ran else "cached", stages=_stage_summary(run),
                           audio_seconds=_audio_seconds(run), attempts=attempt, errors=errors,
                           outputs=outputs, worker=_worker_info(), started=started, finished=time.time())


def _stage_summary(run: _ItemRun) -> dict[str, dict[str, Any]]:
    return {n: {"cached": r.cached, "seconds": round(r.seconds, 3)} for n, r in run.runs.items()}


def _audio_seconds(run: _ItemRun) -> float | None:
    tr = run.stages.get("transcribe", {}).get("audio_seconds")
    if tr:
        return tr
    return run.media.duration if run.media is not None else None
