"""Compare two transcripts word by word (e.g. two engines on the same audio).

:func:`word_diff` aligns the words of two :class:`~vidtrans.schema.Transcript`
objects with jiwer's minimum-edit-distance alignment (the one WER is computed
from) after a light normalisation (case, punctuation), keeping the original
:class:`~vidtrans.schema.Word` objects with their times and speakers.
:func:`diff_html` renders the result for a notebook, :func:`plot_word_diff`
draws both transcripts on a shared time axis coloured by edit type.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import MissingDependencyError
from ..schema import Transcript, Word, join_words

#: op -> colour used by the plot and the HTML view
COLOURS = {"equal": "#9e9e9e", "substitute": "#ef6c00", "delete": "#c62828", "insert": "#2e7d32"}


@dataclass(frozen=True)
class DiffOp:
    """One aligned stretch: ``equal``, ``substitute``, ``delete`` (only in A) or ``insert`` (only in B)."""

    op: str
    a: tuple[Word, ...]
    b: tuple[Word, ...]


@dataclass(frozen=True)
class WordDiff:
    """The alignment of transcript A (reference) against B (hypothesis)."""

    ops: tuple[DiffOp, ...]
    labels: tuple[str, str] = ("A", "B")

    def counts(self) -> dict[str, int]:
        """Words per edit type: ``equal``, ``substitute``, ``delete``, ``insert`` (substitutions counted on A)."""
        c: Counter[str] = Counter({"equal": 0, "substitute": 0, "delete": 0, "insert": 0})
        for o in self.ops:
            c[o.op] += len(o.b) if o.op == "insert" else len(o.a)
        return dict(c)

    @property
    def wer(self) -> float:
        """Word error rate of B against A: (S + D + I) / words in A."""
        c = self.counts()
        n = c["equal"] + c["substitute"] + c["delete"]
        errors = c["substitute"] + c["delete"] + c["insert"]
        return errors / n if n else (0.0 if errors == 0 else float("inf"))

    def __iter__(self):
        return iter(self.ops)


_PUNCT = re.compile(r"[^\w']+", re.UNICODE)


def normalize_word(text: str) -> str:
    """Lower-case, NFKC, punctuation removed (apostrophes kept): ``"Hello,"`` -> ``"hello"``."""
    t = unicodedata.normalize("NFKC", text).lower()
    return _PUNCT.sub("", t).strip()  # words carry the engine's leading space


def _words(t: Transcript) -> list[Word]:
    return [w for w in t.words if normalize_word(w.text)]


def word_diff(a: Transcript, b: Transcript, labels: tuple[str, str] | None = None) -> WordDiff:
    """Align the words of *a* and *b* (normalised for case and punctuation)."""
    labels = labels or (a.engine or "A", b.engine or "B")
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        ops = []
        if wa:
            ops.append(DiffOp("delete", tuple(wa), ()))
        if wb:
            ops.append(DiffOp("insert", (), tuple(wb)))
        return WordDiff(tuple(ops), labels)
    try:
        import jiwer
    except ImportError as exc:
        raise MissingDependencyError("jiwer", purpose="comparing transcripts") from exc
    ref = " ".join(normalize_word(w.text) for w in wa)
    hyp = " ".join(normalize_word(w.text) for w in wb)
    out = jiwer.process_words(ref, hyp)
    ops = [
        DiffOp(ch.type, tuple(wa[ch.ref_start_idx : ch.ref_end_idx]), tuple(wb[ch.hyp_start_idx : ch.hyp_end_idx]))
        for ch in out.alignments[0]
    ]
    return WordDiff(tuple(ops), labels)


def diff_html(diff: WordDiff) -> str:
    """An HTML fragment: a two-column table, one row per aligned stretch, edits coloured."""
    la, lb = (html.escape(x) for x in diff.labels)

    def cell(words: tuple[Word, ...], op: str) -> str:
        if not words:
            return "<td></td>"
        text = html.escape(join_words(words))
        t0 = f"{words[0].start:.1f}s"
        style = "" if op == "equal" else f' style="background:{COLOURS[op]}33;border-left:3px solid {COLOURS[op]}"'
        return f'<td{style}><span style="color:#888;font-size:smaller">{t0}</span> {text}</td>'

    rows = "\n".join(f"<tr>{cell(o.a, o.op)}{cell(o.b, o.op)}</tr>" for o in diff.ops)
    c = diff.counts()
    summary = (
        f"WER of {lb} against {la}: {diff.wer:.1%} "
        f"({c['substitute']} substituted, {c['delete']} missing, {c['insert']} extra, {c['equal']} equal)"
    )
    return (
        f'<div class="vidtrans-diff"><p>{html.escape(summary)}</p>'
        f'<table style="width:100%;table-layout:fixed"><tr><th>{la}</th><th>{lb}</th></tr>\n{rows}</table></div>'
    )


def plot_word_diff(diff: WordDiff, ax: Any = None, *, start: float | None = None, end: float | None = None):
    """Draw A's and B's words on one time axis (two rows), coloured by edit type; return the Axes."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", extra="notebooks", purpose="plotting transcript diffs") from exc
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 2.4))
    for o in diff.ops:
        for row, words in ((1, o.a), (0, o.b)):
            for w in words:
                if (start is not None and w.end < start) or (end is not None and w.start > end):
                    continue
                ax.barh(row, max(w.end - w.start, 0.02), left=w.start, height=0.6, color=COLOURS[o.op], edgecolor="white")
                if o.op != "equal":
                    ax.text(w.start, row + 0.38, w.text, fontsize=7, rotation=30, va="bottom")
    ax.set_yticks([1, 0], list(diff.labels))
    ax.set_ylim(-0.6, 2.0)
    ax.set_xlabel("time (s)")
    if start is not None or end is not None:
        ax.set_xlim(start, end)
    ax.set_title(f"word diff: WER of {diff.labels[1]} against {diff.labels[0]} = {diff.wer:.1%}")
    ax.legend(handles=[Patch(color=c, label=k) for k, c in COLOURS.items()], loc="upper right", ncol=4, fontsize=7)
    return ax
