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


_SRT_LABEL = re.compile(r"^([A-Z][A-Z0-9 _.'-]{0,40}):\s+(.*)$")


def read_captions(path: str | os.PathLike, *, format: str | None = None, srt_labels: bool = True) -> Transcript:
    """Read a WebVTT or SRT file (via webvtt-py) into a Transcript, one segment per cue.

    *format* is "vtt" or "srt" (default: from the extension, else sniffed).
    WebVTT voice spans and, with *srt_labels*, upper-case SRT ``NAME: ``
    prefixes become segment speakers (an SRT label holds until the next one).
    Segments carry no words; build cues from them and timing is spread over
    the text.
    """
    try:
        import webvtt
        from webvtt.errors import MalformedCaptionError, MalformedFileError
    except ImportError as exc:
        raise MissingDependencyError("webvtt-py", purpose="reading captions") from exc
    p = Path(path)
    if not p.is_file():
        raise CaptionFileError(f"caption file not found: {p}")
    fmt = (format or p.suffix.lstrip(".")).lower()
    if fmt not in ("vtt", "srt"):
        head = p.read_bytes()[:16].lstrip(b"\xef\xbb\xbf")
        fmt = "vtt" if head.startswith(b"WEBVTT") else "srt"
    try:
        doc = webvtt.read(str(p)) if fmt == "vtt" else webvtt.from_srt(str(p))
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise CaptionFileError(f"{p} is not a valid {fmt.upper()} file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise CaptionFileError(f"{p} is not UTF-8 text: {exc}") from exc
    segments = []
    current: str | None = None
    for cap in doc.captions:
        lines = [html.unescape(line).strip() for line in cap.text.split("\n")]
        lines = [line for line in lines if line]
        speaker = cap.voice if fmt == "vtt" else None
        if fmt == "srt" and srt_labels and lines:
            m = _SRT_LABEL.match(lines[0])
            if m:
                current, lines[0] = m.group(1).strip(), m.group(2)
            speaker = current
        if speaker is not None:
            speaker = html.unescape(speaker)
        start = cap.start_time.in_milliseconds() / 1000
        end = cap.end_time.in_milliseconds() / 1000
        segments.append(Segment(start, end, _join(lines), speaker=speaker))
    duration = max((s.end for s in segments), default=None)
    return Transcript(
        segments=tuple(segments), engine="captions", source=str(p), duration=duration, meta={"format": fmt}
    )


# --------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in a WebVTT file."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.rule}] {self.message}"


#: W3C-level rule -> what it checks
VTT_RULES: dict[str, str] = {
    "encoding": "the file is UTF-8",
    "header": "the first line is WEBVTT, optionally followed by a space or tab and text",
    "blank_line": "a blank line separates the header and every block; no blank line inside a cue",
    "timing_line": "a cue timing line is 'start --> end [settings]'",
    "timestamp": "timestamps are hh:mm:ss.ttt or mm:ss.ttt",
    "end_before_start": "a cue ends after it starts",
    "cue_order": "cues are in order of start time",
    "overlap": "a cue starts after the previous one ends",
    "unescaped_ampersand": "& in cue text starts a character reference (&amp;)",
    "unescaped_lt": "< in cue text starts a cue tag (else &lt;)",
    "arrow_in_text": "cue text and comments do not contain -->",
    "empty_cue": "a cue has text",
}

_VTT_TS = re.compile(r"^(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})$")
_TIMING = re.compile(r"^(\S+)([ \t]+)-->([ \t]+)(\S+)(?:[ \t]+(.*))?$")
_CHAR_REF = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_CUE_TAG = re.compile(
    r"<(?:/?(?:c|i|b|u|ruby|rt|v|lang)(?:\.[^\s.>&<]+)*(?:[ \t][^>]*)?|/?(?:c|i|b|u|ruby|rt|v|lang)"
    r"|(?:\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3})>"
)
_TAG_ANY = re.compile(r"<[^>]*>")


def _vtt_seconds(ts: str) -> float | None:
    m = _VTT_TS.match(ts)
    if not m:
        return None
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(ms) / 1000


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


def _load_text(path_or_text: str | bytes | os.PathLike) -> tuple[str | None, list[ValidationIssue]]:
    if isinstance(path_or_text, os.PathLike) or (
        isinstance(path_or_text, str) and "\n" not in path_or_text and not path_or_text.startswith("WEBVTT")
    ):
        p = Path(path_or_text)
        if not p.is_file():
            raise CaptionFileError(f"caption file not found: {p}")
        data = p.read_bytes()
    elif isinstance(path_or_text, bytes):
        data = path_or_text
    elif isinstance(path_or_text, str):
        return path_or_text.removeprefix("\ufeff"), []
    else:
        raise TypeError(f"validate_vtt takes a path, str or bytes, not {type(path_or_text).__name__}")
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [ValidationIssue(line, "encoding", f"not UTF-8 (byte {exc.start}: {exc.reason})")]


def _check_cue_text(line: str, no: int, errors: list[ValidationIssue]) -> None:
    for m in re.finditer("&", line):
        if not _CHAR_REF.match(line, m.start()):
            errors.append(ValidationIssue(no, "unescaped_ampersand", f"'&' at column {m.start() + 1} must be '&amp;'"))
    for m in re.finditer("<", line):
        if not _CUE_TAG.match(line, m.start()):
            errors.append(
                ValidationIssue(no, "unescaped_lt", f"'<' at column {m.start() + 1} is not a cue tag; write '&lt;'")
            )
    if "-->" in line:
        errors.append(ValidationIssue(no, "arrow_in_text", "cue text contains '-->' (a missing blank line?)"))


def validate_vtt(path_or_text: str | bytes | os.PathLike, options: CaptionOptions | None = None) -> ValidationReport:
    """Validate a WebVTT file (path) or text: W3C-level errors with line numbers plus readability.

    A ``str`` that starts with ``WEBVTT`` or contains a newline is taken as
    the file's text, otherwise as a path.  Works on files webvtt-py cannot
    parse: the text is read line by line here.
    """
    o = (options or CaptionOptions()).validate()
    text, errors = _load_text(path_or_text)
    warnings: list[ValidationIssue] = []
    if text is None:
        return ValidationReport(tuple(errors), (), _stats([], o))
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()

    # header
    first = lines[0] if lines else ""
    if not (first == "WEBVTT" or (first.startswith("WEBVTT") and first[6] in " \t")):
        msg = "file is empty" if not lines else f"first line must be 'WEBVTT', found {first[:30]!r}"
        errors.append(ValidationIssue(1, "header", msg))

    # blocks: (first line number, lines); the header block is lines up to the first blank line
    blocks: list[tuple[int, list[str]]] = []
    cur: list[str] = []
    cur_start = 1
    for no, line in enumerate(lines, start=1):
        if line == "":
            if cur:
                blocks.append((cur_start, cur))
                cur = []
            continue
        if not cur:
            cur_start = no
        cur.append(line)
    if cur:
        blocks.append((cur_start, cur))
    if not lines:
        return ValidationReport(tuple(errors), (), _stats([], o))

    items: list[tuple[float, float, tuple[str, ...], int]] = []
    header = blocks[0] if blocks and blocks[0][0] == 1 else None
    if header is not None:
        for off, line in enumerate(header[1][1:], start=1):
            if "-->" in line:
                errors.append(
                    ValidationIssue(1 + off, "blank_line", "a cue starts inside the header: add a blank line after the header")
                )
                break
    prev_start: float | None = None
    prev_end: float | None = None
    seen_cue = False
    prev_was_cue = False
    for start_no, block in blocks:
        if header is not None and start_no == 1:
            continue
        head = block[0]
        if head.startswith("NOTE") and (len(head) == 4 or head[4] in " \t"):
            for off, line in enumerate(block):
                if "-->" in line:
                    errors.append(ValidationIssue(start_no + off, "arrow_in_text", "a comment cannot contain '-->'"))
            prev_was_cue = False
            continue
        if head in ("STYLE", "REGION") or (head.startswith(("STYLE", "REGION")) and head.split()[0] in ("STYLE", "REGION")):
            if seen_cue:
                errors.append(ValidationIssue(start_no, "blank_line", f"{head.split()[0]} block after the first cue"))
            prev_was_cue = False
            continue
        # find the timing line: first or second line
        t_idx = 0 if "-->" in block[0] else (1 if len(block) > 1 and "-->" in block[1] else None)
        if t_idx is None:
            if prev_was_cue:
                errors.append(
                    ValidationIssue(start_no, "blank_line", "blank line inside cue text (text after it is dropped)")
                )
            else:
                errors.append(ValidationIssue(start_no, "timing_line", f"block without a cue timing line: {head[:40]!r}"))
            continue
        seen_cue = True
        prev_was_cue = True
        tno = start_no + t_idx
        timing = block[t_idx]
        payload = block[t_idx + 1 :]
        # a second timing line inside the block means a blank line is missing
        for off, line in enumerate(payload, start=t_idx + 1):
            if "-->" in line and _TIMING.match(line.strip()):
                errors.append(ValidationIssue(start_no + off, "blank_line", "missing blank line before this cue"))
                payload = block[t_idx + 1 : off]
                break
        for off, line in enumerate(payload, start=t_idx + 1):
            _check_cue_text(line, start_no + off, errors)
        m = _TIMING.match(timing)
        if not m:
            errors.append(
                ValidationIssue(tno, "timing_line", f"expected 'start --> end' with spaces around '-->', got {timing!r}")
            )
            continue
        s_txt, e_txt = m.group(1), m.group(4)
        start, end = _vtt_seconds(s_txt), _vtt_seconds(e_txt)
        bad_ts = False
        for ts, val in ((s_txt, start), (e_txt, end)):
            if val is None:
                hint = " (SRT uses ',' before milliseconds; WebVTT uses '.')" if "," in ts else ""
                errors.append(ValidationIssue(tno, "timestamp", f"invalid timestamp {ts!r}; use hh:mm:ss.ttt or mm:ss.ttt{hint}"))
                bad_ts = True
        if bad_ts:
            continue
        assert start is not None and end is not None
        if end <= start:
            errors.append(ValidationIssue(tno, "end_before_start", f"cue ends ({e_txt}) at or before its start ({s_txt})"))
        if prev_start is not None and start < prev_start:
            errors.append(ValidationIssue(tno, "cue_order", f"cue starts ({s_txt}) before the previous cue's start"))
        elif prev_end is not None and start < prev_end - 1e-9:
            errors.append(ValidationIssue(tno, "overlap", f"cue starts ({s_txt}) before the previous cue ends"))
        if not any(line.strip() for line in payload):
            warnings.append(ValidationIssue(tno, "empty_cue", "cue has no text"))
        prev_start = start if prev_start is None else max(prev_start, start)
        prev_end = end if prev_end is None else max(prev_end, end)
        shown = tuple(
            t for t in (html.unescape(_TAG_ANY.sub("", line)).strip() for line in payload) if t
        )
        items.append((start, end, shown, tno))
    return ValidationReport(tuple(errors), tuple(warnings), _stats(items, o))


