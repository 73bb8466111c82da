"""The W3C WebVTT parser algorithm (https://w3c.github.io/webvtt/#file-parsing): what browsers read.

:func:`parse_vtt` follows the specification step by step, so a file gives the same cues, cue
settings, regions and style sheets as ``track.cues`` in a browser (checked against the
web-platform-tests WebVTT file-parsing suite in ``tests/data/wpt_webvtt``):

* the signature must be ``WEBVTT`` followed by a space, tab, line break or nothing (``WEBVTTX``
  rejects the whole file); a byte-order mark is skipped; the text is decoded as UTF-8 with
  replacement characters; NUL becomes U+FFFD; CR, LF and CRLF all end a line;
* timestamps are ``[h*:]mm:ss.ttt``: minutes and seconds exactly two digits (at most 59), exactly
  three fraction digits, hours any number of digits when present;
* only space, tab, LF, CR and form feed are whitespace (a vertical tab is not);
* a block is a cue when its first or second line holds ``-->`` and parses as cue timings; STYLE and
  REGION blocks count only before the first cue; every other block is dropped; a ``-->`` line later
  in a cue ends the cue there;
* invalid cue and region settings are ignored one by one (the cue is kept).

With ``diagnostics=True`` the parser also records, with line numbers, everything a browser drops,
ignores or repairs; :func:`vidtrans.captions.validate_vtt` turns those records into errors and
warnings.  webvtt-py (used for writing and for SRT) gets several of these rules wrong (it accepts
one-digit minutes, short fractions, NUL, vertical tabs, ``WEBVTTX``), hence this module.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .options import CaptionFileError

#: ASCII whitespace as WebVTT (HTML) defines it: no vertical tab
WS = " \t\n\r\f"
_WS_RUN = re.compile(f"[{re.escape(WS)}]+")
_PERCENT = re.compile(r"^\d+(?:\.\d+)?%$")
_BLOCK_KEYWORD = re.compile(r"^(STYLE|REGION)[ \t\n\r\f]*$")


@dataclass(frozen=True)
class VTTRegion:
    """A WebVTT region (what ``VTTRegion`` exposes in a browser)."""

    id: str = ""
    width: float = 100.0
    lines: int = 3
    region_anchor: tuple[float, float] = (0.0, 100.0)
    viewport_anchor: tuple[float, float] = (0.0, 100.0)
    #: "" or "up"
    scroll: str = ""
    #: 1-based line of the REGION keyword
    line_number: int = 0


@dataclass(frozen=True)
class VTTCue:
    """One parsed cue, with the browser's ``VTTCue`` attributes."""

    id: str
    start: float
    end: float
    #: cue text as written (tags and character references unparsed), lines joined by LF
    text: str
    region: VTTRegion | None = None
    #: "", "rl" or "lr"
    vertical: str = ""
    snap_to_lines: bool = True
    #: a number (lines or percent) or "auto"
    line: float | str = "auto"
    line_align: str = "start"
    #: percent or "auto"
    position: float | str = "auto"
    position_align: str = "auto"
    size: float = 100.0
    align: str = "center"
    #: 1-based line number of the timing line
    line_number: int = 0


@dataclass(frozen=True)
class Diagnostic:
    """Something a browser drops, ignores or repairs (severity "error") or that is legal but off-spec
    for authors ("warning")."""

    line: int
    severity: str
    rule: str
    message: str


@dataclass(frozen=True)
class VTTDocument:
    """What a browser reads from a WebVTT file."""

    cues: tuple[VTTCue, ...]
    regions: tuple[VTTRegion, ...] = ()
    #: CSS text of the STYLE blocks
    stylesheets: tuple[str, ...] = ()
    #: the signature line and header block
    header: str = ""
    #: False when browsers reject the file (bad signature): they then fire an error and show nothing
    #: (``cues`` is then empty, except with ``diagnostics``: see :func:`parse_vtt`)
    accepted: bool = True
    diagnostics: tuple[Diagnostic, ...] = field(default=(), compare=False)


