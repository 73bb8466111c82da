"""The ``vidtrans`` command line.

Flags carry the same names as the notebooks' parameters and the fields of
:class:`vidtrans.pipeline.PipelineOptions`.  User mistakes (missing file, bad
URL, wrong key, ...) print one line ``vidtrans: error: ...`` and exit non-zero
without a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import ConfigurationError, VidtransError

log = logging.getLogger("vidtrans")


# --------------------------------------------------------------------------- progress
class _Bars:
    """One tqdm bar per pipeline stage, created on first report."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: float, total: float | None) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            unit, scale = ("B", True) if stage == "download" else ("s", False)
            bar = tqdm(total=total, desc=f"{stage:>10}", unit=unit, unit_scale=scale, leave=True,
                       bar_format=None if unit == "B" else "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")
            self.bars[stage] = bar
        if total and bar.total != total:  # type: ignore[attr-defined]
            bar.total = total  # type: ignore[attr-defined]
        bar.n = min(done, total) if total else done  # type: ignore[attr-defined]
        bar.refresh()  # type: ignore[attr-defined]

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()  # type: ignore[attr-defined]
        self.bars.clear()


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[_Bars]:
    bars = _Bars(enabled)
    try:
        yield bars
    finally:
        bars.close()


# --------------------------------------------------------------------------- commands
def _formats(value: str) -> tuple[str, ...]:
    return tuple(f.strip().lower() for f in value.split(",") if f.strip())


def _add_transcribe_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="faster-whisper",
                   help="faster-whisper (offline, default), openai-whisper, assemblyai, gemini, fireredasr, "
                        "or auto (choose by language/keys/budget)")
    p.add_argument("--key-terms", dest="key_terms", default="", help="comma-separated names/jargon to boost")
    p.add_argument("--model", default="base", help="Whisper model: base (offline, default), tiny.en (offline), a model directory, or any faster-whisper name when online")
    p.add_argument("--language", default=None, help="spoken language code (en, de, ...); default: detect")
    p.add_argument("--vad-filter", dest="vad_filter", action="store_true", help="skip non-speech with Silero VAD before decoding")
    p.add_argument("--beam-size", dest="beam_size", type=int, default=5, help="beam width; 1 = greedy (fastest)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compute-type", dest="compute_type", default="default",
                   help="CTranslate2 compute type (default: int8 on CPU, float16 on GPU)")
    p.add_argument("--threads", dest="cpu_threads", type=int, default=0, help="CPU threads; 0 = physical cores")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=0,
                   help="faster-whisper: 0 = auto (sequential on CPU, batched on GPU), 1 = sequential, "
                        "N = batched over speech chunks (faster on CPU too, slightly different text)")
    p.add_argument("--decode-workers", dest="decode_workers", type=int, default=1,
                   help="faster-whisper: N > 1 cuts inputs of 30 s - 30 min at pauses into pieces that N "
                        "decoders of threads/N threads decode side by side (faster on 2 shared cores; "
                        "each piece starts without the previous text as a prompt)")
    p.add_argument("--encoder-runtime", dest="encoder_runtime", default="auto", choices=["auto", "openvino", "ctranslate2"],
                   help="faster-whisper: who runs Whisper's encoder; auto = OpenVINO on the CPU when installed "
                        "(1.4-2x less CPU; bfloat16 on AMX/AVX512-BF16 CPUs), ctranslate2 = plain faster-whisper's "
                        "int8 encoder and its exact text")
    p.add_argument("--encoder-precision", dest="encoder_precision", default="auto", choices=["auto", "f32", "bf16"],
                   help="faster-whisper, OpenVINO encoder: f32 = the model's own arithmetic, bf16 = bfloat16 "
                        "(faster on AMX/AVX512-BF16 CPUs, the text moves a little); auto = bf16 where the CPU computes "
                        "it natively, else f32")


def _add_diarize_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-speakers", dest="num_speakers", type=int, default=None, help="exact number of speakers, when known")
    p.add_argument("--min-speakers", dest="min_speakers", type=int, default=None)
    p.add_argument("--max-speakers", dest="max_speakers", type=int, default=None)
    p.add_argument("--diarize-backend", dest="diarize_backend", default="local", choices=["local", "pyannote"],
                   help="local = offline (default); pyannote = hosted community-1 pipeline (needs HF_TOKEN)")
    p.add_argument("--preset", default="accurate", choices=["fast", "balanced", "accurate"],
                   help="diarization speed/accuracy trade-off (default accurate)")
    p.add_argument("--enroll", action="append", default=[], metavar="NAME=CLIP",
                   help="name a speaker from a reference clip (repeatable)")


