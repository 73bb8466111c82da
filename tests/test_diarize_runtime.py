"""The onnx runtime of the offline diarization models: same results as torch, without importing torch.

Real audio only (pyannote's bundled sample).  The ONNX graphs are converted
from the packaged torch weights once (``make setup`` runs ``vidtrans doctor
--prepare``) and cached; these tests check that conversion against the torch
models and against pyannote's own sliding-window code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidtrans import diarize as dz
from vidtrans import diarize_models as dm
from vidtrans.audio import load_audio

from conftest import ROOT

pytest.importorskip("pyannote.audio")
pytest.importorskip("onnx")

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PYANNOTE_METRICS_ENABLED": "0"}


@pytest.fixture(scope="module")
def sample_audio(sample_wav: Path) -> np.ndarray:
    return load_audio(sample_wav)


def test_kaldi_fbank_matches_torchaudio(sample_audio):
    import torch
    from torchaudio.compliance import kaldi

    w = sample_audio[: 16000 * 12 + 123]  # not a whole number of frames
    ref = kaldi.fbank(torch.from_numpy(w)[None] * 32768.0, num_mel_bins=80, sample_frequency=16000, dither=0.0).numpy()
    got = dm.kaldi_fbank(w, piece_seconds=5.0)  # pieces must join seamlessly
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() < 0.01  # values span about -15..25; float32 rounding only
    assert np.abs(dm.kaldi_fbank(np.zeros(100, np.float32))).max() > 0  # shorter than one frame: one padded frame
    assert dm.kaldi_fbank(np.zeros(100, np.float32)).shape == (1, 80)


def test_onnx_models_match_torch_models(sample_audio):
    seg_onnx, seg_torch = dm.load_segmentation("cpu", "onnx", 1), dm.load_segmentation("cpu", "torch")
    assert seg_onnx.runtime == "onnx" and seg_torch.runtime == "torch"
    assert seg_onnx.receptive_field == seg_torch.receptive_field
    chunks = np.stack([sample_audio[:160000], sample_audio[160000:320000]])
    a, b = seg_onnx(chunks), seg_torch(chunks)
    assert a.shape == b.shape == (2, 589, 3)
    assert (a == b).mean() > 0.999
    assert a.sum() > 100  # the sample has speech in both chunks
    e_onnx, e_torch = dm.load_embedding_model("cpu", "onnx", 1), dm.load_embedding_model("cpu", "torch")
    x, y = e_onnx.embed_many([sample_audio[:48000], sample_audio[200000:248000]]), e_torch.embed_many(
        [sample_audio[:48000], sample_audio[200000:248000]])
    cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert cos.min() > 0.9999


def test_sliding_window_and_count_equal_pyannote(sample_audio):
    """Chunking and the aggregated speaker count reproduce pyannote's Inference + speaker_count."""
    import torch
    from pyannote.audio import Inference
    from pyannote.audio.pipelines.utils import SpeakerDiarizationMixin

    from vidtrans.diarize.speech import Segmenter

    seg = dm.load_segmentation("cpu", "torch")
    for n in (16000 * 7, 160000, 16000 * 23 + 5):
        wav = sample_audio[:n]
        ours = Segmenter(seg, step_ratio=0.1)
        inf = Inference(seg.model, duration=10.0, step=1.0, skip_aggregation=True, batch_size=8)
        segs = inf({"waveform": torch.from_numpy(np.ascontiguousarray(wav))[None], "sample_rate": 16000})
        mine = ours.segment(wav)
        assert [round(c.start * 16000) for c, _ in segs] == ours.chunk_offsets(n)
        assert np.array_equal(mine, (segs.data > 0.5).astype(np.uint8))
        count = SpeakerDiarizationMixin.speaker_count(segs, seg.model.receptive_field, warm_up=(0.0, 0.0))
        assert np.array_equal(ours.count(mine), count.data[:, 0].astype(np.uint8))


@pytest.mark.parametrize("other, agreement", [("torch", 0.99), ("openvino", 0.97)])
def test_runtimes_give_the_same_diarization(sample_wav, other, agreement):
    """torch and OpenVINO (bfloat16 on AMX CPUs) label the sample as onnxruntime does."""
    if other == "openvino":
        pytest.importorskip("openvino")
    a = dz.diarize(sample_wav, dz.DiarizeOptions(runtime="onnx", num_threads=1))
    b = dz.diarize(sample_wav, dz.DiarizeOptions(runtime=other, num_threads=1))
    assert a.meta["runtime"] == "onnx" and b.meta["runtime"] == other
    assert a.speakers == b.speakers == ("Speaker 1", "Speaker 2")
    # frame-level agreement of the exclusive labelling
    t = np.arange(0, a.duration, 0.01)

    def lab(d):
        out = np.full(t.size, "", dtype=object)
        for turn in d.exclusive:
            out[(t >= turn.start) & (t < turn.end)] = turn.speaker
        return out

    assert (lab(a) == lab(b)).mean() > agreement