def css_rules(stylesheet: str) -> list[str]:
    """Selectors of the top-level rules of a STYLE block (comments removed), in order."""
    css = re.sub(r"/\*.*?(?:\*/|$)", " ", stylesheet, flags=re.S)
    out, depth, start = [], 0, 0
    for i, ch in enumerate(css):
        if ch == "{":
            if depth == 0:
                out.append(" ".join(css[start:i].split()))
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                start = i + 1
    return out


def _percentage(value: str) -> float | None:
    if not _PERCENT.match(value):
        return None
    p = float(value[:-1])
    return p if 0 <= p <= 100 else None


def decode(data: bytes) -> tuple[str, int | None]:
    """UTF-8 with replacement characters (as browsers decode text tracks); BOM removed.

    Returns the text and the line of the first undecodable byte (None when all is UTF-8).
    """
    bad_line = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
        text = data.decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff"), bad_line


class _Parser:
    def __init__(self, text: str, diagnostics: bool):
        self.diag: list[Diagnostic] = []
        self.want = diagnostics
        if "\0" in text and diagnostics:
            norm = text.replace("\r\n", "\n").replace("\r", "\n")
            for m in re.finditer("\0", norm):
                self.note(norm.count("\n", 0, m.start()) + 1, "warning", "nul",
                          "NUL character: browsers show U+FFFD (\ufffd) instead")
                break
        self.s = text.replace("\0", "\ufffd").replace("\r\n", "\n").replace("\r", "\n")
        self.nl = [m.start() for m in re.finditer("\n", self.s)]
        self.pos = 0
        self.seen_cue = False
        self.regions: list[VTTRegion] = []
        self.cues: list[VTTCue] = []
        self.sheets: list[str] = []
        self.last_block_was_cue = False

    # -- helpers --------------------------------------------------------------------------------
    def line_of(self, pos: int) -> int:
        return bisect.bisect_left(self.nl, pos) + 1

    def note(self, line: int, severity: str, rule: str, message: str) -> None:
        if self.want:
            self.diag.append(Diagnostic(line, severity, rule, message))

    # -- the algorithm --------------------------------------------------------------------------
    def parse(self) -> VTTDocument:
        s = self.s
        accepted = len(s) >= 6 and s.startswith("WEBVTT") and (len(s) == 6 or s[6] in " \t\n")
        if not accepted:
            first = s.split("\n", 1)[0]
            msg = "file is empty" if not s.strip() else (
                f"first line must be 'WEBVTT' (optionally followed by a space or tab and text), found {first[:30]!r}"
            )
            self.note(1, "error", "header", msg + ": browsers reject the whole file")
            if not self.want:
                return VTTDocument((), accepted=False)
            if not s.startswith("WEBVTT"):
                # diagnose the rest as if the signature were right, so every other problem is listed
                s = self.s = "WEBVTT\n" + s
                self.nl = [m.start() for m in re.finditer("\n", s)]
                self._offset = 1
        header_end = s.find("\n")
        if header_end == -1:
            return self._doc(s, accepted)
        self.pos = header_end + 1
        header = s[:header_end]
        if self.pos < len(s):
            if s[self.pos] != "\n":
                self.collect_block(in_header=True)
                header = s[:self.pos].rstrip("\n")
            else:
                self.pos += 1
        self.skip_newlines()
        self.regions = []
        while self.pos < len(s):
            self.collect_block(in_header=False)
            self.skip_newlines()
        return self._doc(header, accepted)

    def _doc(self, header: str, accepted: bool) -> VTTDocument:
        off = getattr(self, "_offset", 0)
        diag = self.diag
        if off:
            diag = [d if d.rule == "header" else Diagnostic(d.line - off, d.severity, d.rule, d.message) for d in diag]
            cues = [_shift(c, off) for c in self.cues]
        else:
            cues = self.cues
        # a rejected file has no cues in a browser; with diagnostics it keeps those it would have
        # with a right signature, so the rest of it can be checked too
        keep = accepted or self.want
        return VTTDocument(
            tuple(cues) if keep else (),
            tuple(self.regions) if keep else (),
            tuple(self.sheets) if keep else (),
            header,
            accepted,
            tuple(sorted(diag, key=lambda d: d.line)),
        )

    def skip_newlines(self) -> None:
        while self.pos < len(self.s) and self.s[self.pos] == "\n":
            self.pos += 1

    def collect_block(self, in_header: bool) -> None:
        s = self.s
        n = len(s)
        line_count = 0
        previous = self.pos
        buffer = ""
        seen_eof = seen_arrow = False
        cue: VTTCue | None = None
        sheet = region = False
        region_line = 0
        first_line_no = self.line_of(self.pos)
        first_line = ""
        failed_timing: tuple[int, str] | None = None
        while True:
            end = s.find("\n", self.pos)
            end = n if end == -1 else end
            line, line_no = s[self.pos:end], self.line_of(self.pos)
            line_count += 1
            if line_count == 1:
                first_line = line
            if end >= n:
                seen_eof, self.pos = True, n
            else:
                self.pos = end + 1
            if "-->" in line:
                if not in_header and (line_count == 1 or (line_count == 2 and not seen_arrow)):
                    seen_arrow = True
                    previous = self.pos
                    comment = _is_note(first_line)
                    want, self.want = self.want, self.want and not comment
                    parsed = self.cue_timings(line, line_no, buffer)
                    self.want = want
                    if parsed is None:
                        cue, failed_timing = None, (line_no, line)
                    else:
                        cue, buffer = parsed, ""
                        self.seen_cue = True
                else:
                    self.pos = previous
                    self._cut(line, line_no, in_header, cue is not None)
                    break
            elif line == "":
                break
            else:
                if not in_header and line_count == 2 and not self.seen_cue and _BLOCK_KEYWORD.match(buffer):
                    if buffer.startswith("STYLE"):
                        sheet = True
                    else:
                        region, region_line = True, first_line_no
                    buffer = ""
                if buffer:
                    buffer += "\n"
                buffer += line
                previous = self.pos
            if seen_eof:
                break
        was_cue = self.last_block_was_cue
        self.last_block_was_cue = False
        if in_header:
            return
        if cue is not None:
            from dataclasses import replace

            self.cues.append(replace(cue, text=buffer))
            self.last_block_was_cue = True
            self._check_text(buffer, cue.line_number + 1)
            return
        if sheet:
            self.sheets.append(buffer)
            return
        if region:
            self.regions.append(self.region_settings(buffer, region_line))
            return
        self._dropped(first_line, first_line_no, failed_timing, was_cue)

    # -- diagnostics of dropped blocks ------------------------------------------------------------
    def _cut(self, line: str, line_no: int, in_header: bool, in_cue: bool) -> None:
        if not self.want:
            return
        looks_like_timing = _TIMING_SHAPE.match(line.strip(WS)) is not None
        if in_header:
            self.note(line_no, "warning", "blank_line",
                      "no blank line between the header and the first cue (browsers accept it; the syntax needs one)")
        elif looks_like_timing:
            self.note(line_no, "warning", "blank_line",
                      "missing blank line before this cue (browsers start a new cue here; the syntax needs a blank line)")
        else:
            self.note(line_no, "error", "arrow_in_text",
                      "a line with '-->' inside a block: browsers end the "
                      + ("cue" if in_cue else "block") + " here and read this line as the start of a new block")

    def _dropped(self, first: str, line_no: int, failed: tuple[int, str] | None, after_cue: bool) -> None:
        if not self.want:
            return
        word = first.split(None, 1)[0] if first.strip(WS) else ""
        if _is_note(first):
            if failed is None:
                return  # a comment
            self.note(failed[0], "error", "arrow_in_text", "a comment (NOTE) cannot contain '-->'")
            return
        if failed is not None:
            return  # cue_timings already said why
        if word in ("STYLE", "REGION") and _BLOCK_KEYWORD.match(first) and self.seen_cue:
            self.note(line_no, "error", "style_block" if word == "STYLE" else "region_block",
                      f"{word} block after the first cue: browsers drop it (move it before the cues)")
        elif after_cue:
            self.note(line_no, "error", "blank_line",
                      f"text without a cue timing line after a cue ({first[:40]!r}): a blank line inside cue "
                      "text? browsers drop this block")
        else:
            self.note(line_no, "error", "timing_line",
                      f"block without a cue timing line in its first two lines ({first[:40]!r}): browsers drop it")

    # -- cue timings and settings -------------------------------------------------------------------
    def cue_timings(self, line: str, line_no: int, ident: str) -> VTTCue | None:
        pos = 0
        n = len(line)

        def skip_ws(p: int) -> int:
            while p < n and line[p] in WS:
                p += 1
            return p

        if line[:1] in WS and line[:1]:
            self.note(line_no, "warning", "timing_line",
                      "the timing line starts with whitespace (browsers skip it; the syntax does not allow it)")
        elif line[:1] == "\v":
            self.note(line_no, "error", "timing_line",
                      "the timing line starts with a vertical tab, which is not whitespace in WebVTT: browsers drop "
                      "this cue")
            return None
        pos = skip_ws(pos)
        s0 = pos
        start, pos, why = _timestamp(line, pos)
        if start is None:
            self._bad_timestamp(line, line_no, why, "start")
            return None
        p2 = skip_ws(pos)
        if line[p2:p2 + 3] != "-->":
            what = repr(line[p2:p2 + 5]) if p2 < n else "the end of the line"
            self.note(line_no, "error", "timing_line",
                      f"expected '-->' after the start time, found {what}: browsers drop this cue")
            return None
        before_ok = p2 > pos and all(c in " \t" for c in line[pos:p2])
        p3 = skip_ws(p2 + 3)
        after_ok = p3 > p2 + 3 and all(c in " \t" for c in line[p2 + 3:p3])
        end, pos, why = _timestamp(line, p3)
        if end is None:
            self._bad_timestamp(line, line_no, why, "end")
            return None
        for stamp in (line[s0:p2].strip(WS), line[p3:pos]):
            if re.match(r"^\d:\d\d:", stamp):
                self.note(line_no, "warning", "timestamp",
                          f"one-digit hours in {stamp!r} (browsers accept them; the syntax asks for two or more)")
        if not (before_ok and after_ok):
            self.note(line_no, "warning", "timing_line",
                      "'-->' must be surrounded by spaces or tabs (browsers accept it; other players may not)")
        cue = VTTCue(id=ident, start=start, end=end, text="", line_number=line_no)
        return self.cue_settings(line[pos:], cue, line_no)

    def _bad_timestamp(self, line: str, line_no: int, why: str, which: str) -> None:
        hint = ""
        if "," in line and re.search(r"\d,\d{3}", line):
            hint = " (SRT uses ',' before milliseconds; WebVTT uses '.')"
        if "\v" in line:
            hint = " (a vertical tab is not whitespace in WebVTT)"
        if "\ufffd" in line:
            hint = " (the line holds a NUL / U+FFFD character)"
        self.note(line_no, "error", "timestamp",
                  f"invalid {which} time: {why}{hint}; use hh:mm:ss.ttt or mm:ss.ttt: browsers drop this cue")

    def cue_settings(self, rest: str, cue: VTTCue, line_no: int) -> VTTCue:
        from dataclasses import replace

        if rest and rest[0] not in WS and self.want:
            self.note(line_no, "error", "cue_setting",
                      f"text right after the end time ({rest[:20]!r}) is not separated by whitespace: browsers "
                      "ignore it")
        changes: dict = {}
        seen: set[str] = set()
        for token, name, value in self._settings(rest, line_no, "cue_setting"):
            ok = True
            if name == "region":
                found = next((r for r in reversed(self.regions) if r.id == value), None)
                changes["region"] = found
                ok = found is not None
            elif name == "vertical":
                ok = value in ("rl", "lr")
                if ok:
                    changes["vertical"] = value
            elif name == "line":
                linepos, _, linealign = value.partition(",")
                number = _line_position(linepos)
                ok = number is not None
                if ok:
                    changes["line"] = number
                    changes["snap_to_lines"] = not linepos.endswith("%")
                    if linealign in ("start", "center", "end"):
                        changes["line_align"] = linealign
                    elif "," in value:
                        self.note(line_no, "error", "cue_setting",
                                  f"line alignment {linealign!r} is not start, center or end: browsers ignore it")
            elif name == "position":
                colpos, _, colalign = value.partition(",")
                number = _percentage(colpos)
                ok = number is not None
                if ok:
                    changes["position"] = number
                    if colalign in ("line-left", "center", "line-right"):
                        changes["position_align"] = colalign
                    elif "," in value:
                        self.note(line_no, "error", "cue_setting",
                                  f"position alignment {colalign!r} is not line-left, center or line-right: "
                                  "browsers ignore it")
            elif name == "size":
                number = _percentage(value)
                ok = number is not None
                if ok:
                    changes["size"] = number
            elif name == "align":
                ok = value in ("start", "center", "end", "left", "right")
                if ok:
                    changes["align"] = value
            else:
                self.note(line_no, "error", "cue_setting", f"unknown cue setting {name!r}: browsers ignore it")
                continue
            if not ok:
                what = "no region with that id is defined before the cues" if name == "region" else "invalid value"
                self.note(line_no, "error", "cue_setting", f"{token!r}: {what}: browsers ignore this setting")
            elif name in seen:
                self.note(line_no, "warning", "cue_setting", f"{name!r} is given more than once (the last one counts)")
            seen.add(name)
        return replace(cue, **changes)

    def _settings(self, text: str, line_no: int, rule: str):
        """Split settings on whitespace -> (token, name, value); tokens that are not name:value are noted."""
        for token in _WS_RUN.split(text):
            if not token:
                continue
            i = token.find(":")
            if i <= 0 or i == len(token) - 1:
                self.note(line_no, "error", rule,
                          f"{rule.replace('_', ' ')} {token!r} is not 'name:value': browsers ignore it")
                continue
            yield token, token[:i], token[i + 1:]

    def region_settings(self, text: str, line_no: int) -> VTTRegion:
        r: dict = {"line_number": line_no}
        for token, name, value in self._settings(text, line_no, "region_setting"):
            ok = True
            if name == "id":
                ok = "-->" not in value
                r["id"] = value
            elif name == "width":
                p = _percentage(value)
                ok = p is not None
                if ok:
                    r["width"] = p
            elif name == "lines":
                ok = value.isascii() and value.isdigit()
                if ok:
                    r["lines"] = int(value)
            elif name in ("regionanchor", "viewportanchor"):
                x, comma, y = value.partition(",")
                px, py = _percentage(x), _percentage(y)
                ok = bool(comma) and px is not None and py is not None
                if ok:
                    r["region_anchor" if name == "regionanchor" else "viewport_anchor"] = (px, py)
            elif name == "scroll":
                ok = value == "up"
                if ok:
                    r["scroll"] = "up"
            else:
                self.note(line_no, "error", "region_setting", f"unknown region setting {name!r}: browsers ignore it")
                continue
            if not ok:
                self.note(line_no, "error", "region_setting", f"{token!r}: invalid value: browsers ignore it")
        region = VTTRegion(**r)
        if not region.id:
            self.note(line_no, "warning", "region_setting", "region without an id: no cue can use it")
        elif any(x.id == region.id for x in self.regions):
            self.note(line_no, "warning", "region_setting", f"region id {region.id!r} is defined twice (the last counts)")
        return region

    def _check_text(self, text: str, first_line: int) -> None:
        if not self.want:
            return
        if not text.strip(WS):
            self.note(first_line - 1, "warning", "empty_cue", "cue has no text")
        for off, line in enumerate(text.split("\n")):
            for m in re.finditer("&", line):
                if not _CHAR_REF.match(line, m.start()):
                    self.note(first_line + off, "warning", "unescaped_ampersand",
                              f"'&' at column {m.start() + 1} should be '&amp;' (shown as is, but ambiguous)")
            for m in re.finditer("<", line):
                if not _CUE_TAG.match(line, m.start()):
                    self.note(first_line + off, "error", "unescaped_lt",
                              f"'<' at column {m.start() + 1} is not a cue tag: browsers hide the text up to the next "
                              "'>'; write '&lt;'")


