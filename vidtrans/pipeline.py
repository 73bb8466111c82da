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

from .errors import ConfigurationError
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
    #: faster-whisper decoding: 0 = choose from the hardware (sequential on CPU, batched on CUDA),
    #: 1 = sequential (plain faster-whisper's text), N > 1 = batched over VAD chunks (faster, no
    #: previous-text prompt; see bench/README.md)
    batch_size: int = 0
    #: faster-whisper decoders side by side: N > 1 cuts an input of 30 s - 30 min at pauses into
    #: pieces decoded by N workers of cpu_threads / N threads (faster on 2 shared cores; each piece
    #: starts unprompted, see bench/README.md); 1 = one decoder on every thread
    decode_workers: int = 1
    #: faster-whisper: who runs Whisper's encoder: "auto" (OpenVINO on the CPU when installed, in
    #: bfloat16 where the CPU has AMX / AVX512-BF16; CTranslate2 on a GPU), "openvino" or
    #: "ctranslate2" (plain faster-whisper's int8 encoder: its exact text)
    encoder_runtime: str = "auto"
    #: faster-whisper, OpenVINO encoder: "auto", "f32" (the model's own arithmetic) or "bf16"
    #: (bfloat16: faster on AMX / AVX512-BF16 CPUs, the text moves a little; see bench/README.md)
    encoder_precision: str = "auto"
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
    #: word timing for local engines (``vidtrans.timing``): "auto" (forced alignment of
    #: Whisper's words for English, pause keep-out for all), "align", "energy" or "none"
    word_timing: str = "auto"
    #: forced-alignment processes beside the decoder: 0 = auto (one on a CPU; on a GPU one per
    #: physical core but one, up to 8: :func:`align_workers`), N = that many
    align_workers: int = 0
    #: label each segment's emotion (vidtrans.emotion) after diarization
    emotion: bool = False
    #: "heuristic" (offline arousal/valence), "acoustic:MODEL.npz" or "pretrained:HF_NAME_OR_DIR"
    emotion_backend: str = "heuristic"


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
    return _resolve_source(source, options, progress)[0]


def _resolve_source(source: str, options: PipelineOptions, progress: StageProgress | None = None) -> tuple[Media, Any]:
    """:func:`resolve_source`, and for a local file its :class:`~vidtrans.audio.ProbeInfo` (None for a
    download), which :func:`run` hands to the decoder instead of probing the file a second time."""
    if _is_url(source):
        from . import download

        dl_opts = download.DownloadOptions(**options.download_options)

        def hook(d: dict) -> None:
            if progress is not None and d.get("status") == "downloading":
                total = d.get("total_bytes") or d.get("total_bytes_estimate")
                progress("download", float(d.get("downloaded_bytes") or 0), total)

        return download.fetch(source, dl_opts, progress=hook), None
    from .audio import probe

    info = probe(source)
    return Media(
        id=Path(source).stem,
        extractor="local",
        title=Path(source).stem,
        duration=info.duration,
        audio_path=str(Path(source).resolve()),
        source=source,
    ), info


# -- per-stage options (issue #13) ------------------------------------------------
# pipeline.run and the batch stage cache (vidtrans.rundir) build each stage's
# options from PipelineOptions here, so both run the same stages the same way.
def transcribe_options(options: PipelineOptions):
    """The :class:`~vidtrans.transcribe.TranscribeOptions` for *options*."""
    from .transcribe import TranscribeOptions

    return TranscribeOptions(
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
        extra=_faster_whisper_extra(options) if options.engine == "faster-whisper" else {},
    )


def _faster_whisper_extra(options: PipelineOptions) -> dict[str, Any]:
    """The engine options :class:`PipelineOptions` sets beyond faster-whisper's defaults."""
    extra = {}
    if options.batch_size:
        extra["batch_size"] = options.batch_size
    if options.decode_workers != 1:
        extra["num_workers"] = options.decode_workers
    if options.encoder_runtime != "auto":
        extra["encoder_runtime"] = options.encoder_runtime
    if options.encoder_precision != "auto":
        extra["encoder_precision"] = options.encoder_precision
    return extra


