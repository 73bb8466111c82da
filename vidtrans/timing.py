"""Word-timing refinement: put each word's start and end on the speech in the signal.

Whisper's word times come from cross-attention alignment (DTW over 20 ms
encoder frames, median-filtered).  They are good to within about a word, but
they drift by 100-200 ms inside phrases, begin words inside the pause before
them and swallow fillers ("um", "uh") that Whisper does not write.  Against a
Montreal-Forced-Aligner alignment of spontaneous English only about 70 % of
words have both boundaries within 200 ms (``bench/align.py``).

:func:`refine_words` re-times the words Whisper wrote, in two passes::

    from vidtrans.timing import refine_words, TimingOptions
    transcript = refine_words(transcript, samples, TimingOptions())

1. **Forced alignment** (English, ``method="auto"`` or ``"align"``): each
   segment's words are aligned to the segment's audio (plus ``pad`` seconds
   each side) with PocketSphinx's HMM aligner and the US-English acoustic
   model and CMU pronouncing dictionary that ship inside the ``pocketsphinx``
   wheel (10 ms frames, optional silences and fillers between words, so
   unwritten "um"s fall into fillers instead of stretching a word; an optional
   garbage word on the model's speech-noise phone +SPN+ between words takes
   sniffs, breaths and coughs, which would otherwise become the start of the
   word after a pause).  Numbers
   and symbols are spelled out for the aligner ("1995" -> "nineteen ninety
   five", "%" -> "percent"); words missing from the dictionary get a
   letter-to-sound pronunciation.  An aligned time that lies more than
   ``max_shift`` seconds from Whisper's is not trusted (Whisper is rarely that
   far off; such a jump means the aligner lost its way), and a segment the
   aligner cannot finish keeps Whisper's times.
2. **Pauses** (every language): short-time energy in the speech band against
   a local noise floor finds pauses at least ``min_pause`` long; a word
   boundary inside such a pause moves to its edge, and a word lying wholly
   inside one is moved next to the speech it belongs to.

Finally words are put in order without overlaps (an overlap is split in the
middle), every word keeps a time (words the aligner could not place, such as
punctuation-only tokens, are fitted between their aligned neighbours), and
each segment spans its words.  What ran is recorded in
``transcript.meta["word_timing"]``.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, as_samples
from .errors import ConfigurationError, MissingDependencyError
from .schema import Segment, Transcript

log = logging.getLogger(__name__)

#: analysis hop (s) of the energy pass and of the aligner's frames
HOP = 0.01
_WIN = 400  # 25 ms analysis window at 16 kHz
METHODS = ("auto", "align", "energy", "none")


@dataclass
class TimingOptions:
    """How :func:`refine_words` re-times words (seconds unless noted)."""

    #: "auto" (forced alignment for English when pocketsphinx is installed, then
    #: the pause pass), "align" (same, but fail when alignment is unavailable),
    #: "energy" (pause pass only), "none" (leave times alone)
    method: str = "auto"
    #: audio added on each side of a segment before aligning it
    pad: float = 0.3
    #: aligned boundaries further than this from Whisper's are not trusted
    max_shift: float = 0.6
    #: PocketSphinx filler-word probability (higher: unwritten "um"/"uh" go to fillers more easily)
    filler_prob: float = 1e-2
    #: a segment the default beams cannot align is tried again with wide beams; after this many failed
    #: retries in one input (and none that worked) no more are tried.  A retry costs more than the
    #: alignment it repeats, and on the dev files 2 of 40 worked, both on the spontaneous-speech clip
    #: (its only two); the 4-minute mix made 15, all failed, for 1.6 CPU-s (its telephone part: the
    #: words are not what was said, which wider beams cannot fix)
    max_failed_retries: int = 3
    #: prior probability of unwritten non-speech (sniffs, breaths, coughs, clicks) before each word, which
    #: the aligner then puts into the acoustic model's speech-noise phone (+SPN+) instead of stretching
    #: the next word over it; 0 disables the garbage word
    garbage: float = 0.01
    #: a segment longer than this (s) is aligned in pieces cut at pauses between its words (batched
    #: decoding yields whole speech chunks of up to 30 s; Whisper's own segments are rarely this long)
    max_window: float = 15.0
    #: pauses at least this long are kept free of words (pause pass)
    min_pause: float = 0.2
    #: "quiet" = closer to the local noise floor than this fraction of the way to the speech level (dB)
    pause_level: float = 0.25
    #: shortest duration a word is given when it has to be placed
    min_word: float = 0.03
    #: window (s) over which the local noise floor and speech level are estimated
    level_window: float = 20.0


def refine_words(
    transcript: Transcript, audio: Any, options: TimingOptions | None = None, aligner: SegmentAligner | None = None
) -> Transcript:
    """Return *transcript* with word (and segment) boundaries moved onto the speech in *audio*.

    *audio* is a media path or 16 kHz mono float32 samples (what
    :func:`vidtrans.audio.load_audio` returns).  Word text, order, speakers
    and probabilities are kept; only ``start``/``end`` change.  *aligner*: a
    :class:`SegmentAligner` (same options) that aligned segments while they were decoded.
    """
    options = options or TimingOptions()
    if options.method not in METHODS:
        raise ConfigurationError(f"word timing method must be one of {', '.join(METHODS)}, got {options.method!r}")
    t_start = time.perf_counter()
    words = transcript.words
    meta: dict[str, Any] = {"refined": False, "method": options.method, "options": asdict(options)}
    if options.method == "none" or not words:
        meta["reason"] = "disabled" if options.method == "none" else "no words"
        return transcript.replace(meta={**transcript.meta, "word_timing": meta})
    samples = as_samples(audio)
    duration = samples.size / SAMPLE_RATE
    starts = np.array([w.start for w in words], dtype=float)
    ends = np.array([w.end for w in words], dtype=float)
    s, e = starts.copy(), ends.copy()
    aligned = np.zeros(len(words), dtype=bool)
    passes = []

    if aligns(options.method, transcript.language):
        ours = aligner is not None and aligner.options == options
        done, retries = (aligner.results(), aligner.retries) if ours else (None, None)
        try:
            s, e, aligned, astats = align_segments(transcript, samples, options, done, retries)
            passes.append("pocketsphinx-align")
            meta.update(astats)
        except MissingDependencyError:
            if options.method == "align":
                raise
            log.info("pocketsphinx is not installed: word timing uses the pause pass only")
    elif options.method == "align":
        raise ConfigurationError(f"forced alignment needs English speech; this transcript is {transcript.language!r}")

    s, e = fit_unaligned(s, e, aligned)
    if aligner is not None and aligner.options == options:
        pauses = aligner.pauses()
    else:
        pauses = find_pauses(samples, options)
    s, e, pstats = keep_out_of_pauses(s, e, pauses, duration, options)
    passes.append("energy-pauses")
    s, e = order_words(s, e, duration, options.min_word)

    out_segments = []
    k = 0
    for seg in transcript.segments:
        ws = []
        for w in seg.words:
            ws.append(replace(w, start=round(float(s[k]), 3), end=round(float(e[k]), 3)))
            k += 1
        if ws:
            seg = replace(seg, words=tuple(ws), start=ws[0].start, end=ws[-1].end)
        out_segments.append(seg)
    moved = (np.abs(s - starts) + np.abs(e - ends)) / 2
    meta.update(
        refined=True,
        passes=passes,
        words=len(words),
        words_aligned=int(aligned.sum()),
        words_moved=int(np.sum(moved > 1e-3)),
        mean_shift_s=round(float(np.mean(moved)), 4),
        pauses=len(pauses),
        align_workers=aligner.workers if aligner is not None else 1,
        align_processes=bool(aligner is not None and aligner.processes),
        seconds=round(time.perf_counter() - t_start, 3),
        **pstats,
    )
    return transcript.replace(segments=tuple(_fix_segments(out_segments)), meta={**transcript.meta, "word_timing": meta})


def _fix_segments(segments: list[Segment]) -> list[Segment]:
    """Segments keep their order and do not overlap once their words moved."""
    out: list[Segment] = []
    for seg in segments:
        if out and seg.start < out[-1].end:
            cut = out[-1].words[-1].end if out[-1].words else seg.start
            out[-1] = replace(out[-1], end=min(out[-1].end, max(cut, out[-1].start)))
            seg = replace(seg, start=max(seg.start, out[-1].end), end=max(seg.end, out[-1].end))
        out.append(seg)
    return out


# --------------------------------------------------------------------------- text for the aligner
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SYMBOLS = {"%": "percent", "&": "and", "+": "plus", "=": "equals", "@": "at", "$": "dollars", "€": "euros", "£": "pounds", "#": "number"}


def spell_number(n: int, years: bool = True) -> list[str]:
    """English words for a non-negative integer (*years*: 1100-1999 and 2010-2099 read in pairs, 1995 -> nineteen ninety five)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if years and (1100 <= n < 2000 or 2010 <= n < 2100):
        hi, lo = divmod(n, 100)
        return spell_number(hi) + (["hundred"] if lo == 0 else (["oh"] if lo < 10 else []) + spell_number(lo))
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            hi, lo = divmod(n, size)
            return spell_number(hi, False) + [name] + (spell_number(lo, False) if lo else [])
    return []


