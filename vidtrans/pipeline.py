"""Compose the stages: source -> Media -> audio -> Transcript -> speakers -> captions.

Each stage is a plain function in its own module; this module only wires them
together, the way whisperX composes transcribe -> align -> diarize::

    from vidtrans.pipeline import run, PipelineOptions
    result = run("talk.mp4", PipelineOptions(out_dir="out"))
    result.outputs["vtt"]  # Path to the WebVTT file

Option names are the notebooks' parameter names and the CLI's flags.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .schema import Media, Transcript

log = logging.getLogger(__name__)

#: stage progress callback: (stage name, amount done, total or None)
StageProgress = Callable[[str, float, "float | None"], None]

DEFAULT_FORMATS = ("vtt", "srt", "json", "txt")
LOCAL_ENGINES = ("faster-whisper", "openai-whisper", "fireredasr")


@dataclass
class PipelineOptions:
    """Everything ``vidtrans run`` needs; every field has a CLI flag of the same name."""

    #: directory the caption files are written to (``<out_dir>/<stem>.<format>``)
    out_dir: str = "out"
    #: caption/transcript formats to write (see ``vidtrans.captions.WRITERS``)
    formats: tuple[str, ...] = DEFAULT_FORMATS
    #: transcription engine ("faster-whisper", "assemblyai", "gemini", "auto", ...)
    engine: str = "faster-whisper"
    #: Whisper model name/alias or a local model directory ("base" ships offline)
    model: str = "base"
    #: spoken language (ISO 639-1); None detects it
    language: str | None = None
    #: skip non-speech with a VAD before decoding (faster on long silences)
    vad_filter: bool = False
    #: beam width (1 = greedy: fastest)
    beam_size: int = 5
    #: "auto", "cpu" or "cuda"
    device: str = "auto"
    #: CTranslate2 compute type; "default" = int8 on CPU, float16 on GPU
    compute_type: str = "default"
    #: CPU threads for the local engine; 0 = physical cores
    cpu_threads: int = 0
    #: label who spoke when (offline backend by default)
    diarize: bool = True
    #: diarization backend: "local" (offline) or "pyannote" (needs HF_TOKEN)
    diarize_backend: str = "local"
    #: exact number of speakers when known
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    #: diarization speed/accuracy preset: "fast", "balanced" or "accurate" (default)
    diarize_preset: str = "accurate"
    #: name -> reference clip; matching speakers get the name instead of "Speaker N"
    enroll: dict[str, str] = field(default_factory=dict)
    #: caption rules (``vidtrans.captions.CaptionOptions`` fields) to override
    caption_options: dict[str, Any] = field(default_factory=dict)
    #: yt-dlp download options (``vidtrans.download.DownloadOptions`` fields) to override
    download_options: dict[str, Any] = field(default_factory=dict)
    #: engines to try when the first one fails
    fallback: tuple[str, ...] = ()
    #: names and jargon to boost (cloud key terms / Whisper prompt)
    key_terms: tuple[str, ...] = ()


@dataclass
class PipelineResult:
    source: str
    media: Media
    transcript: Transcript
    outputs: dict[str, Path]
    timings: dict[str, float]
    diarization: Any = None


def _stem(media: Media, source: str) -> str:
    """File-name stem for the outputs: the local file's stem, else "<title>-<id>"."""
    if media.extractor == "local":
        return Path(media.audio_path or source).stem
    title = "".join(c if c.isalnum() or c in "-_." else "_" for c in (media.title or "")).strip("_.")[:80]
    return f"{title}-{media.id}" if title and title != media.id else media.id


def _is_url(source: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source) is not None


def resolve_source(source: str, options: PipelineOptions, progress: StageProgress | None = None) -> Media:
    """Turn a URL or a local path into a Media record with a local audio path."""
    if _is_url(source):
        from . import download

        dl_opts = download.DownloadOptions(**options.download_options)

        def hook(d: dict) -> None:
            if progress is not None and d.get("status") == "downloading":
                total = d.get("total_bytes") or d.get("total_bytes_estimate")
                progress("download", float(d.get("downloaded_bytes") or 0), total)

        return download.fetch(source, dl_opts, progress=hook)
    from .audio import probe

    info = probe(source)
    return Media(
        id=Path(source).stem,
        extractor="local",
        title=Path(source).stem,
        duration=info.duration,
        audio_path=str(Path(source).resolve()),
        source=source,
    )


def run(source: str, options: PipelineOptions | None = None, progress: StageProgress | None = None) -> PipelineResult:
    """Run the whole job on one source and write the caption files."""
    from . import captions
    from .audio import load_audio
    from .transcribe import TranscribeOptions, transcribe

    options = options or PipelineOptions()
    for fmt in options.formats:
        captions.get_writer(fmt)  # fail on a bad format name before any heavy work
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    media = resolve_source(str(source), options, progress)
    timings["download"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    assert media.audio_path is not None
    audio = load_audio(media.audio_path)
    timings["decode"] = time.perf_counter() - t0

    topts = TranscribeOptions(
        engine=options.engine,
        model=options.model,
        language=options.language,
        vad_filter=options.vad_filter,
        beam_size=options.beam_size,
        device=options.device,
        compute_type=options.compute_type,
        cpu_threads=options.cpu_threads,
        fallback=tuple(options.fallback),
        key_terms=tuple(options.key_terms),
        # engines that label speakers themselves (AssemblyAI) then skip local diarization
        speaker_labels=options.diarize,
    )
    t0 = time.perf_counter()
    # local engines take the decoded samples; cloud engines upload the file
    engine_input: Any = audio if options.engine in LOCAL_ENGINES else media.audio_path
    transcript = transcribe(
        engine_input,
        topts,
        progress=(lambda done, total: progress("transcribe", done, total)) if progress else None,
        source=str(source),
    )
    transcript = transcript.replace(media=media, duration=transcript.duration or media.duration)
    timings["transcribe"] = time.perf_counter() - t0

    diarization = None
    if options.diarize and transcript.segments and not transcript.speaker_turns:
        from . import diarize as dz

        t0 = time.perf_counter()
        dopts = dz.DiarizeOptions(
            backend=options.diarize_backend,
            num_speakers=options.num_speakers,
            min_speakers=options.min_speakers,
            max_speakers=options.max_speakers,
            preset=options.diarize_preset,
            enroll=dict(options.enroll),
        )
        diarization = dz.diarize(
            audio, dopts, progress=(lambda done, total: progress("diarize", done, total)) if progress else None
        )
        # the whole Diarization (not .exclusive): words in overlaps go to the speaker who says them
        transcript = dz.assign_speakers(transcript, diarization)
        timings["diarize"] = time.perf_counter() - t0
    elif options.diarize and transcript.speaker_turns:
        log.info("engine %s already labelled speakers; skipping diarization", transcript.engine)
    del audio

    t0 = time.perf_counter()
    transcript = transcript.replace(meta={**transcript.meta, "timings": {k: round(v, 3) for k, v in timings.items()}})
    copts = replace(captions.CaptionOptions(), **options.caption_options)
    out_base = Path(options.out_dir) / _stem(media, str(source))
    outputs = captions.write(transcript, out_base, formats=tuple(options.formats), options=copts)
    timings["captions"] = time.perf_counter() - t0
    return PipelineResult(
        source=str(source), media=media, transcript=transcript, outputs=outputs, timings=timings, diarization=diarization
    )
