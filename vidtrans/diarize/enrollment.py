"""Naming speakers from reference clips: enrollment and one-to-one identification."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..errors import ConfigurationError
from ._base import SAMPLE_RATE, DiarizationError, _as_array, _resolve_device, _unit, _windows


# --------------------------------------------------------------------------- enrollment
def enroll(clips: Mapping[str, str | os.PathLike | np.ndarray], device: str = "cpu") -> dict[str, np.ndarray]:
    """Reference voice per name: mean CAM++ embedding (unit norm) over 1.5 s windows of each clip."""
    from ..audio import load_audio
    from ..diarize_models import load_embedding_model

    emb = load_embedding_model(_resolve_device(device))
    out: dict[str, np.ndarray] = {}
    for name, clip in clips.items():
        if not str(name).strip():
            raise ConfigurationError("enrolled speaker names must not be empty")
        wav = _as_array(clip) if isinstance(clip, np.ndarray) else load_audio(clip)
        dur = wav.size / SAMPLE_RATE
        if dur < 1.0:
            raise DiarizationError(f"enrollment clip for {name!r} is too short ({dur:.1f} s); give at least 3 s of speech")
        from ..audio import is_silent

        if is_silent(wav):
            raise DiarizationError(f"enrollment clip for {name!r} is silent")
        wins = _windows([(0.0, dur)], 1.5, 0.75)
        feats = emb.fbank(wav)
        vecs = emb._forward([feats[int(s / 0.01) : max(int(s / 0.01) + 1, int((e - 0.025) / 0.01) + 1)] for s, e in wins])
        vecs = vecs[~np.isnan(vecs).any(1)]
        if not len(vecs):
            raise DiarizationError(f"no usable speech in the enrollment clip for {name!r}")
        out[str(name)] = _unit(_unit(vecs).mean(0))
    return out


def identify(
    speakers: Mapping[str, np.ndarray], references: Mapping[str, np.ndarray], threshold: float = 0.5
) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Match speakers to enrolled names (one-to-one, best total similarity, >= *threshold*).

    Returns ({speaker: name}, {speaker: {name: similarity}}).
    """
    from scipy.optimize import linear_sum_assignment

    spk = list(speakers)
    names = list(references)
    if not spk or not names:
        return {}, {}
    s = _unit(np.stack([speakers[k] for k in spk])) @ _unit(np.stack([references[n] for n in names])).T
    rows, cols = linear_sum_assignment(s, maximize=True)
    matches = {spk[r]: names[c] for r, c in zip(rows, cols) if s[r, c] >= threshold}
    scores = {spk[i]: {names[j]: round(float(s[i, j]), 3) for j in range(len(names))} for i in range(len(spk))}
    return matches, scores


