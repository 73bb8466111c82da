"""FireRedASR engine: Mandarin (and English) ASR from a local FireRedASR model directory.

Uses the ``fireredasr`` package's own loader (``FireRedAsr.from_pretrained``)
with either model family:

* **AED** (``FireRedASR-AED-L``, 1.1 B parameters; ``cmvn.ark``,
  ``model.pth.tar``, ``dict.txt``, ``train_bpe1000.model``): inputs up to 60 s;
* **LLM** (``FireRedASR-LLM-L``, 8.3 B with Qwen2-7B-Instruct; ``cmvn.ark``,
  ``model.pth.tar``, ``asr_encoder.pth.tar``, ``Qwen2-7B-Instruct/``):
  inputs up to 30 s, needs a large GPU.

Neither the package nor the weights are installed by vidtrans: ``pip install
fireredasr`` (or a clone of https://github.com/FireRedTeam/FireRedASR on
``PYTHONPATH``), then download ``FireRedTeam/FireRedASR-AED-L`` (or ``-LLM-L``)
from Hugging Face into a directory and set ``FIREREDASR_MODEL_DIR`` (or pass
``extra={"model_dir": ...}`` / ``model=<that directory>``).

FireRedASR returns text only, so the audio is cut at pauses (faster-whisper's
bundled Silero VAD) into pieces no longer than the model accepts; each piece
becomes a segment with its true start/end, and word (for Chinese: character)
times are spread over it (``segment.meta["word_timing"] == "interpolated"``).

``extra`` options: ``model_dir``, ``asr_type`` ("aed"/"llm", default: detected
from the files), ``max_chunk_seconds`` (default 50 for AED, 28 for LLM),
``batch_size`` (default 1), ``beam_size`` (default ``options.beam_size``),
and FireRedASR's decode arguments ``nbest``, ``decode_max_len``,
``softmax_smoothing``, ``aed_length_penalty``, ``eos_penalty``,
``decode_min_len``, ``repetition_penalty``, ``llm_length_penalty``,
``temperature``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, MissingDependencyError, ModelError
from ..schema import Segment, Word, spaced
from . import SimpleStream, TranscribeOptions

log = logging.getLogger(__name__)

ENGINE = "fireredasr"
SAMPLE_RATE = 16_000
REQUIRED_FILES = {
    "aed": ("cmvn.ark", "model.pth.tar", "dict.txt", "train_bpe1000.model"),
    "llm": ("cmvn.ark", "model.pth.tar", "asr_encoder.pth.tar", "Qwen2-7B-Instruct"),
}
MAX_SECONDS = {"aed": 50.0, "llm": 28.0}
HOW_TO_GET = (
    "install the package with `pip install fireredasr` (or clone https://github.com/FireRedTeam/FireRedASR and put it "
    "on PYTHONPATH), download the weights (huggingface-cli download FireRedTeam/FireRedASR-AED-L --local-dir "
    "models/FireRedASR-AED-L) and set FIREREDASR_MODEL_DIR to that directory"
)
_DECODE_KEYS = ("nbest", "decode_max_len", "softmax_smoothing", "aed_length_penalty", "eos_penalty",
                "decode_min_len", "repetition_penalty", "llm_length_penalty", "temperature")


class FireRedModelError(ModelError):
    """The FireRedASR model directory is missing or incomplete."""


def model_dir_for(options: TranscribeOptions) -> Path:
    """The model directory from ``extra["model_dir"]``, ``options.model`` (a directory) or ``FIREREDASR_MODEL_DIR``."""
    candidates = [options.extra.get("model_dir"), options.model if options.model and os.sep in options.model else None,
                  os.environ.get("FIREREDASR_MODEL_DIR")]
    for c in candidates:
        if c:
            p = Path(c).expanduser()
            if not p.is_dir():
                raise FireRedModelError(f"FireRedASR model directory {p} does not exist; {HOW_TO_GET}")
            return p
    raise FireRedModelError(f"no FireRedASR model directory configured; {HOW_TO_GET}")


def detect_asr_type(model_dir: Path, requested: str | None = None) -> str:
    """"aed" or "llm" for *model_dir*; FireRedModelError naming the missing files otherwise."""
    kind = requested or ("llm" if (model_dir / "asr_encoder.pth.tar").exists() else "aed")
    if kind not in REQUIRED_FILES:
        raise ConfigurationError(f"fireredasr: asr_type must be 'aed' or 'llm', not {kind!r}")
    missing = [f for f in REQUIRED_FILES[kind] if not (model_dir / f).exists()]
    if missing:
        raise FireRedModelError(
            f"FireRedASR-{kind.upper()} model directory {model_dir} lacks {', '.join(missing)}; {HOW_TO_GET}"
        )
    return kind


def speech_chunks(samples: np.ndarray, max_seconds: float) -> list[tuple[int, int]]:
    """(start, end) sample ranges of speech, merged across short pauses, each at most *max_seconds*.

    Uses faster-whisper's bundled Silero VAD when available, else fixed windows.
    """
    max_len = int(max_seconds * SAMPLE_RATE)
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        regions = [(r["start"], r["end"]) for r in get_speech_timestamps(
            samples, VadOptions(max_speech_duration_s=max_seconds, min_silence_duration_ms=300, speech_pad_ms=200))]
    except ImportError:
        regions = [(s, min(s + max_len, samples.size)) for s in range(0, samples.size, max_len)]
    chunks: list[tuple[int, int]] = []
    for start, end in regions:
        if chunks and end - chunks[-1][0] <= max_len and start - chunks[-1][1] < SAMPLE_RATE:
            chunks[-1] = (chunks[-1][0], end)  # join pieces separated by under a second of pause
        else:
            chunks.append((start, end))
    return chunks


_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff]|[^\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff]+")


def spread_words(start: float, end: float, text: str) -> tuple[Word, ...]:
    """Tokens of *text* (CJK characters one by one, other runs by spaces) spread evenly over [start, end]."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return ()
    edges = np.linspace(start, end, len(tokens) + 1)
    return tuple(Word(round(float(edges[i]), 3), round(float(edges[i + 1]), 3), spaced(t)) for i, t in enumerate(tokens))