def test_default_runtime_never_imports_torch(sample_wav):
    code = (
        "import sys, json\n"
        "from vidtrans import diarize as dz\n"
        f"d = dz.diarize({str(sample_wav)!r})\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'pyannote.audio': 'pyannote.audio' in sys.modules,"
        " 'speakers': list(d.speakers), 'runtime': d.meta['runtime']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r == {"torch": False, "pyannote.audio": False, "speakers": ["Speaker 1", "Speaker 2"],
                 "runtime": dm.resolve_runtime("auto", "cpu")}


@pytest.mark.slow
def test_damaged_onnx_cache_is_rebuilt(tmp_path, sample_wav):
    """A truncated cached graph (a killed conversion, a full disk) is converted again, not trusted."""
    src = dm.onnx_model_path("segmentation")
    cache = tmp_path / "cache"
    dst = cache / "models" / "diarization-onnx"
    dst.mkdir(parents=True)
    for p in src.parent.iterdir():
        if p.is_file():  # the graphs and their metadata (not OpenVINO's compiled-model cache)
            shutil.copy2(p, dst / p.name)
    broken = dst / src.name
    broken.write_bytes(broken.read_bytes()[:1000])
    code = (
        "from vidtrans import diarize as dz\n"
        f"d = dz.diarize({str(sample_wav)!r})\n"
        "print(len(d.speakers))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                         env=ENV | {"VIDTRANS_CACHE": str(cache)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "2"
    assert "converting it again" in out.stderr
    assert broken.stat().st_size > 1_000_000
    meta = json.loads(broken.with_suffix(".json").read_text())
    assert meta["max_abs_error_vs_torch"] < 1e-3


def test_unknown_runtime_is_a_clear_error(sample_wav):
    from vidtrans.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="runtime"):
        dz.diarize(sample_wav, dz.DiarizeOptions(runtime="tensorrt"))
    with pytest.raises(dm.DiarizationModelError, match="CPU only"):
        dm.resolve_runtime("onnx", "cuda")


def test_numpy_average_linkage_equals_scipy_on_real_embeddings(sample_wav):
    """vidtrans.diarize.linkage (no scipy.cluster import) gives scipy's tree and flat clusters."""
    from scipy.cluster.hierarchy import fcluster, linkage

    from vidtrans.diarize import _base, local
    from vidtrans.diarize.linkage import average_linkage, fcluster_distance, fcluster_maxclust

    emb = local.analyze(_base._AudioSource(sample_wav), dz.DiarizeOptions(num_threads=1)).emb.astype(np.float64)
    x = np.concatenate([emb, emb[::3] * 1.5 + 0.01])  # a second, scaled copy: near-duplicates and ties
    assert len(x) > 100
    ref, ours = linkage(x, method="average", metric="cosine"), average_linkage(x)
    np.testing.assert_allclose(ours[:, 2], ref[:, 2], atol=1e-9)
    np.testing.assert_array_equal(ours[:, 3], ref[:, 3])

    def partition(labels):
        return sorted(sorted(np.flatnonzero(labels == v).tolist()) for v in np.unique(labels))

    for t in (0.2, 0.4, 0.6, 0.8):
        assert partition(fcluster_distance(ours, t)) == partition(fcluster(ref, t=t, criterion="distance"))
    for k in (1, 2, 3, 5):
        assert partition(fcluster_maxclust(ours, k)) == partition(fcluster(ref, t=k, criterion="maxclust"))
    assert average_linkage(x[:1]).shape == (0, 4)


# --------------------------------------------------------------------------- the openvino runtime
def test_openvino_precision_follows_the_cpu():
    assert dm.openvino_precision(["FP32", "BF16", "INT8"]) == "bf16"
    assert dm.openvino_precision(["FP32", "FP16", "INT8"]) == "f32"


