"""Word-timing scorer: hypothesis word times against a reference alignment.

Used by ``bench/align.py`` and by the word-timing test.  Pure Python, no
model: give it reference words (text, start, end; a boundary may be ``None``
when the reference only times utterance or line edges) and hypothesis words
(text, start, end) and it

1. normalises both word lists (case, punctuation, curly apostrophes; tokens
   in brackets such as ``<vocnoise>`` or ``[noise]`` are not words),
2. aligns them with :class:`difflib.SequenceMatcher`; inside a replaced run,
   a group of hypothesis words whose concatenation equals a group of
   reference words (``all right`` = ``alright``) is matched as one word,
3. reports, over the matched words, median/mean absolute start and end error,
   and the share of words with both boundaries within 100 ms and 200 ms.
"""

from __future__ import annotations

import difflib
import re
import statistics
import unicodedata
from dataclasses import dataclass
from pathlib import Path

_NON_WORD = re.compile(r"^[\[<].*[\]>]$")


@dataclass(frozen=True)
class RefWord:
    text: str
    start: float | None
    end: float | None


def norm_word(text: str) -> str:
    """Lower case, curly quotes straightened, everything but letters, digits and ' removed."""
    s = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    s = "".join(ch for ch in s if ch.isalnum() or ch == "'")
    return s.strip("'")


def read_textgrid(path: str | Path, tier: str = "words") -> list[RefWord]:
    """Non-empty intervals of interval tier *tier* of a Praat TextGrid (long text format)."""
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    out: list[RefWord] = []
    i = 0
    while i < len(lines):
        if lines[i] == '"IntervalTier"' and i + 1 < len(lines) and lines[i + 1] == f'"{tier}"':
            n = int(lines[i + 4])
            vals = lines[i + 5 : i + 5 + 3 * n]
            for k in range(n):
                a, b, w = float(vals[3 * k]), float(vals[3 * k + 1]), vals[3 * k + 2].strip('"').strip()
                if w:
                    out.append(RefWord(w, a, b))
            return out
        if lines[i].startswith("name =") and lines[i].split("=", 1)[1].strip().strip('"') == tier:
            # "ooTextFile" long form with key = value lines
            j = i + 1
            while j < len(lines) and not lines[j].startswith("intervals: size"):
                j += 1
            n = int(lines[j].split("=")[1])
            j += 1
            for _ in range(n):
                a = float(lines[j + 1].split("=")[1])
                b = float(lines[j + 2].split("=")[1])
                w = lines[j + 3].split("=", 1)[1].strip().strip('"').strip()
                if w:
                    out.append(RefWord(w, a, b))
                j += 4
            return out
        i += 1
    raise ValueError(f"{path}: no interval tier named {tier!r}")


def edges_only(utterances: list[tuple[float, float, str]]) -> list[RefWord]:
    """Reference words from timed utterances/lines: only each utterance's first start and last end are known."""
    out: list[RefWord] = []
    for start, end, text in utterances:
        words = [w for w in text.split() if norm_word(w)]
        for k, w in enumerate(words):
            out.append(RefWord(w, start if k == 0 else None, end if k == len(words) - 1 else None))
    return out


def _tokens(words, is_ref: bool):
    """(normalised text, index range) per scoreable token; hyphenated/space-joined pieces split."""
    out = []
    for idx, w in enumerate(words):
        text = w.text if is_ref else w[0]
        if _NON_WORD.match(text.strip()):
            continue
        n = norm_word(text)
        if n:
            out.append((n, idx))
    return out


def match(ref: list[RefWord], hyp: list[tuple[str, float, float]]) -> list[tuple[RefWord, float, float]]:
    """Pairs (reference word, hypothesis start, hypothesis end) for matched words."""
    rt, ht = _tokens(ref, True), _tokens(hyp, False)
    sm = difflib.SequenceMatcher(a=[t for t, _ in rt], b=[t for t, _ in ht], autojunk=False)
    pairs = []
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op == "equal":
            for k in range(a1 - a0):
                h = hyp[ht[b0 + k][1]]
                pairs.append((ref[rt[a0 + k][1]], h[1], h[2]))
        elif op == "replace":
            pairs.extend(_match_joined(ref, hyp, rt[a0:a1], ht[b0:b1]))
    return pairs


def _match_joined(ref, hyp, rt, ht):
    """Inside a replaced run: groups whose joined text is equal ("all right" = "alright")."""
    pairs = []
    i = j = 0
    while i < len(rt) and j < len(ht):
        found = False
        for di in range(1, 4):
            for dj in range(1, 4):
                if (di, dj) == (1, 1) or i + di > len(rt) or j + dj > len(ht):
                    continue
                if "".join(t for t, _ in rt[i : i + di]) == "".join(t for t, _ in ht[j : j + dj]):
                    r0, r1 = ref[rt[i][1]], ref[rt[i + di - 1][1]]
                    pairs.append((RefWord(r0.text, r0.start, r1.end), hyp[ht[j][1]][1], hyp[ht[j + dj - 1][1]][2]))
                    i, j, found = i + di, j + dj, True
                    break
            if found:
                break
        if not found:
            i, j = i + 1, j + 1
    return pairs


@dataclass(frozen=True)
class Score:
    ref_words: int
    matched: int
    starts: int
    ends: int
    median_start: float
    mean_start: float
    median_end: float
    mean_end: float
    #: share of matched words with both boundaries known whose both errors are within 100 / 200 ms
    both_100: float
    both_200: float
    #: share of all known boundaries (starts and ends) within 100 / 200 ms
    bound_100: float
    bound_200: float

    def row(self) -> str:
        return (
            f"{self.matched:3d}/{self.ref_words:<3d} "
            f"start med {self.median_start * 1000:5.0f} mean {self.mean_start * 1000:5.0f} | "
            f"end med {self.median_end * 1000:5.0f} mean {self.mean_end * 1000:5.0f} | "
            f"both<=100 {self.both_100 * 100:5.1f}% both<=200 {self.both_200 * 100:5.1f}% | "
            f"bounds<=100 {self.bound_100 * 100:5.1f}% <=200 {self.bound_200 * 100:5.1f}%"
        )


def score(ref: list[RefWord], hyp: list[tuple[str, float, float]]) -> Score:
    """Timing errors (seconds) of *hyp* against *ref* over matched words."""
    pairs = match(ref, hyp)
    se = [abs(h0 - r.start) for r, h0, _ in pairs if r.start is not None]
    ee = [abs(h1 - r.end) for r, _, h1 in pairs if r.end is not None]
    both = [max(abs(h0 - r.start), abs(h1 - r.end)) for r, h0, h1 in pairs if r.start is not None and r.end is not None]
    bounds = se + ee
    n_ref = len(_tokens(ref, True))

    def share(xs, lim):
        return sum(x <= lim + 1e-9 for x in xs) / len(xs) if xs else float("nan")

    def med(xs):
        return statistics.median(xs) if xs else float("nan")

    def mean(xs):
        return statistics.fmean(xs) if xs else float("nan")

    return Score(
        ref_words=n_ref, matched=len(pairs), starts=len(se), ends=len(ee),
        median_start=med(se), mean_start=mean(se), median_end=med(ee), mean_end=mean(ee),
        both_100=share(both, 0.1), both_200=share(both, 0.2),
        bound_100=share(bounds, 0.1), bound_200=share(bounds, 0.2),
    )