def diarize_options(options: PipelineOptions, threads: int = 0):
    """The :class:`~vidtrans.diarize.DiarizeOptions` for *options* (*threads*: model threads, 0 = default)."""
    from . import diarize as dz

    fields = dict(
        backend=options.diarize_backend,
        num_speakers=options.num_speakers,
        min_speakers=options.min_speakers,
        max_speakers=options.max_speakers,
        preset=options.diarize_preset,
        enroll=dict(options.enroll),
    )
    if threads and "num_threads" in getattr(dz.DiarizeOptions, "__dataclass_fields__", {}):
        fields["num_threads"] = threads
    return dz.DiarizeOptions(**fields)


def caption_options(options: PipelineOptions):
    """The :class:`~vidtrans.captions.CaptionOptions` for *options* (defaults + overrides)."""
    from . import captions

    return replace(captions.CaptionOptions(), **options.caption_options)


def refine_word_timing(
    transcript: Transcript, audio: Any, options: PipelineOptions, aligner: Any = None
) -> tuple[Transcript, float | None]:
    """Word timing (issue 9): re-time local engines' words on the signal; records meta["word_timing"].

    *aligner*: the :class:`vidtrans.timing.SegmentAligner` from :func:`word_aligner` that aligned
    segments while they were decoded.
    """
    if options.engine not in LOCAL_ENGINES or options.word_timing == "none" or not transcript.segments:
        return transcript, None
    from .timing import TimingOptions, refine_words

    t0 = time.perf_counter()
    transcript = refine_words(transcript, audio, TimingOptions(method=options.word_timing), aligner)
    return transcript, time.perf_counter() - t0


def transcribe_timed(
    engine_input: Any, audio: Any, topts: Any, options: PipelineOptions, *,
    progress: Any = None, source: str | None = None, models: Any = None,
) -> tuple[Transcript, dict[str, float]]:
    """Transcription, then word timing, with each segment force-aligned while the next is decoded.

    The one path :func:`transcribe_and_diarize` and :mod:`vidtrans.rundir` share; returns the
    transcript and its ``transcribe`` / ``word_timing`` seconds.
    """
    from .transcribe import transcribe

    timings: dict[str, float] = {}
    aligner = word_aligner(audio, options)
    try:
        t0 = time.perf_counter()
        transcript = transcribe(engine_input, topts, progress=progress, source=source, models=models,
                                on_segment=aligner.submit if aligner is not None else None)
        timings["transcribe"] = time.perf_counter() - t0
        transcript, seconds = refine_word_timing(transcript, audio, options, aligner)
        if seconds is not None:
            timings["word_timing"] = seconds
    finally:
        if aligner is not None:  # its results are in: the worker process exits off this path (0.06 s)
            aligner.close(wait=False)
    return transcript, timings


def word_aligner(audio: Any, options: PipelineOptions) -> Any:
    """A :class:`vidtrans.timing.SegmentAligner` that force-aligns segments as the local engine yields
    them, or None when this run does no forced alignment (cloud engine, ``word_timing`` none/energy)."""
    if options.engine not in LOCAL_ENGINES or options.word_timing not in ("auto", "align"):
        return None
    from .timing import SegmentAligner, TimingOptions

    return SegmentAligner(audio, TimingOptions(method=options.word_timing), workers=align_workers(options),
                          processes=True)


#: most alignment processes one input gets on a GPU machine
MAX_ALIGN_WORKERS = 8