def test_campplus_mean_pool_graph_equals_the_original_on_short_windows(sample_audio):
    """The graph OpenVINO gets (segment pooling as a mean over time) gives the original's numbers,
    both on onnxruntime in float32, for windows of up to 2 s -- the only ones sent to it."""
    import onnxruntime as ort

    pytest.importorskip("openvino")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    orig = ort.InferenceSession(str(dm.onnx_model_path("campplus")), so, providers=["CPUExecutionProvider"])
    mean = ort.InferenceSession(str(dm.campplus_openvino_graph()), so, providers=["CPUExecutionProvider"])
    feats = dm.kaldi_fbank(sample_audio[: 16000 * 6])
    for frames in (40, 98, 150, 200):
        x = np.stack([feats[i : i + frames] for i in (0, 137, 311)]).astype(np.float32)
        x -= x.mean(axis=1, keepdims=True)
        a, b = orig.run(None, {"feats": x})[0], mean.run(None, {"feats": x})[0]
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    # beyond 2 s the pooling has two segments and the adapted graph fails or differs: that is why
    # longer inputs go to onnxruntime with the original graph in OpenVinoCamPlusPlus
    x = feats[None, :400] - feats[None, :400].mean(axis=1, keepdims=True)
    try:
        got = mean.run(None, {"feats": x})[0]
    except Exception:  # noqa: BLE001 - onnxruntime: the broadcast after the pooling does not fit
        got = None
    assert got is None or np.abs(orig.run(None, {"feats": x})[0] - got).max() > 1e-3


def test_openvino_models_agree_with_onnxruntime(sample_audio):
    pytest.importorskip("openvino")
    seg_ov, seg_ort = dm.load_segmentation("cpu", "openvino", 1), dm.load_segmentation("cpu", "onnx", 1)
    assert seg_ov.runtime == "openvino" and seg_ov.receptive_field == seg_ort.receptive_field
    chunks = np.stack([sample_audio[:160000], sample_audio[160000:320000]])
    a, b = seg_ov(chunks), seg_ort(chunks)
    assert a.shape == b.shape == (2, 589, 3)
    assert (a == b).mean() > 0.99  # bfloat16 on AMX CPUs flips a few borderline frames
    e_ov, e_ort = dm.load_embedding_model("cpu", "openvino", 1), dm.load_embedding_model("cpu", "onnx", 1)
    clips = [sample_audio[:16000], sample_audio[100000:116000], sample_audio[200000:248000]]  # 1 s, 1 s, 3 s
    x, y = e_ov.embed_many(clips), e_ort.embed_many(clips)
    cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert cos[:2].min() > 0.998  # OpenVINO (bfloat16 where the CPU has it)
    assert cos[2] > 0.99999  # 3 s: onnxruntime with the original graph, the same numbers


def test_auto_runtime_falls_back_to_onnx_without_openvino(monkeypatch):
    """``auto`` picks OpenVINO on the CPU when it is installed; without it, onnxruntime."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    assert dm.resolve_runtime("auto", "cpu") == "onnx"
    monkeypatch.undo()
    if real("openvino") is not None:
        assert dm.resolve_runtime("auto", "cpu") == "openvino"
    assert dm.resolve_runtime("auto", "cuda") == "torch"
    assert dm.resolve_runtime("auto", "cpu", duration=2 * 3600) == "onnx"  # memory on very long inputs
    assert dm.resolve_runtime("openvino", "cpu", duration=2 * 3600) == "openvino"  # asked for: kept
    with pytest.raises(dm.DiarizationModelError, match="CPU only"):
        dm.resolve_runtime("openvino", "cuda")


def test_auto_runtime_diarizes_long_inputs_on_onnxruntime(sample_wav, monkeypatch):
    """An input over OPENVINO_MAX_SECONDS is diarized on onnxruntime under ``auto`` (here: the limit
    lowered below the sample's 30 s), and the result says which runtime ran."""
    pytest.importorskip("openvino")
    assert dz.diarize(sample_wav, dz.DiarizeOptions(num_threads=1)).meta["runtime"] == "openvino"
    monkeypatch.setattr(dm, "OPENVINO_MAX_SECONDS", 10.0)
    d = dz.diarize(sample_wav, dz.DiarizeOptions(num_threads=1))
    assert d.meta["runtime"] == "onnx" and d.speakers == ("Speaker 1", "Speaker 2")


def test_auto_runtime_uses_onnx_when_openvino_does_not_load(monkeypatch):
    def broken():
        raise dm.MissingDependencyError("openvino", purpose="the openvino diarization runtime")

    made = []
    models = {"openvino": broken, "onnx": lambda: made.append("onnx") or "onnx model", "torch": lambda: "torch model"}
    monkeypatch.setattr(dm, "resolve_runtime", lambda runtime, device: "openvino")
    assert dm._on_runtime("auto", "cpu", models, "speaker segmentation") == "onnx model"
    assert made == ["onnx"]
    with pytest.raises(dm.MissingDependencyError):
        dm._on_runtime("openvino", "cpu", models, "speaker segmentation")