def spoken_tokens(text: str) -> list[str]:
    """What the aligner should hear for one word: lower-case tokens, numbers and symbols spelled out."""
    s = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    out: list[str] = []
    for piece in re.findall(r"\d+(?:[.,]\d+)*|[a-z\u00c0-\u024f']+|[%&+=@$€£#]", s):
        if piece[0].isdigit():
            grouped = re.fullmatch(r"\d+(?:,\d{3})+", piece) is not None  # 1,200: a quantity, not a year
            if grouped:
                piece = piece.replace(",", "")
            parts = re.split(r"[.,]", piece)
            out += spell_number(int(parts[0]), years=not grouped) if len(parts[0]) < 10 else [_ONES[int(d)] for d in parts[0]]
            for frac in parts[1:]:
                out += ["point"] + [_ONES[int(d)] for d in frac]
        elif piece in _SYMBOLS:
            out.append(_SYMBOLS[piece])
        else:
            piece = unicodedata.normalize("NFKD", piece)
            piece = "".join(ch for ch in piece if ch.isascii()).strip("'")
            if piece:
                out.append(piece)
    return out


# crude English letter-to-sound rules (ARPABET) for words missing from the dictionary: the
# aligner only needs a plausible phone sequence of about the right length
_G2P = [
    ("tch", "CH"), ("sch", "S K"), ("igh", "AY"), ("ough", "AO"), ("tion", "SH AH N"), ("sion", "ZH AH N"),
    ("th", "TH"), ("sh", "SH"), ("ch", "CH"), ("ph", "F"), ("wh", "W"), ("ck", "K"), ("ng", "NG"), ("qu", "K W"),
    ("ee", "IY"), ("ea", "IY"), ("oo", "UW"), ("ou", "AW"), ("ow", "OW"), ("oi", "OY"), ("oy", "OY"),
    ("ai", "EY"), ("ay", "EY"), ("au", "AO"), ("aw", "AO"), ("ie", "IY"), ("ei", "EY"), ("ey", "IY"), ("ue", "UW"),
    ("er", "ER"), ("ir", "ER"), ("ur", "ER"), ("ar", "AA R"), ("or", "AO R"),
    ("a", "AE"), ("b", "B"), ("c", "K"), ("d", "D"), ("e", "EH"), ("f", "F"), ("g", "G"), ("h", "HH"), ("i", "IH"),
    ("j", "JH"), ("k", "K"), ("l", "L"), ("m", "M"), ("n", "N"), ("o", "AA"), ("p", "P"), ("q", "K"), ("r", "R"),
    ("s", "S"), ("t", "T"), ("u", "AH"), ("v", "V"), ("w", "W"), ("x", "K S"), ("y", "Y"), ("z", "Z"),
]


