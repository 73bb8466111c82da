"""Live captions: a microphone, a live stream or a file -> committed words with speakers, VTT and a word log.

>>> from vidtrans.live import run_live, LiveOptions
>>> result = run_live("talk.wav", out="live.vtt", events="words.jsonl",
...                   options=LiveOptions(model="tiny.en", realtime=True))   # doctest: +SKIP
>>> result.text, result.talk_time                                              # doctest: +SKIP

The pieces (each usable on its own):

* :mod:`.sources` — :func:`open_source` for ``mic[:device]``, URLs read by
  ffmpeg (HLS/RTMP/RTSP/HTTP...) and files (real-time pace or as fast as possible);
* :mod:`.streaming` — :class:`StreamingTranscriber`: VAD-gated LocalAgreement-2
  over faster-whisper word timestamps, append-only committed words,
  bounded buffer, self-monitoring of decode speed;
* :mod:`.speakers` — :class:`LiveSpeakers`: CAM++ embeddings of 1.5 s stretches
  matched online against the voices seen so far (and enrolled ones);
* :mod:`.output` — :class:`LiveVttWriter` (a WebVTT file valid whenever it is
  read) and :class:`EventWriter` (one JSON line per committed word).

:func:`run_live` wires them: a reader thread pulls audio from the source,
the main loop decodes every ``step`` seconds, labels committed words with
speakers once the speaker timeline covers them (a lag buffer holds the newer
ones), appends them to the word log and the VTT, and calls ``on_update``.
A live source that stalls for ``stall_timeout`` seconds, ends, or is stopped
(``stop`` event, Ctrl-C) ends the run cleanly: the pending hypothesis is
committed and both files are flushed.
"""

from __future__ import annotations

import logging
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..captions import CaptionOptions
from ..schema import Segment, Transcript, Word, join_words
from .options import LiveOptions
from .output import EventWriter, LiveVttWriter, read_events
from .sources import FileSource, MicSource, SourceError, UrlSource, open_source
from .speakers import EnrollmentError, LiveSpeakers, enroll_voices
from .streaming import SAMPLE_RATE, LiveEngineError, StreamingTranscriber, VadTracker, load_whisper

log = logging.getLogger(__name__)

__all__ = [
    "EnrollmentError", "EventWriter", "FileSource", "LiveEngineError", "LiveOptions", "LiveResult",
    "LiveSpeakers", "LiveState", "LiveVttWriter", "MicSource", "SourceError", "StreamingTranscriber",
    "UrlSource", "VadTracker", "enroll_voices", "load_whisper", "open_source", "read_events", "run_live",
]

_END = object()
#: seconds a word may wait for the first voice to be identified before it is written without a speaker
_FIRST_VOICE_WAIT = 3.0


@dataclass(frozen=True)
class LiveState:
    """A snapshot handed to ``on_update`` after every step."""

    #: audio seconds received / wall seconds since the stream started
    audio_seconds: float
    wall_seconds: float
    #: words written this step (committed, with speakers)
    new_words: tuple[Word, ...]
    #: all words written so far
    committed: int
    #: text of the current uncommitted hypothesis (may still change)
    tentative: str
    #: committed words waiting for the speaker timeline
    lagging: int
    talk_time: dict[str, float]
    model: str
    step: float
    decode_ratio: float
    buffer_seconds: float
    #: median commit latency so far (committed_at - end), seconds
    latency_median: float | None
    #: set on the last update
    finished: bool = False


@dataclass
class LiveResult:
    """What a live run produced."""

    words: list[Word]
    #: committed_at (wall seconds since the stream started) of each word
    committed_at: list[float]
    talk_time: dict[str, float]
    audio_seconds: float
    wall_seconds: float
    #: (audio time, old model, new model) switches made by the self-monitor
    switches: list[tuple[float, str, str]]
    #: the source went silent for stall_timeout and was closed
    stalled: bool
    model: str
    language: str | None
    #: per-decode statistics: audio_end, buffer_seconds, new_audio, decode_seconds, model
    decodes: list[dict[str, Any]] = field(default_factory=list)
    vtt: Path | None = None
    events: Path | None = None
    adaptations: list[str] = field(default_factory=list)
    #: wall seconds each word waited in the speaker lag buffer after the transcriber committed it
    speaker_waits: list[float] = field(default_factory=list)
    #: wall seconds from opening the source to the start of its first audio (not part of
    #: ``committed_at``, which counts from the stream's first sample)
    start_delay: float = 0.0

    @property
    def text(self) -> str:
        return join_words(self.words)

    @property
    def latencies(self) -> list[float]:
        """committed_at - end of each word (seconds)."""
        return [c - w.end for w, c in zip(self.words, self.committed_at)]

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(w.speaker for w in self.words if w.speaker))

    @property
    def rtf(self) -> float:
        """Seconds spent decoding per second of audio."""
        return sum(d["decode_seconds"] for d in self.decodes) / self.audio_seconds if self.audio_seconds else 0.0

    def transcript(self) -> Transcript:
        """The committed words as a :class:`Transcript` (one segment per run of one speaker)."""
        segs: list[list[Word]] = []
        for w in self.words:
            if segs and segs[-1][-1].speaker == w.speaker and w.start - segs[-1][-1].end < 1.0:
                segs[-1].append(w)
            else:
                segs.append([w])
        return Transcript(
            segments=tuple(Segment(s[0].start, s[-1].end, join_words(s), words=tuple(s), speaker=s[0].speaker) for s in segs),
            language=self.language, engine="faster-whisper-live", model=self.model, duration=self.audio_seconds,
            meta={"live": {"switches": self.switches, "stalled": self.stalled, "talk_time": self.talk_time}},
        )