_TIMING_SHAPE = re.compile(r"^\S+[ \t\f]+-->[ \t\f]+\S+")
_CHAR_REF = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_CUE_TAG = re.compile(
    r"<(?:/?(?:c|i|b|u|ruby|rt|v|lang)(?:\.[^\s.>&<]+)*(?:[ \t\f][^>\n]*)?|/?(?:c|i|b|u|ruby|rt|v|lang)"
    r"|(?:\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3})>"
)


def _is_note(line: str) -> bool:
    return line.startswith("NOTE") and (len(line) == 4 or line[4] in " \t\n")


def _shift(c: VTTCue, off: int) -> VTTCue:
    from dataclasses import replace

    return replace(c, line_number=c.line_number - off)


def _timestamp(line: str, pos: int) -> tuple[float | None, int, str]:
    """Collect a WebVTT timestamp at *pos* -> (seconds or None, new position, why it failed)."""
    n = len(line)

    def digits(p: int) -> tuple[str, int]:
        q = p
        while q < n and "0" <= line[q] <= "9":
            q += 1
        return line[p:q], q

    if pos >= n or not "0" <= line[pos] <= "9":
        found = repr(line[pos:pos + 12]) if pos < n else "nothing"
        return None, pos, f"expected a timestamp, found {found}"
    d1, pos = digits(pos)
    hours_first = len(d1) != 2 or int(d1) > 59
    if pos >= n or line[pos] != ":":
        return None, pos, f"expected ':' after {d1!r}"
    d2, pos = digits(pos + 1)
    if len(d2) != 2:
        return None, pos, f"minutes/seconds need exactly two digits, got {d2!r}"
    if hours_first or (pos < n and line[pos] == ":"):
        if pos >= n or line[pos] != ":":
            return None, pos, f"{d1!r} cannot be minutes (two digits, at most 59), so hours need ':mm:ss.ttt'"
        d3, pos = digits(pos + 1)
        if len(d3) != 2:
            return None, pos, f"seconds need exactly two digits, got {d3!r}"
        h, m, sec = int(d1), int(d2), int(d3)
    else:
        h, m, sec = 0, int(d1), int(d2)
    if pos >= n or line[pos] != ".":
        return None, pos, "expected '.' and three digits of milliseconds"
    d4, pos = digits(pos + 1)
    if len(d4) != 3:
        return None, pos, f"milliseconds need exactly three digits, got {d4!r}"
    if m > 59 or sec > 59:
        return None, pos, "minutes and seconds must be at most 59"
    return h * 3600 + m * 60 + sec + int(d4) / 1000, pos, ""