def _print_outputs(outputs: dict[str, Path]) -> None:
    for fmt, path in outputs.items():
        print(f"{fmt:>5}: {path}")


def _pipeline_options(args: argparse.Namespace):
    from .pipeline import PipelineOptions

    return PipelineOptions(
        out_dir=args.out,
        formats=_formats(args.formats),
        engine=args.engine,
        model=args.model,
        language=args.language,
        vad_filter=args.vad_filter,
        beam_size=args.beam_size,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.cpu_threads,
        batch_size=args.batch_size,
        decode_workers=args.decode_workers,
        encoder_runtime=args.encoder_runtime,
        encoder_precision=args.encoder_precision,
        diarize=args.diarize,
        diarize_backend=args.diarize_backend,
        num_speakers=args.num_speakers,
        min_speakers=args.min_speakers,
        max_speakers=args.max_speakers,
        diarize_preset=args.preset,
        enroll=_diarize_overrides(args)["enroll"],
        fallback=_formats(args.fallback) if args.fallback else (),
        key_terms=tuple(t.strip() for t in args.key_terms.split(",") if t.strip()),
        caption_options=_caption_overrides(args),
        download_options=_download_overrides(args),
        word_timing=getattr(args, "word_timing", "auto"),
        align_workers=getattr(args, "align_workers", 0),
        emotion=getattr(args, "emotion", False),
        emotion_backend=getattr(args, "emotion_backend", "heuristic"),
    )


_CAPTION_FLAGS = ("max_chars_per_line", "max_lines", "max_cps", "min_duration", "max_duration", "pause_threshold", "speaker_labels",
                  "emotion_captions", "dialogue_cues")


def _caption_overrides(args: argparse.Namespace) -> dict:
    out = {k: v for k in _CAPTION_FLAGS if (v := getattr(args, k, None)) is not None}
    if out.get("pause_threshold") == 0:
        out["pause_threshold"] = None
    return out


def _playlist_entries(source: str, args: argparse.Namespace) -> list[str] | None:
    """Entries of a playlist/feed/channel URL, or None when *source* is one item."""
    from .pipeline import _is_url

    if not _is_url(source) or source.startswith("file://"):
        return None
    from . import download

    options = download.DownloadOptions(**_download_overrides(args))
    return [m.source or m.webpage_url or source for m in download.expand(source, options)]


def cmd_run(args: argparse.Namespace) -> int:
    from .models import ModelCache
    from .pipeline import run

    options = _pipeline_options(args)
    models = ModelCache()  # one per invocation: every source after the first reuses the loaded models
    pending = list(args.source)
    single = len(pending) == 1
    failures = 0
    while pending:
        source = pending.pop(0)
        with _progress(not args.quiet) as bars:
            try:
                result = run(source, options, progress=bars, models=models)
            except VidtransError as exc:
                from .download import PlaylistError  # light: yt-dlp is imported lazily

                if isinstance(exc, PlaylistError):
                    entries = _playlist_entries(source, args) or []
                    print(f"{source}: playlist with {len(entries)} entries", file=sys.stderr)
                    pending[:0] = entries
                    single = False
                    continue
                if single:
                    raise
                failures += 1
                print(f"vidtrans: error: {source}: {exc}", file=sys.stderr)
                continue
        t = result.transcript
        if not t.segments:
            print(f"{source}: no speech found ({t.duration or 0:.1f} s of audio); wrote empty captions", file=sys.stderr)
        else:
            spk = f", {len(t.speakers)} speakers" if t.speakers else ""
            print(f"{source}: {len(t.words)} words, language {t.language}{spk}, {t.duration or 0:.1f} s audio")
        _print_outputs(result.outputs)
        if getattr(args, "translate", None) or getattr(args, "upload", False):  # vidtrans.upload / translate
            _publish_run(result, args)
    return 1 if failures else 0