def _feed(src, q: queue.Queue, stop: threading.Event, started: list[float]) -> None:
    try:
        for block in src:
            if stop.is_set():
                break
            if not started:  # the stream began when the first block's first sample was captured
                started.append(time.monotonic() - np.asarray(block).size / SAMPLE_RATE)
            q.put(block)
    except BaseException as exc:  # handed to the main loop, which re-raises it
        q.put(exc)
    finally:
        q.put(_END)


def _take(item: Any, blocks: list[np.ndarray]) -> bool:
    """Add a queue item to *blocks*; True at the end of the stream; re-raise a source failure."""
    if item is _END:
        return True
    if isinstance(item, BaseException):
        raise item
    blocks.append(item)
    return False


def run_live(
    source: Any,
    out: str | os.PathLike | None = None,
    events: str | os.PathLike | None = None,
    options: LiveOptions | None = None,
    *,
    caption_options: CaptionOptions | None = None,
    on_update: Callable[[LiveState], None] | None = None,
    stop: threading.Event | None = None,
    transcriber: StreamingTranscriber | None = None,
    speakers: LiveSpeakers | None = None,
) -> LiveResult:
    """Caption *source* live (``mic[:dev]``, a URL, a media file, or a source object).

    *out*: WebVTT file appended cue by cue; *events*: JSON-lines word log.
    *transcriber* / *speakers* may be passed in to reuse loaded models.
    """
    o = (options or LiveOptions()).validate()
    src = open_source(source, realtime=o.realtime, chunk_seconds=o.chunk_seconds) if isinstance(source, (str, os.PathLike)) else source
    tr = transcriber or StreamingTranscriber(o)
    spk = speakers if speakers is not None else (LiveSpeakers(o, tr.vad) if o.speakers else None)
    labels = o.speaker_labels == "on" or (o.speaker_labels == "auto" and spk is not None)
    copts = caption_options or CaptionOptions()
    vtt = LiveVttWriter(out, copts, labels=labels) if out else None
    ev = EventWriter(events) if events else None
    live = bool(getattr(src, "live", False))
    pause = copts.pause_threshold or 0.4

    words: list[Word] = []
    committed_at: list[float] = []
    lag: list[Word] = []
    lag_since: list[float] = []  # wall time each lagging word was committed by the transcriber
    speaker_waits: list[float] = []
    adaptations: list[str] = []
    stalled = False
    stop = stop or threading.Event()
    feeder_stop = threading.Event()
    q: queue.Queue = queue.Queue() if live else queue.Queue(maxsize=max(int(5 / o.chunk_seconds), 4))
    t_open = time.monotonic()
    started: list[float] = []
    feeder = threading.Thread(target=_feed, args=(src, q, feeder_stop, started), name="vidtrans-live-source", daemon=True)
    feeder.start()

    def since_start(t: float) -> float:
        """Wall seconds since the stream started (its first sample; opening the source does not count)."""
        return t - (started[0] if started else t_open)

    def hold(new: list[Word]) -> None:
        lag.extend(new)
        lag_since.extend([time.monotonic()] * len(new))

    def release(final: bool = False) -> list[Word]:
        nonlocal lag, lag_since
        if spk is None:
            out_words, lag = lag, []
        else:
            k = len(lag) if final else next((i for i, w in enumerate(lag) if w.end > spk.labelled_until + 0.05), len(lag))
            out_words = []
            for w in lag[:k]:
                who = spk.speaker_of(w)
                if who is None and not final and not spk.speakers and tr.audio_end - w.end < _FIRST_VOICE_WAIT:
                    break  # no voice known yet: wait a little for the first one rather than write no speaker
                out_words.append(replace(w, speaker=who))
            lag = lag[len(out_words):]
        if out_words:
            mono = time.monotonic()
            speaker_waits.extend(round(mono - s, 3) for s in lag_since[: len(out_words)])
            lag_since = lag_since[len(out_words):]
            now = since_start(mono)
            words.extend(out_words)
            committed_at.extend([now] * len(out_words))
            if ev:
                ev.write(out_words, now, tr.audio_end)
            if vtt:
                vtt.add(out_words)
        return out_words

    def feed_audio(audio: np.ndarray) -> None:
        if audio.size:
            tr.insert(audio)
            if spk is not None:
                spk.insert(audio)

    def horizon() -> float:
        cands = [tr.audio_end]
        if lag:
            cands.append(lag[0].start)
        if tr.tentative:
            cands.append(tr.tentative[0].start)
        return min(cands)

    def notify(new: list[Word], finished: bool = False) -> None:
        if on_update is None:
            return
        lat = [c - w.end for w, c in zip(words[-500:], committed_at[-500:])]
        on_update(LiveState(
            audio_seconds=round(tr.audio_end, 3), wall_seconds=round(since_start(time.monotonic()), 3), new_words=tuple(new),
            committed=len(words), tentative=join_words(tr.tentative), lagging=len(lag),
            talk_time=spk.talk_time if spk else {}, model=tr.model_name, step=tr.step,
            decode_ratio=round(tr.decode_ratio, 3), buffer_seconds=round(tr.buffer_seconds, 2),
            latency_median=round(statistics.median(lat), 3) if lat else None, finished=finished,
        ))

    ended = False
    failure: BaseException | None = None
    try:
        while not ended:
            blocks: list[np.ndarray] = []
            have = 0
            need = int(tr.step * SAMPLE_RATE)
            last_audio = time.monotonic()
            while have < need and not ended:
                if stop.is_set():
                    ended = True
                    break
                try:
                    item = q.get(timeout=0.25)
                except queue.Empty:
                    if live and time.monotonic() - last_audio > o.stall_timeout:
                        log.warning("live: no audio from %s for %.0f s; ending", getattr(src, "description", src), o.stall_timeout)
                        stalled = True
                        ended = True
                    continue
                ended = _take(item, blocks)
                have = sum(b.size for b in blocks)
                last_audio = time.monotonic()
            while live and not ended:  # take everything that has arrived meanwhile (decoding was slow)
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                ended = _take(item, blocks)
            audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
            if ended and not audio.size:
                break
            # a backlog (decoding was slower than speech) goes in as several steps, so the
            # buffer never jumps past what one decode can cover and no audio is skipped
            piece = int(max(o.max_buffer - o.trim_seconds, o.step) * SAMPLE_RATE)
            new = []
            for i in range(0, max(audio.size, 1), piece):
                feed_audio(audio[i : i + piece])
                hold(tr.process())
                if spk is not None:
                    new += release()  # words the speaker timeline already covers go out before it is extended
                    spk.update()
                new += release()
            if vtt:
                close_last = not lag and tr.quiet and tr.audio_end - (words[-1].end if words else 0.0) >= pause
                vtt.emit(horizon(), close_last=close_last)
            if live:
                change = tr.adapt()
                if change:
                    log.info("live: %s", change)
                    adaptations.append(f"{tr.audio_end:.1f} s: {change}")
            notify(new)
            if ended:
                break
    except KeyboardInterrupt:
        log.info("live: interrupted; flushing what is committed")
    except BaseException as exc:
        failure = exc
    finally:
        feeder_stop.set()
        src.close()
        if failure is None:
            try:
                hold(tr.finish())
            except BaseException as exc:  # still write what was committed before
                failure = exc
        if spk is not None:
            spk.update(final=True)
        new = release(final=True)
        if vtt:
            vtt.close(horizon=tr.audio_end)
        if ev:
            ev.close()
        feeder.join(timeout=5)
    if failure is not None:
        raise failure
    notify(new, finished=True)
    return LiveResult(
        words=words, committed_at=[round(c, 3) for c in committed_at], talk_time=spk.talk_time if spk else {},
        audio_seconds=round(tr.audio_end, 3), wall_seconds=round(since_start(time.monotonic()), 3),
        switches=list(tr.switches), stalled=stalled, model=tr.model_name, language=tr.language,
        decodes=[d.__dict__.copy() for d in tr.history], vtt=Path(out) if out else None,
        events=Path(events) if events else None, adaptations=adaptations, speaker_waits=speaker_waits,
        start_delay=round(max(started[0] - t_open, 0.0), 3) if started else 0.0,
    )
