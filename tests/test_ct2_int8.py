"""The int8 copy of a CTranslate2 Whisper model (vidtrans.transcribe.ct2_int8): CTranslate2's own
quantization rule, the same decoded text as quantizing at load time, cached once, refused safely."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faster_whisper")


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    from vidtrans.models import resolve_model

    try:
        return resolve_model("tiny.en")
    except Exception as exc:  # noqa: BLE001 - the packaged model is missing: nothing to test with
        pytest.skip(f"tiny.en is not installed: {exc}")


@pytest.fixture(scope="module")
def tiny_int8(tiny_dir: Path, tmp_path_factory) -> Path:
    from vidtrans.transcribe.ct2_int8 import int8_model_dir

    out = int8_model_dir(tiny_dir, tmp_path_factory.mktemp("int8"))
    assert out != tiny_dir
    return out


def _variables(path: Path) -> dict[str, np.ndarray]:
    from vidtrans.transcribe.ct2_int8 import _read

    buf = np.memmap(path / "model.bin", dtype=np.uint8, mode="r")
    return dict(_read(path / "model.bin", buf)[3])


def test_weights_are_quantized_with_ctranslate2s_rule_and_the_rest_is_copied(tiny_dir, tiny_int8):
    before, after = _variables(tiny_dir), _variables(tiny_int8)
    quantized = [n for n in before if n.endswith("weight") and "conv" not in n and before[n].dtype == np.float16]
    assert len(quantized) > 20 and "decoder/embeddings/weight" in quantized
    assert set(after) == set(before) | {f"{n}_scale" for n in quantized}
    for name in quantized:
        w = before[name].astype(np.float32)
        q, scale = after[name], after[f"{name}_scale"]
        assert q.dtype == np.int8 and q.shape == w.shape and scale.dtype == np.float32 and scale.shape == (w.shape[0],)
        np.testing.assert_array_equal(scale, np.float32(127) / np.abs(w).max(axis=1))
        np.testing.assert_array_equal(q, np.rint(w * scale[:, None]).astype(np.int8))
    for name in set(before) - set(quantized):  # biases, layer norms, the convolutions, scalars
        assert after[name].dtype == before[name].dtype
        np.testing.assert_array_equal(after[name], before[name])
    assert before["encoder/conv1/weight"].dtype == np.float16
    assert (tiny_int8 / "model.bin").stat().st_size < 0.6 * (tiny_dir / "model.bin").stat().st_size
    for side in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if (tiny_dir / side).exists():
            assert (tiny_int8 / side).read_bytes() == (tiny_dir / side).read_bytes()


def test_the_int8_copy_decodes_exactly_what_quantizing_at_load_time_does(tiny_dir, tiny_int8, sample_wav):
    from faster_whisper import WhisperModel

    def run(path):
        model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=2)
        segments, _ = model.transcribe(str(sample_wav), beam_size=5, word_timestamps=True)
        return [(s.text, s.avg_logprob, s.no_speech_prob, [(w.word, w.start, w.end, w.probability) for w in s.words])
                for s in segments]

    at_load, on_disk = run(tiny_dir), run(tiny_int8)
    assert at_load and len(" ".join(s[0] for s in at_load).split()) > 40
    assert on_disk == at_load


def test_the_copy_is_made_once_and_remade_when_the_model_changes(tiny_dir, tmp_path, caplog):
    from vidtrans.transcribe.ct2_int8 import int8_model_dir

    src = tmp_path / "model"
    shutil.copytree(tiny_dir, src)
    root = tmp_path / "cache"
    first = int8_model_dir(src, root)
    stamp = (first / "model.bin").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="vidtrans.transcribe.ct2_int8"):
        again = int8_model_dir(src, root)
    assert again == first and (first / "model.bin").stat().st_mtime_ns == stamp
    assert not [r for r in caplog.records if "cached" in r.getMessage()]  # nothing rebuilt
    os.utime(src / "model.bin", ns=(stamp + 10**9, stamp + 10**9))  # the source model was replaced
    remade = int8_model_dir(src, root)
    assert remade == first and (first / "model.bin").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in root.iterdir()) == [first.name]  # no temporary or stale dirs left
    assert int8_model_dir(first, root) == first  # already int8: nothing to quantize, used as it is


def test_a_file_it_does_not_understand_leaves_the_model_as_it_is(tiny_dir, tmp_path, caplog):
    from vidtrans.transcribe.ct2_int8 import int8_model_dir

    src = tmp_path / "model"
    src.mkdir()
    for f in tiny_dir.iterdir():
        if f.name != "model.bin":
            shutil.copyfile(f, src / f.name)
    (src / "model.bin").write_bytes((tiny_dir / "model.bin").read_bytes()[:1_000_000])  # truncated
    root = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="vidtrans.transcribe.ct2_int8"):
        assert int8_model_dir(src, root) == src
    assert any("quantizing at load time" in r.getMessage() for r in caplog.records)
    assert not list(root.iterdir())
    (src / "model.bin").write_bytes(b"\x04\x00\x00\x00" + b"\x00" * 64)  # binary version 4: not rewritten
    assert int8_model_dir(src, root) == src


def test_the_engine_loads_the_int8_copy_on_the_cpu_unless_asked_not_to(tmp_path, monkeypatch, caplog):
    from vidtrans.models import ModelCache
    from vidtrans.transcribe import TranscribeOptions
    from vidtrans.transcribe.local import get_model

    monkeypatch.setenv("VIDTRANS_CACHE", str(tmp_path))

    def loaded_from(extra):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="vidtrans.transcribe.local"):
            get_model(TranscribeOptions(model="tiny.en", device="cpu", extra=extra), ModelCache())
        (msg,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loading Whisper model")]
        return msg

    assert str(tmp_path / "models" / "int8") in loaded_from({})
    assert str(tmp_path) not in loaded_from({"int8_cache": False})
    assert str(tmp_path / "models" / "int8") not in loaded_from({"encoder_runtime": "ctranslate2", "int8_cache": False})


def test_processes_making_the_copy_at_once_end_with_one_complete_copy(tiny_dir, tmp_path, tiny_int8):
    import subprocess
    import sys

    root = tmp_path / "cache"
    code = ("import sys; from vidtrans.transcribe.ct2_int8 import int8_model_dir; "
            "print(int8_model_dir(sys.argv[1], sys.argv[2]))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tiny_dir), str(root)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {o.strip() for o, _ in outs}
    assert len(paths) == 1 and Path(paths.pop()).parent == root
    (made,) = root.iterdir()  # no temporary dirs left behind
    assert (made / "model.bin").read_bytes() == (tiny_int8 / "model.bin").read_bytes()


def test_doctor_prepare_writes_the_copy_ahead_of_the_first_run(tiny_dir, tmp_path, monkeypatch):
    from vidtrans import doctor

    monkeypatch.setenv("VIDTRANS_CACHE", str(tmp_path))
    checks: list = []
    doctor._prepare_int8(tiny_dir, checks)
    (check,) = checks
    assert check.ok and not check.required and Path(check.detail).parent == tmp_path / "models" / "int8"
    assert (Path(check.detail) / "model.bin").is_file()