def load_model(model_dir: Path, asr_type: str, device: str):
    """``FireRedAsr.from_pretrained(asr_type, model_dir)`` moved to *device*."""
    try:
        from fireredasr.models.fireredasr import FireRedAsr
    except ImportError as exc:
        raise MissingDependencyError("fireredasr", purpose=f"the FireRedASR engine; {HOW_TO_GET}") from exc
    try:
        model = FireRedAsr.from_pretrained(asr_type, str(model_dir))
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise FireRedModelError(f"could not load FireRedASR-{asr_type.upper()} from {model_dir}: {exc}") from exc
    if device == "cuda":
        model.model.cuda()
    return model


def fireredasr_engine(audio: Any, options: TranscribeOptions) -> SimpleStream:
    """Transcribe *audio* (path or 16 kHz float32 array) with a local FireRedASR model."""
    from ..audio import write_wav

    extra = options.extra
    if options.task != "transcribe":
        raise ConfigurationError("fireredasr: only task='transcribe' is supported")
    model_dir = model_dir_for(options)
    asr_type = detect_asr_type(model_dir, extra.get("asr_type"))
    device = options.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(model_dir, asr_type, device)
    from ..audio import as_samples

    samples = as_samples(audio)
    chunks = speech_chunks(samples, float(extra.get("max_chunk_seconds", MAX_SECONDS[asr_type])))
    args = {"use_gpu": int(device == "cuda"), "beam_size": int(extra.get("beam_size", options.beam_size))}
    args.update({k: extra[k] for k in _DECODE_KEYS if k in extra})
    batch = max(1, int(extra.get("batch_size", 1)))

    def segments():
        with tempfile.TemporaryDirectory(prefix="vidtrans-firered-") as tmp:
            for b in range(0, len(chunks), batch):
                part = chunks[b : b + batch]
                ids = [f"chunk{b + i:05d}" for i in range(len(part))]
                paths = [str(write_wav(Path(tmp, f"{u}.wav"), samples[s:e])) for u, (s, e) in zip(ids, part)]
                try:
                    results = model.transcribe(ids, paths, args)
                except RuntimeError as exc:
                    raise ModelError(f"FireRedASR failed on {part[0][0] / SAMPLE_RATE:.1f} s: {exc}") from exc
                by_id = {r["uttid"]: r for r in results}
                for u, (s, e) in zip(ids, part):
                    text = (by_id.get(u, {}).get("text") or "").strip()
                    if not text:
                        continue
                    t0, t1 = s / SAMPLE_RATE, e / SAMPLE_RATE
                    yield Segment(round(t0, 3), round(t1, 3), text, words=spread_words(t0, t1, text),
                                  meta={"word_timing": "interpolated", "rtf": by_id[u].get("rtf")})

    return SimpleStream(segments=segments(), language=options.language or "zh", duration=samples.size / SAMPLE_RATE,
                        model=f"FireRedASR-{asr_type.upper()}:{model_dir.name}")