def _line_position(linepos: str) -> float | None:
    if not re.search(r"[0-9]", linepos):
        return None
    if linepos.endswith("%"):
        return _percentage(linepos)
    if re.search(r"[^0-9.\-]", linepos) or "-" in linepos[1:] or linepos.count(".") > 1:
        return None
    if "." in linepos and not re.search(r"[0-9]\.[0-9]", linepos):
        return None
    value = float(linepos)
    return value + 0.0 if math.isfinite(value) else None


def parse_vtt(source: str | bytes | os.PathLike, *, diagnostics: bool = False) -> VTTDocument:
    """Parse WebVTT the way browsers do (W3C WebVTT parser algorithm).

    *source* is a path, the file's bytes, or its text (a ``str`` that starts with ``WEBVTT`` or
    holds a line break).  With *diagnostics*, :attr:`VTTDocument.diagnostics` lists what browsers
    drop, ignore or repair, with line numbers; a rejected file then still gets its other problems
    listed, and its cues are those it would have with a right signature.
    """
    bad_line = None
    if isinstance(source, bytes):
        text, bad_line = decode(source)
    elif isinstance(source, str) and ("\n" in source or "\r" in source or source.lstrip("\ufeff").startswith("WEBVTT")):
        text = source.removeprefix("\ufeff")
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise CaptionFileError(f"caption file not found: {p}")
        text, bad_line = decode(p.read_bytes())
    else:
        raise TypeError(f"parse_vtt takes a path, str or bytes, not {type(source).__name__}")
    parser = _Parser(text, diagnostics)
    if bad_line is not None:
        parser.note(bad_line, "error", "encoding", "not UTF-8: browsers show U+FFFD for the undecodable bytes")
    return parser.parse()