def align_workers(options: PipelineOptions) -> int:
    """How many PocketSphinx aligners run beside the decoder (:class:`vidtrans.timing.SegmentAligner`).

    On a CPU, 1: the one aligner already keeps up with the decoder.  It runs in a process of its
    own (:func:`word_aligner`): PocketSphinx holds the GIL for a whole window, and in a thread it
    stalled the decoder's Python steps and the encoder's calls.  When CTranslate2 decodes on a GPU
    the cores are idle and one aligner is the bottleneck (``bench/gpu.py``, base on an H200: 9
    minutes of speech decoded in 2 s, aligned in 15 s on one core), so each physical core but one
    gets an aligner process, up to :data:`MAX_ALIGN_WORKERS`.  ``options.align_workers`` > 0 sets the number.
    """
    if options.align_workers < 0:
        raise ConfigurationError(f"align_workers must be >= 0, got {options.align_workers!r}")
    if options.align_workers:
        return options.align_workers
    if options.device == "cpu" or options.engine != "faster-whisper":
        return 1
    try:
        import ctranslate2

        from .transcribe.local import cuda_library_problem

        gpu = ctranslate2.get_cuda_device_count() > 0 and cuda_library_problem() is None
    except ImportError:
        return 1
    return max(1, min(MAX_ALIGN_WORKERS, _cores() - 1)) if gpu else 1