def letter_to_sound(word: str) -> str:
    """ARPABET phones for *word* by greedy longest-match letter rules (silent final e dropped)."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if len(w) > 3 and w.endswith("e") and not w.endswith(("ee", "ie", "ue")):
        w = w[:-1]
    phones: list[str] = []
    i = 0
    while i < len(w):
        for g, p in _G2P:
            if w.startswith(g, i):
                if not (phones and phones[-1] == p):  # "ll", "ss": one phone
                    phones.append(p)
                i += len(g)
                break
        else:
            i += 1
    return " ".join(phones) or "AH"


# --------------------------------------------------------------------------- forced alignment
def _decoder(options: TimingOptions, wide: bool = False):
    """A PocketSphinx decoder with the wheel's en-us model; *wide*: wider beams, for a retry."""
    try:
        import pocketsphinx
    except ImportError as exc:
        raise MissingDependencyError("pocketsphinx", purpose="word-timing forced alignment") from exc
    beams = dict(beam=1e-80, pbeam=1e-80, wbeam=1e-60) if wide else {}
    return pocketsphinx.Decoder(
        samprate=SAMPLE_RATE, loglevel="FATAL", cmn="batch", fillprob=float(options.filler_prob), **beams
    )


class RetryBudget:
    """The wide-beam retries one input may still make (``TimingOptions.max_failed_retries``): shared by the
    :class:`SegmentAligner` and the :func:`refine_words` run that finishes its work, so aligning while
    decoding gives the same result as aligning afterwards."""

    def __init__(self, options: TimingOptions):
        self.limit = options.max_failed_retries
        #: wide-beam retries that failed, and whether one has succeeded (then retries never stop)
        self.failed = 0
        self.helped = False

    def allows(self) -> bool:
        return self.helped or self.failed < self.limit

    def record(self, ok: bool) -> None:
        self.helped = self.helped or ok
        self.failed += not ok


class _Decoders:
    """One thread's PocketSphinx decoders: the default one, and a wide-beam one made on the first segment
    it cannot align (while *retries* allows)."""

    def __init__(self, options: TimingOptions, retries: RetryBudget | None = None):
        self.options = options
        self.default = _decoder(options)
        self._wide = None
        self.retries = retries or RetryBudget(options)

    def wide(self):
        if self._wide is None:
            self._wide = _decoder(self.options, wide=True)
        return self._wide

    def spent(self) -> None:
        """Drop the wide-beam decoder (~90 MB) once the retry budget can no longer allow a retry."""
        if not self.retries.allows():
            self._wide = None


def segment_key(seg: Segment) -> tuple:
    """What identifies a segment's alignment: its span and its words with their Whisper times."""
    return seg.start, seg.end, tuple((w.text, w.start, w.end) for w in seg.words)


