"""The hosted ``pyannote`` backend (community-1 pipeline; needs a Hugging Face token)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..errors import MissingDependencyError, ServiceError
from ..schema import SpeakerTurn
from ._base import (
    PYANNOTE_PIPELINE, SAMPLE_RATE, Diarization, DiarizationAuthError, DiarizeOptions, ProgressCallback, _AudioSource,
    _resolve_device, _unit, annotation_to_turns,
)
from .assign import exclusive_turns
from .local import _finalise

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- pyannote backend
def _pyannote_diarize(src: _AudioSource, opts: DiarizeOptions, progress: ProgressCallback | None) -> Diarization:
    from ..secrets import get_secret  # env var, Colab userdata, keyring or the 0600 secrets file

    token = (get_secret(opts.hf_token_env, aliases=("HUGGING_FACE_HUB_TOKEN",), required=False) or "").strip()
    if not token:
        raise DiarizationAuthError(
            f"the pyannote backend needs a Hugging Face token in ${opts.hf_token_env} and accepted terms at "
            f"https://hf.co/{PYANNOTE_PIPELINE}; or use the offline default backend='local'",
            engine="pyannote",
        )
    from ..diarize_models import import_pyannote_audio

    import_pyannote_audio()
    try:
        import torch
        from pyannote.audio import Pipeline
    except ImportError as exc:
        raise MissingDependencyError("pyannote.audio", purpose="the pyannote diarization backend") from exc
    import contextlib
    import io

    t0 = time.perf_counter()
    printed = io.StringIO()  # pyannote prints its hub errors; keep them out of the user's stdout
    try:
        with contextlib.redirect_stdout(printed):
            pipeline = Pipeline.from_pretrained(PYANNOTE_PIPELINE, token=token)
    except Exception as exc:  # noqa: BLE001 - mapped to specific errors below
        raise _map_hub_error(exc) from exc
    if pipeline is None:  # pyannote catches HfHubHTTPError (401, gated 403, 404) and returns None
        log.debug("pyannote said: %s", printed.getvalue().strip()[:500])
        raise DiarizationAuthError(
            f"could not load {PYANNOTE_PIPELINE}: Hugging Face refused the token in ${opts.hf_token_env} or its "
            f"account has not accepted the model terms at https://hf.co/{PYANNOTE_PIPELINE} "
            "(tokens must start with 'hf_')", engine="pyannote",
        )
    device = _resolve_device(opts.device)
    pipeline.to(torch.device(device))
    wav = src.array if src.array is not None else src.block(0.0, src.duration + 1.0)
    kwargs = {k: getattr(opts, k) for k in ("num_speakers", "min_speakers", "max_speakers") if getattr(opts, k)}
    out = pipeline({"waveform": torch.from_numpy(wav)[None], "sample_rate": SAMPLE_RATE}, **kwargs)
    if progress is not None:
        progress(src.duration, src.duration)
    diar = getattr(out, "speaker_diarization", out)
    excl = getattr(out, "exclusive_speaker_diarization", None)
    turns = annotation_to_turns(diar)
    exclusive = annotation_to_turns(excl) if excl is not None else exclusive_turns(turns)
    overlaps = [(round(s.start, 3), round(s.end, 3)) for s in diar.get_overlap()]
    labels = sorted(diar.labels())
    centroids = getattr(out, "speaker_embeddings", None)
    raw = {lab: str(i) for i, lab in enumerate(labels)}
    turns = [replace(t, speaker=raw[t.speaker]) for t in turns]
    exclusive = [replace(t, speaker=raw.get(t.speaker, t.speaker)) for t in exclusive]
    meta = {"backend": "pyannote", "pipeline": PYANNOTE_PIPELINE, "device": device,
            "timings": {"total": round(time.perf_counter() - t0, 3)}}
    cent = _unit(np.asarray(centroids, dtype=np.float32)) if centroids is not None and len(centroids) else None
    if opts.enroll and cent is not None:
        log.warning("pyannote backend embeddings are not CAM++; enrollment uses the local CAM++ model instead")
        cent = None
    if opts.enroll:
        cent = _centroids_from_turns(src, turns)
    return _finalise(turns, exclusive, overlaps, src.duration, meta, cent, opts)


def _centroids_from_turns(src: _AudioSource, turns: Sequence[SpeakerTurn]) -> np.ndarray:
    from ..diarize_models import load_embedding_model

    emb = load_embedding_model("cpu")
    ids = sorted({int(t.speaker) for t in turns})
    out = np.zeros((max(ids) + 1 if ids else 0, emb.dimension), np.float32)
    for k in ids:
        clips = [src.block(t.start, t.duration) for t in turns if int(t.speaker) == k and t.duration >= 0.5][:20]
        vecs = emb.embed_many(clips) if clips else np.zeros((0, emb.dimension))
        vecs = vecs[~np.isnan(vecs).any(1)] if len(vecs) else vecs
        if len(vecs):
            out[k] = _unit(_unit(vecs).mean(0))
    return out


def _map_hub_error(exc: Exception) -> Exception:
    name = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if name == "GatedRepoError" or "gated" in msg.lower() or "403" in msg:
        return DiarizationAuthError(
            f"access to {PYANNOTE_PIPELINE} is gated: accept its terms at https://hf.co/{PYANNOTE_PIPELINE} "
            f"with the account of your token ({msg})", engine="pyannote",
        )
    if name in ("HfHubHTTPError", "RepositoryNotFoundError") and ("401" in msg or "Unauthorized" in msg or "Invalid" in msg):
        return DiarizationAuthError(f"Hugging Face rejected the token ({msg})", engine="pyannote")
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or "offline" in msg.lower() or "connect" in msg.lower():
        return ServiceError(
            f"cannot download {PYANNOTE_PIPELINE} (no network or HF_HUB_OFFLINE=1): {msg}; use backend='local'",
            engine="pyannote",
        )
    return ServiceError(f"pyannote pipeline failed to load: {name}: {msg}", engine="pyannote")


