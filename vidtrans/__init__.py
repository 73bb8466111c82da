"""vidtrans: URL or file -> word-timed transcript -> speakers -> captions -> YouTube.

The package is a set of plain stage functions (``download.fetch``,
``audio.load_audio``, ``transcribe.transcribe``, ``diarize.diarize``,
``captions.build_cues`` / ``captions.write``) composed by ``pipeline.run``.
Data flows between them as the frozen records in :mod:`vidtrans.schema`.
"""

from __future__ import annotations

import os as _os

# pyannote.audio 4 sends usage telemetry by default; vidtrans never phones home.
_os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

from .errors import VidtransError  # noqa: E402
from .schema import Media, Segment, SpeakerTurn, Transcript, Word  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Media", "Segment", "SpeakerTurn", "Transcript", "VidtransError", "Word", "__version__"]