def _publish_run(result, args: argparse.Namespace) -> None:
    """--translate / --upload after one source was captioned."""
    from . import upload

    t = result.transcript
    base = Path(result.outputs.get("vtt") or next(iter(result.outputs.values()))).with_suffix("")
    langs = [lang for lang in args.translate if lang.split("-")[0] != (t.language or "").split("-")[0]]
    translated = _translate_outputs(t, base, langs, args) if langs else []
    if not args.upload:
        return
    vid = upload.media_video_id(t.media.to_dict() if t.media else None)
    if vid is None:
        raise ConfigurationError(f"--upload: {result.source} is not a YouTube video")
    if "vtt" not in result.outputs:
        raise ConfigurationError("--upload needs vtt among --formats")
    jobs = [upload.CaptionJob(vid, str(result.outputs["vtt"]), t.language or "en")]
    jobs += [upload.CaptionJob(vid, str(p), lang) for lang, p in zip(langs, translated)]
    options = upload.UploadOptions(name=args.name, draft=args.draft, quota_budget=args.quota_budget)
    _print_publish(upload.publish_many(jobs, options))


def cmd_batch(args: argparse.Namespace) -> int:
    """Many sources -> OUT/<stem>/ per item, resumable, on local processes or Ray (issue #13)."""
    from .batch import BatchOptions, run_batch

    options = _pipeline_options(args)
    batch = BatchOptions(out_dir=args.out, workers=args.workers or 1, executor=args.executor,
                         ray_address=args.ray_address, limit=args.limit, retries=args.retries,
                         retry_delay=args.retry_delay, notebook=args.notebook, progress=not args.quiet)
    report = run_batch(args.source, options, batch)
    print(report.format())
    print(f"report: {Path(args.out) / 'batch_report.json'}")
    return 1 if report.failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the main job on the bundled sample (or on --url)."""
    if args.url:
        args.source = [args.url]
        return cmd_run(args)
    from .demo import make_demo_video

    video = make_demo_video(Path(args.out) / "demo")
    print(f"demo input: {video} (pyannote-audio's bundled 2-speaker sample, muxed into an mp4)")
    args.source = [str(video)]
    return cmd_run(args)


def cmd_validate(args: argparse.Namespace) -> int:
    from .captions import validate_vtt

    worst = 0
    for path in args.files:
        report = validate_vtt(Path(path))
        print(report.format() if hasattr(report, "format") else report)
        if report.errors:
            worst = 1
        elif args.strict and getattr(report, "violations", None):
            worst = max(worst, 1)
    return worst


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    for m in list_models():
        state = "offline" if m.available else f"unavailable: {m.reason}"
        print(f"{m.name:<10} {state:<12} {m.description}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import check_environment, format_checks

    checks = check_environment(prepare_models=args.prepare)
    print(format_checks(checks))
    return 0 if all(c.ok for c in checks if c.required) else 1


def cmd_download(args: argparse.Namespace) -> int:
    from . import download

    options = download.DownloadOptions(**_download_overrides(args))
    if args.info:
        rc = 0
        for source in args.source:
            try:
                entries = download.expand(source, options)
            except VidtransError as exc:
                print(f"vidtrans: error: {exc}", file=sys.stderr)
                rc = 1
                continue
            for m in entries:
                dur = f"{m.duration:.0f}s" if m.duration else "?"
                print(f"{m.extractor}:{m.id}\t{dur}\t{m.upload_date or ''}\t{m.title or ''}\t{m.webpage_url or m.source or ''}")
        return rc
    progress = None if args.quiet else download.tqdm_hook()
    try:
        result = download.fetch_all(args.source, options, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    for item in result.items:
        if item.ok:
            print(f"ok\t{item.source}\t{item.media.audio_path}")
        else:
            print(f"failed\t{item.source}\t{type(item.error).__name__}: {item.error}", file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    return 0 if all(i.ok for i in result.items) else 1


def _diarize_overrides(args: argparse.Namespace) -> dict:
    enroll = {}
    for item in args.enroll:
        name, sep, clip = item.partition("=")
        if not sep or not name.strip() or not clip.strip():
            raise ConfigurationError(f"--enroll expects NAME=CLIP, got {item!r}")
        enroll[name.strip()] = clip.strip()
    return dict(
        backend=args.diarize_backend, num_speakers=args.num_speakers, min_speakers=args.min_speakers,
        max_speakers=args.max_speakers, preset=args.preset, enroll=enroll,
    )


def _download_overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {}
    if getattr(args, "cache", None):
        overrides["cache_dir"] = Path(args.cache)
    if getattr(args, "limit", None) is not None:
        overrides["limit"] = args.limit
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    if getattr(args, "cookies", None):
        overrides["cookies_file"] = args.cookies
    return overrides


def cmd_diarize(args: argparse.Namespace) -> int:
    from . import diarize as dz

    options = dz.DiarizeOptions(**_diarize_overrides(args))
    out = Path(args.out)
    for audio in args.audio:
        with _progress(not args.quiet) as bars:
            result = dz.diarize(audio, options, progress=lambda d, t: bars("diarize", d, t))
        path = out / f"{Path(audio).stem}.rttm"
        dz.write_rttm(result.turns, path, uri=Path(audio).stem)
        print(f"{audio}: {len(result.speakers)} speakers, {len(result.turns)} turns -> {path}")
    return 0


def cmd_auth(args: argparse.Namespace) -> int:
    """Authorise vidtrans to manage YouTube captions (stores a 0600 token file)."""
    from .youtube_auth import authorize

    path = authorize(args.client_secrets, console=True if args.console else None, open_browser=not args.no_browser)
    print(f"authorised; token stored in {path}")
    return 0


def _upload_options(args: argparse.Namespace):
    from .upload import UploadOptions

    return UploadOptions(name=args.name, draft=args.draft, dry_run=args.dry_run, quota_budget=args.quota_budget)


def _translate_outputs(transcript, out_base: Path, langs, args: argparse.Namespace) -> list[Path]:
    """Write <out_base>.<lang>.vtt for each --translate language (same caption rules as the main track)."""
    from dataclasses import replace as dc_replace

    from . import captions
    from .translate import translate, write_translation

    copts = dc_replace(captions.CaptionOptions(), **_caption_overrides(args))
    audio = transcript.media.audio_path if transcript.media and transcript.media.audio_path else None
    written = []
    for lang in langs:
        t = translate(transcript, lang, audio=audio, engine=args.translate_engine)
        written.append(write_translation(t, out_base, ("vtt",), copts)["vtt"])
        print(f"translated {lang}: {written[-1]}")
    return written


def _print_publish(results) -> int:
    """Print one line per track; return 1 when any track failed (the others were still published)."""
    total, failed = 0, 0
    for r in results:
        total += r.units
        failed += r.action == "failed"
        print(r, file=sys.stderr if r.action == "failed" else sys.stdout)
    print(f"{total} quota units spent" + (f"; {failed} tracks failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def cmd_upload(args: argparse.Namespace) -> int:
    from . import upload

    options = _upload_options(args)
    if args.list:
        for t in upload.list_tracks(args.list, options):
            draft = " draft" if t.is_draft else ""
            print(f"{t.id}\t{t.language}\t{t.kind}{draft}\t{t.name or '-'}\t{t.last_updated or ''}")
        return 0
    if args.download:
        data = upload.download_track(args.download, args.format, args.output, options)
        if args.output:
            print(f"downloaded {args.download} -> {args.output}")
        else:
            sys.stdout.write(data.decode("utf-8", "replace"))
        return 0
    if args.delete:
        upload.delete_track(args.delete, options)
        print(f"deleted {args.delete}")
        return 0
    if args.compare_asr:
        if len(args.target) != 2:
            raise ConfigurationError("--compare-asr takes VIDEO CAPTION_FILE")
        print(upload.compare_with_asr(args.target[0], args.target[1], options))
        return 0
    if args.from_dir:
        if args.translate:
            from .translate import translate_run_dir

            for path in translate_run_dir(args.from_dir, args.translate, engine=args.translate_engine):
                print(f"translated {path.suffixes[-2].lstrip('.')}: {path}")
        jobs = upload.jobs_from_dir(args.from_dir)
    else:
        if len(args.target) != 2 or not args.language:
            raise ConfigurationError("give VIDEO CAPTION_FILE --language LANG, or --from OUT_DIR "
                                     "(or --list/--download/--delete)")
        if args.translate:
            raise ConfigurationError("--translate needs a transcript: use it with --from OUT_DIR or `vidtrans run URL "
                                     "--upload --translate ...`")
        jobs = [upload.CaptionJob(args.target[0], args.target[1], args.language)]
    if args.dry_run:
        print(upload.plan(jobs, options).format())
        return 0
    return _print_publish(upload.publish_many(jobs, options, keep_going=len({j.video for j in jobs}) > 1))



def cmd_live(args: argparse.Namespace) -> int:
    """Live captions: committed words printed as they come, VTT + word log written as they grow."""
    from .live import LiveOptions, run_live

    enroll = {}
    for item in args.enroll:
        name, sep, clip = item.partition("=")
        if not sep or not name.strip() or not clip.strip():
            raise ConfigurationError(f"--enroll takes NAME=CLIP, got {item!r}")
        enroll[name.strip()] = clip.strip()
    extra = {} if args.speaker_threshold is None else {"speaker_threshold": args.speaker_threshold}
    options = LiveOptions(
        **extra,
        model=args.model, fallback_model=None if args.fallback_model in ("", "none") else args.fallback_model,
        language=args.language, device=args.device, compute_type=args.compute_type, cpu_threads=args.cpu_threads,
        beam_size=args.beam_size, short_context=args.short_context, step=args.step, max_step=max(args.max_step, args.step), realtime=args.realtime,
        adaptive_step=args.adaptive_step, min_step=min(args.min_step, args.step), max_pending=args.max_pending,
        stall_timeout=args.stall_timeout, speakers=args.speakers,
        enroll=enroll, speaker_labels=args.speaker_labels,
    )
    last_speaker = [None]

    def show(state) -> None:
        if args.quiet:
            return
        for w in state.new_words:
            if w.speaker and w.speaker != last_speaker[0]:
                print(f"\n[{w.speaker}]", end="", flush=True)
                last_speaker[0] = w.speaker
            print(w.text, end="", flush=True)

    result = run_live(args.source, out=args.out, events=args.events, options=options, on_update=show)
    if not args.quiet:
        print()
    lat = sorted(result.latencies)
    median = lat[len(lat) // 2] if lat else float("nan")
    talk = ", ".join(f"{k} {v:.0f} s" for k, v in result.talk_time.items()) or "-"
    print(
        f"{len(result.words)} words committed from {result.audio_seconds:.1f} s of audio in {result.wall_seconds:.1f} s; "
        f"median commit latency {median:.2f} s; talk time: {talk}"
        + ("; the stream stalled" if result.stalled else "")
    )
    if result.switches:
        print("model switches: " + ", ".join(f"{a} -> {b} at {t:.0f} s" for t, a, b in result.switches))
    for what, path in (("vtt", result.vtt), ("events", result.events)):
        if path:
            print(f"{what:>6}: {path}")
    return 0


def cmd_emotion(args: argparse.Namespace) -> int:
    """`vidtrans emotion train|predict`: the trainable acoustic emotion model."""
    import json

    from . import emotion_acoustic as ea

    if args.emotion_command == "train":
        clips = ea.read_labelled_folder(args.folder, args.labels, args.label_column, args.speaker_column)
        trained_on = args.trained_on or f"{len(clips)} clips of {Path(args.folder).name}"
        model, validation = ea.train(clips, C=args.C, validate=not args.no_validate, trained_on=trained_on)
        print(validation.format() if validation else "no speaker-independent validation (no speaker for every clip)")
        path = model.save(args.out)
        print(f"model: {path} ({len(model.labels)} classes: {', '.join(model.labels)}; trained on {trained_on})")
        return 0
    model = ea.AcousticModel.load(args.model)
    speakers: list = [None] * len(args.files)
    if args.speakers == "name":
        speakers = [(ea.label_from_name(f) or (None, None))[1] for f in args.files]
    elif args.speakers == "same":
        speakers = ["one"] * len(args.files)
    probs = model.predict([ea.read_clip(f) for f in args.files], speakers)
    rows = []
    for f, p in zip(args.files, probs):
        k = int(p.argmax())
        rows.append({"file": f, "label": model.labels[k], "scores": {lab: round(float(x), 4) for lab, x in zip(model.labels, p)}})
        print(f"{f}\t{model.labels[k]}\t{p[k]:.2f}")
    if args.json:
        from ._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=2))
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="vidtrans",
        description="Video/audio URL or file -> word-timed transcript -> speakers -> WebVTT/SRT captions.",
    )
    parser.add_argument("--version", action="version", version=f"vidtrans {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_run_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", default="out", help="output directory (default: out)")
        p.add_argument("--formats", default="vtt,srt,json,txt", help="comma-separated: vtt,srt,json,txt,tsv")
        _add_transcribe_flags(p)
        p.add_argument("--fallback", default="", help="comma-separated engines to try if --engine fails")
        p.add_argument("--no-diarize", dest="diarize", action="store_false", help="skip speaker diarization")
        p.add_argument("--limit", type=int, default=None, help="at most N entries of a playlist/feed URL")
        p.add_argument("--max-chars", dest="max_chars_per_line", type=int, default=None, help="caption line length (default 42)")
        p.add_argument("--max-lines", dest="max_lines", type=int, default=None, help="lines per caption (default 2)")
        p.add_argument("--max-cps", dest="max_cps", type=float, default=None, help="reading speed limit, characters/second (default 20)")
        p.add_argument("--min-duration", dest="min_duration", type=float, default=None, help="shortest caption, seconds (default 0.833)")
        p.add_argument("--max-duration", dest="max_duration", type=float, default=None, help="longest caption, seconds (default 7)")
        p.add_argument("--pause", dest="pause_threshold", type=float, default=None, help="new caption after a silence this long (default 0.4; 0 = never)")
        p.add_argument("--speaker-labels", dest="speaker_labels", choices=["auto", "on", "off"], default=None)
        # issue 9: emotion in captions (needs Segment.emotion from the emotion stage), dialogue cues
        p.add_argument("--emotion-captions", dest="emotion_captions", choices=["class", "tag"], default=None,
                       help="show each cue's emotion: 'class' = WebVTT <c.LABEL> span, 'tag' = [LABEL] prefix")
        p.add_argument("--no-dialogue-cues", dest="dialogue_cues", action="store_const", const=False, default=None,
                       help="never put two speakers in one cue (dashed dialogue lines)")
        p.add_argument("--cookies", default=None, help="cookies.txt for private or age-restricted videos")
        # word timing (vidtrans.timing): re-time local engines' words on the signal
        p.add_argument("--word-timing", dest="word_timing", default="auto", choices=["auto", "align", "energy", "none"],
                       help="auto = forced alignment for English + pause keep-out (default); none = Whisper's own times")
        p.add_argument("--align-workers", dest="align_workers", type=int, default=0,
                       help="forced-alignment processes beside the decoder; 0 = auto (1 on a CPU, one per core "
                            "but one, up to 8, when decoding on a GPU)")
        _add_diarize_flags(p)
        # publishing (vidtrans.upload): --upload after captioning, --translate adds <stem>.<lang>.vtt tracks
        p.add_argument("--upload", action="store_true", help="publish the captions to the YouTube video afterwards")
        p.add_argument("--upload-name", dest="name", default="vidtrans", help="track name for --upload")
        p.add_argument("--upload-draft", dest="draft", action="store_true", help="--upload as a draft")
        p.add_argument("--quota-budget", dest="quota_budget", type=int, default=10_000, help="units per Pacific day for --upload")
        p.add_argument("--translate", nargs="+", default=[], metavar="LANG",
                       help="also write (and with --upload publish) translated tracks: en via Whisper, others via Gemini")
        p.add_argument("--translate-engine", dest="translate_engine", default="auto", choices=["auto", "whisper", "gemini"])
        # emotion per segment (vidtrans.emotion)
        p.add_argument("--emotion", action="store_true", help="label each segment's emotion (see --emotion-backend)")
        p.add_argument("--emotion-backend", dest="emotion_backend", default="heuristic",
                       help="heuristic (offline: arousal/valence), acoustic:MODEL.npz, or pretrained:HF_NAME_OR_DIR")

    p = sub.add_parser("run", help="URL(s) or file(s) -> captions (download, transcribe, diarize, write)")
    p.add_argument("source", nargs="+", help="media file, yt-dlp URL (video, playlist entry) or file:// URL")
    add_run_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("batch", help="many files/URLs/playlists -> OUT/<stem>/ per item; resumable, parallel (local or Ray)")
    p.add_argument("source", nargs="+", help="media files, folders, URLs, playlists, channels or feeds")
    add_run_flags(p)  # every `vidtrans run` option; --limit caps the number of items
    p.add_argument("--workers", type=int, default=1, help="parallel workers (processes or Ray actors; default 1)")
    p.add_argument("--executor", default="local", choices=["local", "ray"], help="local process pool (default) or Ray")
    p.add_argument("--ray-address", dest="ray_address", default=None, help="running Ray cluster; default: start a local one")
    p.add_argument("--retries", type=int, default=2, help="retries of an item after a transient error (default 2)")
    p.add_argument("--retry-delay", dest="retry_delay", type=float, default=2.0, help="first retry delay, seconds (doubles)")
    p.add_argument("--notebook", default=None, help="run this stage notebook per item with papermill (kept in the item folder)")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("demo", help="run the main job on the bundled offline sample")
    p.add_argument("--url", default="", help="run on this URL instead of the bundled sample")
    add_run_flags(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("validate", help="check WebVTT files against W3C syntax and caption readability rules")
    p.add_argument("files", nargs="+")
    p.add_argument("--strict", action="store_true", help="exit 1 on readability violations too")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("download", help="download audio (and metadata) for URLs, playlists or feeds into the cache")
    p.add_argument("source", nargs="+")
    p.add_argument("--out", "--cache", dest="cache", default=None, help="cache directory (default: ~/.cache/vidtrans/media)")
    p.add_argument("--cookies", default=None, help="cookies.txt for private or age-restricted videos")
    p.add_argument("--limit", type=int, default=None, help="at most N entries per playlist/feed")
    p.add_argument("--workers", type=int, default=None, help="parallel downloads (default 3)")
    p.add_argument("--info", action="store_true", help="list entries and metadata without downloading")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("diarize", help="who spoke when: write <out>/<stem>.rttm")
    p.add_argument("audio", nargs="+")
    p.add_argument("--out", default="out")
    _add_diarize_flags(p)
    p.set_defaults(func=cmd_diarize)

    p = sub.add_parser("live", help="live captions from a microphone (mic[:DEVICE]), a stream URL or a file")
    p.add_argument("source", help="mic, mic:DEVICE, a live URL (HLS/RTMP/RTSP/HTTP...) or a media file")
    p.add_argument("--out", default="live.vtt", help="WebVTT file, appended cue by cue (default live.vtt)")
    p.add_argument("--events", default=None, help="JSON-lines log, one line per committed word")
    p.add_argument("--realtime", action="store_true", help="read a file (or a non-live URL) at real-time pace")
    p.add_argument("--model", default="tiny.en", help="Whisper model (default tiny.en: fastest offline; base for other languages)")
    p.add_argument("--fallback-model", dest="fallback_model", default="auto",
                   help="smaller model when decoding cannot keep up (auto = tiny.en for English; none = never)")
    p.add_argument("--language", default=None, help="spoken language; default: en for .en models, else detected")
    p.add_argument("--beam-size", dest="beam_size", type=int, default=1, help="beam width (default 1: greedy)")
    p.add_argument("--step", type=float, default=1.0,
                   help="seconds of new audio between decodes: the first step, or every step with --fixed-step (default 1.0)")
    p.add_argument("--fixed-step", dest="adaptive_step", action="store_false",
                   help="live sources: keep --step (grown only when decoding falls behind) instead of a step that "
                        "follows the decode time")
    p.add_argument("--min-step", dest="min_step", type=float, default=1.0, help="shortest adaptive step (default 1.0; shorter steps cost WER)")
    p.add_argument("--full-context", dest="short_context", action="store_false",
                   help="pad Whisper's encoder input to 30 s as trained (slower) instead of sizing it to the buffer")
    p.add_argument("--max-step", dest="max_step", type=float, default=3.0, help="longest step the self-monitor may use")
    p.add_argument("--max-pending", dest="max_pending", type=float, default=3.0,
                   help="commit a pending word once it ends this many seconds before the newest audio, "
                        "even without two agreeing decodes (default 3.0; 0 = wait for agreement)")
    p.add_argument("--stall-timeout", dest="stall_timeout", type=float, default=10.0,
                   help="end when a live source sends nothing for this long (s)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compute-type", dest="compute_type", default="default")
    p.add_argument("--threads", dest="cpu_threads", type=int, default=0, help="CPU threads for decoding; 0 = all")
    p.add_argument("--no-speakers", dest="speakers", action="store_false", help="do not label speakers")
    p.add_argument("--speaker-threshold", dest="speaker_threshold", type=float, default=None,
                   help="cosine similarity to match a known voice (default: LiveOptions.speaker_threshold)")
    p.add_argument("--speaker-labels", dest="speaker_labels", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--enroll", action="append", default=[], metavar="NAME=CLIP", help="name a voice from a reference clip")
    p.set_defaults(func=cmd_live)
    p = sub.add_parser("emotion", help="train / apply the acoustic speech-emotion model")
    esub = p.add_subparsers(dest="emotion_command", required=True)
    e = esub.add_parser("train", help="train on a labelled folder; prints leave-one-speaker-out accuracy")
    e.add_argument("folder")
    e.add_argument("--labels", default=None, help="CSV with file,emotion[,speaker] columns (default: DIR/labels.csv or file names)")
    e.add_argument("--label-column", dest="label_column", default="emotion")
    e.add_argument("--speaker-column", dest="speaker_column", default="speaker")
    e.add_argument("--out", required=True, help="model file to write (.npz)")
    e.add_argument("--C", dest="C", type=float, default=0.1, help="inverse regularisation of the classifier (default 0.1)")
    e.add_argument("--trained-on", dest="trained_on", default="", help="what the data is (stored in the model)")
    e.add_argument("--no-validate", dest="no_validate", action="store_true", help="skip leave-one-speaker-out validation")
    e.set_defaults(func=cmd_emotion)
    e = esub.add_parser("predict", help="label audio files with a trained model")
    e.add_argument("files", nargs="+")
    e.add_argument("--model", required=True)
    e.add_argument("--json", default=None, help="write [{file, label, scores}] here")
    e.add_argument("--speakers", choices=["none", "name", "same"], default="none",
                   help="per-speaker standardisation: none, speaker from EmoDB/RAVDESS/CREMA-D file names, or all files one speaker")
    e.set_defaults(func=cmd_emotion)

    p = sub.add_parser("doctor", help="check ffmpeg, packages, GPU, offline models and which secrets are set")
    p.add_argument("--prepare", action="store_true", help="also assemble the offline base model and convert the diarization models to ONNX now")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("auth", help="authorise vidtrans with a service (youtube)")
    p.add_argument("service", choices=["youtube"])
    p.add_argument("--client-secrets", dest="client_secrets", required=True,
                   help="client_secret.json of a Desktop-app OAuth client (Google Cloud console)")
    p.add_argument("--console", action="store_true",
                   help="paste-back flow: print the URL, paste the address the browser ends on (Colab, SSH)")
    p.add_argument("--no-browser", dest="no_browser", action="store_true", help="print the URL instead of opening a browser")
    p.set_defaults(func=cmd_auth)

    def add_upload_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default="vidtrans", help="track name shown next to the language (default vidtrans)")
        p.add_argument("--draft", action="store_true", help="publish as draft (not visible to viewers)")
        p.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the plan and its quota cost; send nothing")
        p.add_argument("--quota-budget", dest="quota_budget", type=int, default=10_000,
                       help="YouTube quota units that may be spent per Pacific day (default 10000)")

    p = sub.add_parser("upload", help="publish caption files to YouTube (insert, update or leave unchanged)")
    p.add_argument("target", nargs="*", metavar="VIDEO CAPTION_FILE", help="video id or URL, then a .vtt/.srt file")
    p.add_argument("--language", default=None, help="BCP-47 language of the captions (en, de, pt-BR)")
    p.add_argument("--from", dest="from_dir", default=None, metavar="OUT_DIR",
                   help="publish a `vidtrans run` output directory (video ids from its JSON media metadata)")
    p.add_argument("--translate", nargs="+", default=[], metavar="LANG",
                   help="with --from: also publish translated tracks (en: Whisper offline; others: Gemini)")
    p.add_argument("--translate-engine", dest="translate_engine", default="auto", choices=["auto", "whisper", "gemini"])
    p.add_argument("--list", default=None, metavar="VIDEO", help="list the video's caption tracks (asr included)")
    p.add_argument("--download", default=None, metavar="TRACK_ID", help="download a track")
    p.add_argument("--format", default="vtt", choices=["vtt", "srt"], help="format for --download")
    p.add_argument("--output", "-o", default=None, help="file for --download (default: stdout)")
    p.add_argument("--delete", default=None, metavar="TRACK_ID", help="delete a track")
    p.add_argument("--compare-asr", dest="compare_asr", action="store_true",
                   help="with VIDEO CAPTION_FILE: word difference against YouTube's automatic captions (250 units)")
    add_upload_flags(p)
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("models", help="list the Whisper models available offline")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    from .secrets import install_secret_filter

    install_secret_filter()  # mask any known key value that reaches a log line
    try:
        return int(args.func(args) or 0)
    except VidtransError as exc:
        if args.debug:
            raise
        print(f"vidtrans: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("vidtrans: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
