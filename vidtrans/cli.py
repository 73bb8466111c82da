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
    )


_CAPTION_FLAGS = ("max_chars_per_line", "max_lines", "max_cps", "min_duration", "max_duration", "pause_threshold", "speaker_labels")


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
    return 1 if failures else 0


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
        p.add_argument("--cookies", default=None, help="cookies.txt for private or age-restricted videos")
        _add_diarize_flags(p)

    p = sub.add_parser("run", help="URL(s) or file(s) -> captions (download, transcribe, diarize, write)")
    p.add_argument("source", nargs="+", help="media file, yt-dlp URL (video, playlist entry) or file:// URL")
    add_run_flags(p)
    p.set_defaults(func=cmd_run)

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

    p = sub.add_parser("doctor", help="check ffmpeg, packages, GPU, offline models and which secrets are set")
    p.add_argument("--prepare", action="store_true", help="also assemble the offline base model now")
    p.set_defaults(func=cmd_doctor)

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
