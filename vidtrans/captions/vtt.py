"""Reading WebVTT/SRT files into a Transcript, and validating WebVTT files."""

from __future__ import annotations

import html
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError
from ..schema import Segment, Transcript
from .options import CaptionFileError, CaptionOptions, _join
from .readability import CueStats, ReadabilityReport, _stats
from .vttparse import parse_vtt


_SRT_LABEL = re.compile(r"^([A-Z][A-Z0-9 _.'-]{0,40}):\s+(.*)$")


_V_TAG = re.compile(r"<v(?:\.[^\s>]*)?[ \t\f]+([^>]*)>")
_TAG = re.compile(r"<[^>]*>")
_DASH = re.compile(r"^[-\u2010\u2013\u2014]\s+")


def _voice_runs(text: str) -> list[tuple[str | None, list[str]]]:
    """Cue text -> [(voice or None, displayed lines)], one run per voice span."""
    runs: list[tuple[str | None, list[str]]] = []
    voice: str | None = None
    buf: list[str] = []

    def flush() -> None:
        raw = "".join(buf)
        lines = [html.unescape(line).strip() for line in raw.split("\n")]
        lines = [line for line in lines if line]
        if lines:
            runs.append((voice, lines))
        buf.clear()

    pos = 0
    for m in _TAG.finditer(text):
        buf.append(text[pos:m.start()])
        pos = m.end()
        vm = _V_TAG.match(m.group(0))
        if vm:
            flush()
            voice = html.unescape(vm.group(1).strip()) or None
        elif m.group(0).startswith("</v"):
            flush()
            voice = None
    buf.append(text[pos:])
    flush()
    if len(runs) > 1:  # dialogue: "- " marks each speaker's line
        runs = [(v, [_DASH.sub("", line, count=1) if k == 0 else line for k, line in enumerate(ls)]) for v, ls in runs]
    return runs


def read_captions(path: str | os.PathLike, *, format: str | None = None, srt_labels: bool = True) -> Transcript:
    """Read a WebVTT or SRT file into a Transcript, one segment per cue (per speaker of a dialogue cue).

    *format* is "vtt" or "srt" (default: from the extension, else sniffed).  WebVTT is read with
    :func:`parse_vtt`, the W3C parser algorithm, so the cues are those a browser shows (a file
    browsers reject raises :class:`CaptionFileError`); SRT through webvtt-py.  WebVTT voice spans
    and, with *srt_labels*, upper-case SRT ``NAME: `` prefixes become segment speakers (an SRT label
    holds until the next one); a cue with two voice spans (a dialogue) becomes two segments that
    share its time in proportion to their text.  Segments carry no words; build cues from them
    and timing is spread over the text.
    """
    p = Path(path)
    if not p.is_file():
        raise CaptionFileError(f"caption file not found: {p}")
    fmt = (format or p.suffix.lstrip(".")).lower()
    if fmt not in ("vtt", "srt"):
        head = p.read_bytes()[:16].lstrip(b"\xef\xbb\xbf")
        fmt = "vtt" if head.startswith(b"WEBVTT") else "srt"
    segments: list[Segment] = []
    if fmt == "vtt":
        doc = parse_vtt(p, diagnostics=True)
        if not doc.accepted:
            why = next((d.message for d in doc.diagnostics if d.rule == "header"), "bad signature")
            raise CaptionFileError(f"{p} is not a valid VTT file: {why}")
        for cue in doc.cues:
            runs = _voice_runs(cue.text)
            total = sum(len(_join(ls)) for _, ls in runs) or 1
            t = cue.start
            for voice, lines in runs:
                d = (cue.end - cue.start) * len(_join(lines)) / total if len(runs) > 1 else cue.end - cue.start
                segments.append(Segment(round(t, 3), round(t + d, 3), _join(lines), speaker=voice))
                t += d
    else:
        segments = _read_srt(p, srt_labels)
    duration = max((s.end for s in segments), default=None)
    return Transcript(
        segments=tuple(segments), engine="captions", source=str(p), duration=duration, meta={"format": fmt}
    )