def _thread_budget(cores: int, diarize: bool) -> tuple[int, int]:
    """(CTranslate2 threads, diarization model threads) while transcription and diarization run side by side.

    The engine keeps every core (on a CPU it decodes models up to small on one
    thread and encodes on all, :func:`vidtrans.transcribe.local.choose_decoder_threads`);
    diarization (onnxruntime sessions that never spin-wait, or torch on a GPU
    machine) gets 1 thread up to 4 cores and a quarter of them beyond, in a
    thread that yields to the decoder's (:func:`vidtrans._threads.yield_to_decoder`).
    Measured in ``bench/speed.py``.
    """
    if not diarize:
        return cores, 0
    return cores, max(1, cores // 4)


def transcribe_and_diarize(
    audio: Any, engine_input: Any, topts: Any, options: PipelineOptions,
    progress: StageProgress | None = None, models: Any = None,
) -> tuple[Transcript, Any, dict[str, float]]:
    """Transcription and (for local engines) diarization of one decoded input, side by side.

    Word alignment runs in a second worker thread as the engine yields each
    segment (:func:`transcribe_timed`); :func:`refine_word_timing` then only
    collects it and runs the pause pass.  Both stages read the same decoded *audio*; diarization runs in a worker
    thread while the engine decodes (CTranslate2 and torch release the GIL),
    so speakers cost little more than the transcript alone.  Returns
    ``(transcript, diarization or None, timings)``; a diarization error is
    raised after transcription finishes.  Engines that label speakers
    themselves (AssemblyAI) are not diarized locally.
    """
    from concurrent.futures import ThreadPoolExecutor

    timings: dict[str, float] = {}
    local = options.engine in LOCAL_ENGINES
    side_by_side = options.diarize and local
    pool = future = None
    if side_by_side:
        from . import diarize as dz

        _, torch_threads = _thread_budget(_cores(), True)
        dopts = diarize_options(options, torch_threads)

        def diarize_job():
            from ._threads import yield_to_decoder

            yield_to_decoder()
            t = time.perf_counter()
            result = dz.diarize(audio, dopts, progress=(lambda d, n: progress("diarize", d, n)) if progress else None)
            return result, time.perf_counter() - t

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidtrans-diarize")
        future = pool.submit(diarize_job)
    try:
        # word timing (what the aligner has not done yet) runs while diarization may still be going
        transcript, stage_times = transcribe_timed(
            engine_input, audio, topts, options,
            progress=(lambda done, total: progress("transcribe", done, total)) if progress else None,
            source=str(engine_input) if isinstance(engine_input, (str, Path)) else None,
            models=models,
        )
        timings.update(stage_times)
        diarization = None
        if future is not None:
            t0 = time.perf_counter()
            diarization, timings["diarize"] = future.result()
            timings["diarize_wait"] = time.perf_counter() - t0
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if options.diarize and not local and not transcript.speaker_turns and transcript.segments:
        from . import diarize as dz  # noqa: F811  (cloud engines: after transcription)

        t0 = time.perf_counter()
        diarization = dz.diarize(audio, diarize_options(options),
                                 progress=(lambda d, n: progress("diarize", d, n)) if progress else None)
        timings["diarize"] = time.perf_counter() - t0
    return transcript, diarization, timings


def _cores() -> int:
    from .transcribe.local import physical_cores

    return physical_cores()


def _preload_model(topts: Any, models: Any, duration: float | None):
    """Start loading the local Whisper model into *models* in a thread while the audio is decoded.

    Returns the thread, or None when there is nothing to preload: another engine, no
    caller-owned cache, an unknown duration, or one near :data:`OPENVINO_MAX_SECONDS`
    (where the engine's choice of encoder, made on the decoded length, could differ).
    The engine's own :func:`~vidtrans.transcribe.local.get_model` call then waits for
    this load (:meth:`vidtrans.models.ModelCache.get`); a failed preload is only logged,
    and the engine loads again and raises the error there.  Measured on 2 cores, 14
    alternating pairs on the 53 s sonnet: 1-2 % of the whole run (bench/README.md).
    """
    from .transcribe.ov_encoder import OPENVINO_MAX_SECONDS

    if topts.engine != "faster-whisper" or models is None or not duration:
        return None
    if abs(duration - OPENVINO_MAX_SECONDS) < 60:
        return None
    import threading

    from .transcribe.local import get_model

    def load() -> None:
        try:
            get_model(topts, models, duration)
        except Exception as exc:  # noqa: BLE001 - the engine loads it again and raises it there
            log.debug("preloading the Whisper model failed: %s", exc)

    thread = threading.Thread(target=load, name="vidtrans-preload-model", daemon=True)
    thread.start()
    return thread


def run(
    source: str, options: PipelineOptions | None = None, progress: StageProgress | None = None, models: Any = None
) -> PipelineResult:
    """Run the whole job on one source and write the caption files.

    *models* is a :class:`vidtrans.models.ModelCache` owned by the caller:
    pass the same one for every file of a batch so models load once.
    """
    from . import captions
    from .audio import load_audio

    options = options or PipelineOptions()
    for fmt in options.formats:
        captions.get_writer(fmt)  # fail on a bad format name before any heavy work
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    media, info = _resolve_source(str(source), options, progress)
    timings["download"] = time.perf_counter() - t0

    topts = transcribe_options(options)  # issue #13: shared with vidtrans.rundir
    preload = _preload_model(topts, models, media.duration)
    t0 = time.perf_counter()
    assert media.audio_path is not None
    audio = load_audio(media.audio_path, info=info)
    timings["decode"] = time.perf_counter() - t0

    # local engines take the decoded samples; cloud engines upload the file
    engine_input: Any = audio if options.engine in LOCAL_ENGINES else media.audio_path
    # transcription and diarization side by side (see transcribe_and_diarize)
    transcript, diarization, stage_times = transcribe_and_diarize(audio, engine_input, topts, options, progress, models)
    if preload is not None:
        preload.join()
    timings.update(stage_times)
    transcript = transcript.replace(source=str(source), media=media, duration=transcript.duration or media.duration)
    if diarization is not None and transcript.segments:
        from . import diarize as dz

        # the whole Diarization (not .exclusive): words in overlaps go to the speaker who says them
        transcript = dz.assign_speakers(transcript, diarization)
    elif options.diarize and transcript.speaker_turns:
        log.info("engine %s already labelled speakers; skipping diarization", transcript.engine)

    # emotion per segment (issue 11): after diarization, so it is normalised per speaker
    if options.emotion and transcript.segments:
        from . import emotion as em

        t0 = time.perf_counter()
        transcript = em.analyze(transcript, audio, em.EmotionOptions(backend=options.emotion_backend))
        timings["emotion"] = time.perf_counter() - t0
    del audio

    t0 = time.perf_counter()
    transcript = transcript.replace(meta={**transcript.meta, "timings": {k: round(v, 3) for k, v in timings.items()}})
    copts = caption_options(options)
    out_base = Path(options.out_dir) / _stem(media, str(source))
    outputs = captions.write(transcript, out_base, formats=tuple(options.formats), options=copts)
    timings["captions"] = time.perf_counter() - t0
    return PipelineResult(
        source=str(source), media=media, transcript=transcript, outputs=outputs, timings=timings, diarization=diarization
    )