def _windows(seg: Segment, duration: float, options: TimingOptions) -> list[tuple[int, int, float, float]]:
    """(first word, end word, t0, t1) of the stretches of audio *seg*'s words are aligned in.

    Normally one: the segment's span and its words', padded.  A segment longer than
    ``options.max_window`` (batched decoding yields whole speech chunks of up to 30 s) is cut
    between words, at the widest pause in its middle half, again until every piece fits: a long
    window is slow to align and, when it fails, leaves all its words with Whisper's times.
    """
    words = seg.words
    lo = min(seg.start, float(words[0].start))
    hi = max(seg.end, float(words[-1].end))
    groups = [(0, len(words))]
    done: list[tuple[int, int]] = []
    while groups:
        i0, i1 = groups.pop()
        a = lo if i0 == 0 else float(words[i0].start)
        b = hi if i1 == len(words) else float(words[i1 - 1].end)
        if b - a <= options.max_window or i1 - i0 < 2:
            done.append((i0, i1))
            continue
        mid = (a + b) / 2
        cuts = [j for j in range(i0 + 1, i1) if abs(float(words[j].start) - mid) <= (b - a) / 4] or [(i0 + i1) // 2]
        j = max(cuts, key=lambda j: (float(words[j].start) - float(words[j - 1].end), -abs(float(words[j].start) - mid)))
        groups += [(j, i1), (i0, j)]
    out = []
    for i0, i1 in sorted(done):
        a = lo if i0 == 0 else float(words[i0].start)
        b = hi if i1 == len(words) else float(words[i1 - 1].end)
        out.append((i0, i1, max(0.0, a - options.pad), min(duration, b + options.pad)))
    return out


def _align_segment(
    decs: _Decoders, samples: np.ndarray, seg: Segment, options: TimingOptions
) -> tuple[dict[int, tuple[float, float]] | None, dict[str, int]]:
    """Force-align one segment's words: ({word index: (start, end)} or None when it failed, stats)."""
    windows = _windows(seg, samples.size / SAMPLE_RATE, options)
    return _align_windows(decs, [_window_pcm(samples, t0, t1) for _, _, t0, t1 in windows].__getitem__, seg, options,
                          windows)


def _align_windows(
    decs: _Decoders, pcm: Callable[[int], bytes], seg: Segment, options: TimingOptions, windows: list[tuple],
) -> tuple[dict[int, tuple[float, float]] | None, dict[str, int]]:
    """:func:`_align_segment` on *seg*'s *windows*, whose PCM ``pcm(k)`` gives: default beams, then retries."""
    stats = {"oov_words": 0}
    tries = [_align_pcm(decs.default, pcm(k), t0, [w.text for w in seg.words[i0:i1]], stats, options.garbage)
             for k, (i0, i1, t0, t1) in enumerate(windows)]
    return _retry_segment(decs, pcm, seg, options, windows, tries, stats)


def _retry_segment(
    decs: _Decoders, pcm: Callable[[int], bytes], seg: Segment, options: TimingOptions, windows: list[tuple],
    tries: list[dict | None], stats: dict,
) -> tuple[dict[int, tuple[float, float]] | None, dict[str, int]]:
    """After the default beams' attempt on each of *seg*'s *windows* (*tries*; window k's PCM is ``pcm(k)``):
    the wide-beam retries of the windows that failed (while the budget allows), the words' times and the
    counts (``segments_*`` count windows)."""
    out: dict[int, tuple[float, float]] = {}
    for k, ((i0, i1, t0, t1), res) in enumerate(zip(windows, tries)):
        if res is None and decs.retries.allows():
            res = _align_pcm(decs.wide(), pcm(k), t0, [w.text for w in seg.words[i0:i1]], stats, options.garbage)
            decs.retries.record(res is not None)
            decs.spent()
            stats["segments_retried"] = stats.get("segments_retried", 0) + 1
        elif res is None:
            stats["segments_not_retried"] = stats.get("segments_not_retried", 0) + 1
        name = "segments_failed" if res is None else "segments_aligned"
        stats[name] = stats.get(name, 0) + 1
        out.update({i0 + j: span for j, span in (res or {}).items()})
    if len(windows) > 1:
        stats["segments_split"] = 1
    return (out or None), stats


def align_segments(
    transcript: Transcript, samples: np.ndarray, options: TimingOptions, done: dict[tuple, tuple] | None = None,
    retries: RetryBudget | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Force-align each segment's words; returns (starts, ends, aligned mask, stats) over all words.

    *done* maps :func:`segment_key` to alignments already made (by a :class:`SegmentAligner` while
    the engine was decoding); only the other segments are aligned here, with what is left of that
    aligner's *retries*.
    """
    decs = None  # made on the first segment not in *done*
    words = transcript.words
    s = np.array([w.start for w in words], dtype=float)
    e = np.array([w.end for w in words], dtype=float)
    aligned = np.zeros(len(words), dtype=bool)
    stats = {"segments_aligned": 0, "segments_failed": 0, "oov_words": 0, "shifts_rejected": 0}
    base = 0
    for seg in transcript.segments:
        n = len(seg.words)
        if n:
            got = done.get(segment_key(seg)) if done else None
            if got is None:
                decs = decs or _Decoders(options, retries)
                got = _align_segment(decs, samples, seg, options)
            res, seg_stats = got
            for name, count in seg_stats.items():
                stats[name] = stats.get(name, 0) + count
            for j, (a, b) in (res or {}).items():
                k = base + j
                if abs(a - s[k]) > options.max_shift or abs(b - e[k]) > options.max_shift:
                    stats["shifts_rejected"] += 1
                    continue
                s[k], e[k], aligned[k] = a, b, True
        base += n
    return s, e, aligned, stats


def aligns(method: str, language: str | None) -> bool:
    """Whether :func:`refine_words` force-aligns a transcript in *language* with *method*."""
    return method in ("auto", "align") and (language or "en").lower().startswith("en")


class SegmentAligner:
    """Force-aligns segments in the background while the engine is still decoding the next ones.

    Call :meth:`submit` with each segment as the engine yields it, then pass the aligner to
    :func:`refine_words`, which takes the finished alignments and aligns only what is missing (a
    segment the engine changed afterwards, or one whose alignment raised).  PocketSphinx holds the
    GIL while it decodes, but CTranslate2's decoder runs without it, so on a multi-core CPU the
    alignment hides behind decoding instead of following it (``bench/speed.py``).  Results are the
    same as aligning afterwards: each segment is aligned on its own audio.

    *workers*: 1 (default) aligns in one thread, or with *processes* in one worker process, which
    makes every attempt a thread would make in the same order (default beams and retries), so its
    times are the thread's exactly.  PocketSphinx holds the GIL for a whole window, and the
    decoder's Python steps (and the OpenVINO encoder's calls, 0.13 s alone, 0.4-0.6 s beside an
    aligner thread) wait for it; the pipeline therefore aligns in a process.  N > 1 aligns in N
    worker processes: for a GPU machine, where decoding is so fast that one aligner on one core
    became the bottleneck (``bench/gpu.py``: 9 minutes of speech decoded in 2 s, aligned in 15 s).
    Those processes make the default-beam attempts; the wide-beam retries of segments they could
    not align run here, in submission order, so the retry budget is spent as a single aligner
    spends it.  PocketSphinx carries state from one utterance to the next, so with N > 1 the times
    are close to one aligner's, not equal (>= 94 % of boundaries within 20 ms on the dev clips),
    and ``oov_words`` may count a word once per process.
    """

    def __init__(self, audio: Any, options: TimingOptions | None = None, workers: int = 1, processes: bool = False):
        from concurrent.futures import ThreadPoolExecutor

        if workers < 1:
            raise ConfigurationError(f"alignment workers must be >= 1, got {workers!r}")
        self.samples = as_samples(audio)
        self.options = options or TimingOptions()
        self.workers = workers
        #: whether the alignments run in worker processes (always for workers > 1)
        self.processes = bool(processes) or workers > 1
        self._pool: Any = None if self.processes else ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidtrans-align")
        if self.processes and workers == 1:  # start it (and load its models) while the engine loads
            self._processes().submit(_warm_process, self.options)
        # the pause pass's energy analysis only needs the audio: here it runs while the engine decodes
        # (numpy's FFTs release the GIL), instead of after the last segment
        self._pause_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidtrans-pauses")
        self._pauses = self._pause_pool.submit(self._find_pauses)
        self._futures: dict[tuple, Any] = {}
        self._segments: dict[tuple, tuple] = {}  # workers > 1: (segment, its windows)
        self._done: dict[tuple, tuple] = {}  # workers > 1: results with their retries made
        self._decs: _Decoders | None = None  # the thread worker's (workers == 1), or the retries' (workers > 1)
        #: wide-beam retries left for this input (refine_words uses the rest once the worker is done)
        self.retries = RetryBudget(self.options)
        self._broken = False

    def _processes(self):
        """The worker processes (:mod:`vidtrans._align_procs`), started on the first segment."""
        if self._pool is None:
            from ._align_procs import AlignProcesses

            self._pool = AlignProcesses(self.workers)
        return self._pool

    def submit(self, segment: Segment, language: str | None = None) -> None:
        """Queue *segment* for alignment (skipped when it has no words or is not English)."""
        if self._broken or not segment.words or not aligns(self.options.method, language):
            return
        key = segment_key(segment)
        if key in self._futures:
            return
        if not self.processes:
            self._futures[key] = self._pool.submit(self._align, segment)
            return
        windows = _windows(segment, self.samples.size / SAMPLE_RATE, self.options)
        if self.workers == 1:  # the whole segment, retries included, in the one process
            self._futures[key] = self._processes().submit(
                _align_segment_in_process, [_window_pcm(self.samples, t0, t1) for _, _, t0, t1 in windows], windows,
                segment, self.options)
            return
        self._segments[key] = (segment, windows)
        self._futures[key] = [
            self._processes().submit(_align_in_process, _window_pcm(self.samples, t0, t1), t0,
                                     [w.text for w in segment.words[i0:i1]],
                                     float(self.options.filler_prob), float(self.options.garbage))
            for i0, i1, t0, t1 in windows]

    def _align(self, segment: Segment):
        try:
            if self._decs is None:  # the first segment, in the pool's one thread
                from ._threads import yield_to_decoder

                yield_to_decoder()
                self._decs = _Decoders(self.options, self.retries)
            return _align_segment(self._decs, self.samples, segment, self.options)
        except Exception:
            self._broken = True  # e.g. pocketsphinx missing: refine_words aligns (and reports) it itself
            raise

    def _find_pauses(self) -> list[tuple[float, float]]:
        from ._threads import yield_to_decoder

        yield_to_decoder()
        return find_pauses(self.samples, self.options)

    def pauses(self) -> list[tuple[float, float]]:
        """:func:`find_pauses` of this aligner's audio and options (computed in the background)."""
        return self._pauses.result()

    def results(self) -> dict[tuple, tuple]:
        """Wait for the queued segments; {segment_key: (alignment, stats)} of those that finished."""
        out = {}
        for key, fut in self._futures.items():
            try:
                if not self.processes:
                    out[key] = fut.result()
                    continue
                if self.workers == 1:
                    res, stats, (self.retries.failed, self.retries.helped) = fut.result()
                    out[key] = res, stats
                    continue
                if key not in self._done:
                    got = [f.result() for f in fut]
                    stats = {"oov_words": sum(st["oov_words"] for _, st in got)}
                    self._decs = self._decs or _Decoders(self.options, self.retries)
                    segment, windows = self._segments[key]
                    pcm = lambda k, w=windows: _window_pcm(self.samples, *w[k][2:])  # noqa: E731
                    self._done[key] = _retry_segment(self._decs, pcm, segment, self.options, windows,
                                                     [res for res, _ in got], stats)
                out[key] = self._done[key]
            except Exception as exc:  # noqa: BLE001 - aligned again (and raised) in the main thread
                log.debug("background alignment failed: %s", exc)
        return out

    def close(self, wait: bool = True) -> None:
        """Stop the aligner; queued segments are cancelled.  *wait* False does not wait for the worker
        (a task it is on, its process's exit) to finish."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True, wait=wait)
        self._pause_pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> SegmentAligner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: dictionary word for the optional garbage model (not an English word, so never a transcript token)
GARBAGE = "vidtrans_spn"


def _garbage_transitions(tokens: list[str], p: float) -> list[tuple]:
    """A linear grammar over *tokens* with an optional garbage word (probability *p*) before, between and after them.

    State 2k is before the optional garbage ahead of token k, 2k+1 after it; the
    last state, 2n+1, follows the garbage after the last token.
    """
    out: list[tuple] = []
    for k, tok in enumerate([*tokens, None]):
        out += [(2 * k, 2 * k + 1, p, GARBAGE), (2 * k, 2 * k + 1, 1.0 - p)]
        if tok is not None:
            out.append((2 * k + 1, 2 * k + 2, 1.0, tok))
    return out


def _add_garbage(dec) -> bool:
    """Make sure *dec* knows the garbage word (one +SPN+ phone); False if the model has no such phone."""
    if dec.lookup_word(GARBAGE) is not None:
        return True
    try:  # no search rebuild (update=False): the grammar compiled next reads the dictionary afresh
        dec.add_word(GARBAGE, "+SPN+", update=False)
    except RuntimeError:
        log.debug("the aligner's acoustic model has no +SPN+ phone: no garbage word")
        return False
    return True


def _window_pcm(samples: np.ndarray, t0: float, t1: float) -> bytes:
    """The 16-bit PCM the aligner reads for [t0, t1]."""
    a, b = int(t0 * SAMPLE_RATE), int(t1 * SAMPLE_RATE)
    return (np.clip(samples[a:b], -1.0, 1.0) * 32767).astype(np.int16).tobytes()


def _align_pcm(dec, pcm: bytes, t0: float, texts: list[str], stats: dict, garbage: float = 0.0) -> dict | None:
    """{word index: (start, end)} for the words of *texts* aligned in the window whose 16-bit PCM is *pcm*
    (*t0*: where it starts), or None when alignment failed."""
    seq = [(j, tok) for j, text in enumerate(texts) for tok in spoken_tokens(text)]
    grammar = garbage > 0 and _add_garbage(dec)
    oov = sorted({tok for _, tok in seq if dec.lookup_word(tok) is None})
    for n, tok in enumerate(oov):  # a grammar is compiled from the dictionary; align text needs one rebuild
        try:
            dec.add_word(tok, letter_to_sound(tok), update=not grammar and n == len(oov) - 1)
            stats["oov_words"] += 1
        except RuntimeError:
            log.debug("cannot add %r to the aligner's dictionary", tok)
    seq = [(j, tok) for j, tok in seq if dec.lookup_word(tok) is not None]
    if not seq:
        return None
    t1 = t0 + len(pcm) / 2 / SAMPLE_RATE
    try:
        if grammar:
            dec.add_fsg("align", dec.create_fsg("align", 0, 2 * len(seq) + 1, _garbage_transitions([t for _, t in seq], garbage)))
            dec.activate_search("align")
        else:
            dec.set_align_text(" ".join(tok for _, tok in seq))
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        segs = [x for x in (dec.seg() or []) if not _is_filler(x.word)]
    except RuntimeError as exc:
        log.debug("alignment of %.2f-%.2f failed: %s", t0, t1, exc)
        return None
    if len(segs) != len(seq):
        log.debug("alignment of %.2f-%.2f incomplete (%d of %d tokens)", t0, t1, len(segs), len(seq))
        return None
    out: dict[int, tuple[float, float]] = {}
    for (j, _), x in zip(seq, segs):
        start, end = t0 + x.start_frame * HOP, t0 + (x.end_frame + 1) * HOP
        out[j] = (out[j][0], end) if j in out else (start, end)
    return out


@functools.lru_cache(maxsize=2)
def _cached_decoders(fields: tuple) -> _Decoders:
    return _Decoders(TimingOptions(**dict(fields)))


def _process_decoders(options: TimingOptions) -> _Decoders:
    """The decoders (and retry budget) of an alignment worker process, made on its first task; a process
    serves one input."""
    return _cached_decoders(tuple(sorted(asdict(options).items())))


def _warm_process(options: TimingOptions) -> None:
    """Load a one-process aligner's models before its first segment."""
    _process_decoders(options)


def _align_segment_in_process(pcms: list[bytes], windows: list[tuple], seg: Segment, options: TimingOptions):
    """One segment's whole alignment in the worker process of a one-process :class:`SegmentAligner`:
    (result, stats, (retries failed, a retry helped)) after this segment."""
    decs = _process_decoders(options)
    res, stats = _align_windows(decs, pcms.__getitem__, seg, options, windows)
    return res, stats, (decs.retries.failed, decs.retries.helped)


def _align_in_process(pcm: bytes, t0: float, texts: list[str], filler_prob: float, garbage: float):
    """One segment's default-beam alignment in a worker process of :class:`SegmentAligner`: (result, stats)."""
    stats = {"oov_words": 0}
    return _align_pcm(_process_decoders(TimingOptions(filler_prob=filler_prob)).default, pcm, t0, texts, stats,
                      garbage), stats


def _is_filler(word: str) -> bool:
    return word in ("<s>", "</s>", "<sil>", GARBAGE) or word.startswith(("[", "+"))


def fit_unaligned(s: np.ndarray, e: np.ndarray, aligned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Words without an aligned time keep Whisper's, clipped between their aligned neighbours."""
    s, e = s.copy(), e.copy()
    if not aligned.any():
        return s, e
    n = s.size
    for i in np.flatnonzero(~aligned):
        prev = max((j for j in range(i - 1, -1, -1) if aligned[j]), default=None)
        nxt = next((j for j in range(i + 1, n) if aligned[j]), None)
        lo = e[prev] if prev is not None else 0.0
        hi = s[nxt] if nxt is not None else np.inf
        if hi < lo:
            hi = lo
        s[i] = min(max(s[i], lo), hi)
        e[i] = min(max(e[i], s[i]), hi)
    return s, e


# --------------------------------------------------------------------------- pauses from the signal
def band_energy_db(samples: np.ndarray, lo_hz: float = 100.0, hi_hz: float = 4000.0, block_s: float = 60.0) -> np.ndarray:
    """Energy (dB) of the 100 Hz - 4 kHz band in 25 ms windows every 10 ms (frame i centred at i * 10 ms)."""
    hop = int(HOP * SAMPLE_RATE)
    n_frames = int(np.ceil(samples.size / hop))
    nfft = 512
    freqs = np.fft.rfftfreq(nfft, 1.0 / SAMPLE_RATE)
    band = (freqs >= lo_hz) & (freqs <= hi_hz)
    window = np.hanning(_WIN).astype(np.float32)
    out = np.empty(n_frames, dtype=np.float32)
    per_block = max(1, int(block_s / HOP))
    for f0 in range(0, n_frames, per_block):
        f1 = min(n_frames, f0 + per_block)
        # this block's stretch of the input zero-padded by _WIN // 2 in front (no padded copy of it all)
        a = f0 * hop - _WIN // 2
        b = (f1 - 1) * hop + _WIN - _WIN // 2
        piece = np.zeros(b - a, dtype=np.float32)
        lo, hi = max(a, 0), min(b, samples.size)
        if hi > lo:
            piece[lo - a : hi - a] = samples[lo:hi]
        idx = (np.arange(f1 - f0) * hop)[:, None] + np.arange(_WIN)[None, :]
        spec = np.abs(np.fft.rfft(piece[idx] * window, n=nfft, axis=1)) ** 2
        out[f0:f1] = 10.0 * np.log10(spec[:, band].sum(axis=1) + 1e-10)
    return out


def _local_percentile(x: np.ndarray, q: float, window_frames: int) -> np.ndarray:
    """Percentile *q* of *x* over a sliding window, evaluated at 20 points per window and interpolated."""
    if x.size <= window_frames:
        return np.full(x.size, np.percentile(x, q), dtype=np.float32)
    step = max(1, window_frames // 20)
    centres = np.arange(0, x.size, step)
    half = window_frames // 2
    vals = np.array([np.percentile(x[max(0, c - half) : c + half + 1], q) for c in centres])
    return np.interp(np.arange(x.size), centres, vals).astype(np.float32)


def find_pauses(samples: np.ndarray, options: TimingOptions) -> list[tuple[float, float]]:
    """The pauses of the energy pass: runs of :func:`quiet_frames` at least ``options.min_pause`` long."""
    return pause_runs(quiet_frames(samples, options), options.min_pause)


def quiet_frames(samples: np.ndarray, options: TimingOptions) -> np.ndarray:
    """Boolean per 10 ms frame: True where the signal is at pause level, not speech."""
    if samples.size == 0:
        return np.zeros(0, dtype=bool)
    db = band_energy_db(samples)
    win = max(1, int(options.level_window / HOP))
    floor = _local_percentile(db, 5.0, win)
    level = _local_percentile(db, 95.0, win)
    # at least 3 dB above the floor, so a flat floor is quiet; at most 20 dB, so loud speech never is
    thr = np.clip(floor + options.pause_level * (level - floor), floor + 3.0, floor + 20.0)
    smooth = np.convolve(db, np.ones(3, dtype=np.float32) / 3, mode="same")  # 30 ms: one click does not split a pause
    return smooth < thr


def pause_runs(quiet: np.ndarray, min_pause: float) -> list[tuple[float, float]]:
    """(start, end) seconds of runs of quiet frames at least *min_pause* long."""
    if quiet.size == 0:
        return []
    d = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    on, off = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    min_len = int(round(min_pause / HOP))
    return [(a * HOP, b * HOP) for a, b in zip(on, off) if b - a >= min_len]


def keep_out_of_pauses(
    s: np.ndarray, e: np.ndarray, pauses: list[tuple[float, float]], duration: float, options: TimingOptions
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Boundaries inside a pause move to its edge; words wholly inside one move next to the speech."""
    s, e = s.copy(), e.copy()
    stats = {"starts_out_of_pauses": 0, "ends_out_of_pauses": 0, "words_out_of_pauses": 0}
    if not pauses:
        return s, e, stats
    p0 = np.array([a for a, _ in pauses])
    p1 = np.array([b for _, b in pauses])

    def pause_at(t: float) -> int:
        i = int(np.searchsorted(p0, t, side="right")) - 1
        return i if i >= 0 and t < p1[i] else -1

    for i in range(s.size):
        k0, k1 = pause_at(s[i] + 1e-6), pause_at(e[i] - 1e-6)
        if k0 >= 0 and k0 == k1:  # the whole word is in one pause: put it at the nearer speech edge
            dur = max(options.min_word, min(e[i] - s[i], 0.15))  # a short stay: it borrows its neighbour's speech
            mid = (s[i] + e[i]) / 2
            if (mid - p0[k0] <= p1[k0] - mid and p0[k0] > 0) or p1[k0] >= duration:
                s[i], e[i] = max(0.0, p0[k0] - dur), p0[k0]
            else:
                s[i], e[i] = p1[k0], min(duration, p1[k0] + dur)
            stats["words_out_of_pauses"] += 1
            continue
        if k0 >= 0 and p1[k0] < e[i]:
            s[i] = p1[k0]
            stats["starts_out_of_pauses"] += 1
        if k1 >= 0 and p0[k1] > s[i]:
            e[i] = p0[k1]
            stats["ends_out_of_pauses"] += 1
    return s, e, stats


def order_words(s: np.ndarray, e: np.ndarray, duration: float, min_word: float) -> tuple[np.ndarray, np.ndarray]:
    """Monotonic starts, no overlaps (an overlap is split in the middle), all inside [0, duration]."""
    s = np.clip(s.astype(float), 0.0, duration)
    e = np.clip(np.maximum(e.astype(float), s), 0.0, duration)
    for i in range(s.size):
        if i:
            s[i] = max(s[i], s[i - 1])
            if s[i] < e[i - 1]:
                cut = (s[i] + e[i - 1]) / 2 if e[i - 1] <= e[i] else s[i]
                e[i - 1] = max(s[i - 1], cut)
                s[i] = max(s[i], e[i - 1])
        e[i] = max(e[i], s[i])
        if e[i] - s[i] < min_word:  # room permitting, give the word a visible duration
            limit = s[i + 1] if i + 1 < s.size else duration
            e[i] = max(e[i], min(s[i] + min_word, limit))
    return s, e