def _read_srt(p: Path, srt_labels: bool) -> list[Segment]:
    try:
        import webvtt
        from webvtt.errors import MalformedCaptionError, MalformedFileError
    except ImportError as exc:
        raise MissingDependencyError("webvtt-py", purpose="reading SRT captions") from exc
    try:
        doc = webvtt.from_srt(str(p))
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise CaptionFileError(f"{p} is not a valid SRT file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise CaptionFileError(f"{p} is not UTF-8 text: {exc}") from exc
    segments = []
    current: str | None = None
    for cap in doc.captions:
        lines = [html.unescape(line).strip() for line in cap.text.split("\n")]
        lines = [line for line in lines if line]
        speaker = None
        if srt_labels and lines:
            m = _SRT_LABEL.match(lines[0])
            if m:
                current, lines[0] = m.group(1).strip(), m.group(2)
            speaker = current
        start = cap.start_time.in_milliseconds() / 1000
        end = cap.end_time.in_milliseconds() / 1000
        segments.append(Segment(start, end, _join(lines), speaker=speaker))
    return segments


# --------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in a WebVTT file."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.rule}] {self.message}"


#: WebVTT rule -> what it checks (errors: what browsers drop, ignore or reject; warnings: legal for
#: browsers but against the authoring syntax or questionable)
VTT_RULES: dict[str, str] = {
    "encoding": "the file is UTF-8",
    "header": "the first line is WEBVTT, optionally followed by a space or tab and text",
    "blank_line": "a blank line separates the header and every block; no blank line inside a cue",
    "timing_line": "a cue timing line is 'start --> end [settings]' in the first two lines of a block",
    "timestamp": "timestamps are [hh:]mm:ss.ttt (two-digit minutes and seconds up to 59, three-digit fraction)",
    "end_before_start": "a cue ends after it starts",
    "cue_order": "cues are in order of start time",
    "cue_setting": "cue settings are valid vertical/line/position/size/align/region settings, each once",
    "region_setting": "REGION blocks hold valid id/width/lines/regionanchor/viewportanchor/scroll settings",
    "style_block": "STYLE blocks come before the first cue",
    "region_block": "REGION blocks come before the first cue",
    "nul": "no NUL characters",
    "unescaped_ampersand": "& in cue text starts a character reference (&amp;)",
    "unescaped_lt": "< in cue text starts a cue tag (else &lt;)",
    "arrow_in_text": "cue text and comments do not contain -->",
    "empty_cue": "a cue has text",
}

@dataclass(frozen=True)
class ValidationReport:
    """Result of :func:`validate_vtt`: W3C-level errors/warnings and readability."""

    errors: tuple[ValidationIssue, ...]
    warnings: tuple[ValidationIssue, ...]
    readability: ReadabilityReport

    @property
    def ok(self) -> bool:
        """No W3C-level errors (readability violations do not make a file invalid)."""
        return not self.errors

    @property
    def violations(self) -> list[tuple[CueStats, str]]:
        """Readability violations (cue, rule)."""
        return self.readability.violations

    @property
    def error_summary(self) -> dict[str, int]:
        return dict(Counter(e.rule for e in self.errors))

    @property
    def summary(self) -> dict[str, dict[str, int]]:
        """{"errors": rule -> count, "warnings": rule -> count, "readability": rule -> count}."""
        return {
            "errors": self.error_summary,
            "warnings": dict(Counter(w.rule for w in self.warnings)),
            "readability": self.readability.summary,
        }

    def format(self) -> str:
        out = [str(e) for e in self.errors] + [f"warning: {w}" for w in self.warnings]
        out.append(
            f"{'valid' if self.ok else 'INVALID'} WebVTT: {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings; {self.readability.format()}"
        )
        return "\n".join(out)


def validate_vtt(path_or_text: str | bytes | os.PathLike, options: CaptionOptions | None = None) -> ValidationReport:
    """Validate a WebVTT file (path, bytes or text) the way browsers read it, plus readability.

    Errors are what browsers reject (the signature), drop (cues whose timing line does not parse,
    blocks without one, STYLE/REGION blocks after a cue, text hidden by a stray ``<``) or ignore
    (invalid cue and region settings); warnings are legal for browsers but off the authoring
    syntax or questionable (no blank line after the header, missing spaces around ``-->``, a
    timing line that starts with whitespace, one-digit hours, an unescaped ``&``, empty cues,
    cues out of order, settings given twice).  Overlapping or simultaneous cues are legal WebVTT
    and not reported here; the readability report (per cue, with line numbers) does that.  A
    ``str`` that starts with ``WEBVTT`` or holds a line break is the file's text, else a path.
    """
    o = (options or CaptionOptions()).validate()
    if isinstance(path_or_text, str) and not ("\n" in path_or_text or path_or_text.lstrip("\ufeff").startswith("WEBVTT")):
        path_or_text = Path(path_or_text)
    doc = parse_vtt(path_or_text, diagnostics=True)
    errors = [ValidationIssue(d.line, d.rule, d.message) for d in doc.diagnostics if d.severity == "error"]
    warnings = [ValidationIssue(d.line, d.rule, d.message) for d in doc.diagnostics if d.severity != "error"]
    cues = doc.cues
    items = []
    prev_start: float | None = None
    for cue in cues:
        if cue.end <= cue.start:
            errors.append(ValidationIssue(
                cue.line_number, "end_before_start",
                f"cue ends ({cue.end:.3f}s) at or before its start ({cue.start:.3f}s): browsers never show it",
            ))
        if prev_start is not None and cue.start < prev_start:
            warnings.append(ValidationIssue(
                cue.line_number, "cue_order", f"cue starts ({cue.start:.3f}s) before the previous cue's start"
            ))
        prev_start = cue.start if prev_start is None else max(prev_start, cue.start)
        shown = tuple(line for _, ls in _voice_runs(cue.text) for line in ls)
        if len(_voice_runs(cue.text)) > 1:  # keep the dialogue dashes for reading speed
            shown = tuple(line for line in (html.unescape(_TAG.sub("", x)).strip() for x in cue.text.split("\n")) if line)
        items.append((cue.start, cue.end, shown, cue.line_number))
    key = lambda i: (i.line, i.rule)  # noqa: E731
    return ValidationReport(tuple(sorted(errors, key=key)), tuple(sorted(warnings, key=key)), _stats(items, o))
