"""Caption errors, :class:`CaptionOptions` (the Netflix/BBC rules) and text joining shared by the stage."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigurationError, VidtransError

#: timing tolerance: times are written with millisecond precision
_TOL = 0.0015


# --------------------------------------------------------------------------- errors
class CaptionError(VidtransError):
    """Problem building, writing or reading captions."""

    exit_code = 2


class InvalidTranscriptError(CaptionError, ValueError):
    """The transcript cannot be captioned (bad word times, wrong type)."""


class CaptionFileError(CaptionError):
    """A caption file is missing, unreadable or not in the expected format."""


class UnknownFormatError(ConfigurationError):
    """A caption format name that no writer handles."""


class CaptionOptionsError(ConfigurationError, ValueError):
    """Caption options that cannot work."""


# --------------------------------------------------------------------------- options
@dataclass
class CaptionOptions:
    """Caption rules; the defaults are the Netflix / BBC timed-text guidelines."""

    #: longest line in characters (Netflix: 42 for Latin scripts)
    max_chars_per_line: int = 42
    #: most lines in one cue
    max_lines: int = 2
    #: shortest time a cue stays on screen, seconds (Netflix: 5/6 s = 20 frames)
    min_duration: float = 5 / 6
    #: longest time a cue stays on screen, seconds
    max_duration: float = 7.0
    #: reading speed limit in characters per second (spaces included; Netflix adult: 20)
    max_cps: float = 20.0
    #: start a new cue after a silence at least this long (seconds); None = never.  Not done
    #: when the words before the silence could then not be shown for ``min_duration``
    pause_threshold: float | None = 0.4
    #: prefer cue and line breaks after sentence/clause punctuation
    break_at_punctuation: bool = True
    #: smallest gap between consecutive cues, seconds (2 frames at 24 fps)
    min_gap: float = 2 / 24
    #: gaps shorter than this are closed down to ``min_gap`` by extending the
    #: earlier cue (avoids flicker; Netflix: 12 frames ≈ 0.5 s); 0 = off
    close_gap: float = 0.5
    #: extend a cue into the silence after it to meet ``min_duration`` and ``max_cps``
    extend_for_reading: bool = True
    #: when a cue still lacks reading time, the next cue may appear up to this long after its
    #: speech starts (seconds), and so on down a chain of cues (fast speech is shown slightly
    #: behind and catches up at the next pause); never more.  1.0 s: chosen leave-one-clip-out
    #: over the demo and 9 AMI clips with 5 diarizations each (bench/captions.py); 95 % of cues
    #: then start within 0.7 s of their speech, most (86 %) on it
    max_start_delay: float = 1.0
    #: the last cue may stay on screen after the media ends when speech runs up to the end and the
    #: cue needs the time to be read (players keep the last frame and its caption on screen);
    #: False ends every cue by ``Transcript.duration``
    hold_last_cue: bool = True
    #: speaker labels: "off", "on", or "auto" (on when the transcript has more than one speaker)
    speaker_labels: str = "auto"
    #: display name for a raw speaker label (e.g. {"SPEAKER_00": "Alice"}); others use ``speaker_format``
    speaker_names: dict[str, str] = field(default_factory=dict)
    #: display name of unnamed speakers; ``{n}`` = order of first appearance (1-based), ``{label}`` = raw label
    speaker_format: str = "Speaker {n}"
    #: TXT writer: start a new paragraph after a silence at least this long (seconds)
    paragraph_gap: float = 2.0
    #: dialogue: two speakers' short turns may share a cue, one line each with a leading dash
    #: (Netflix/BBC dual-speaker cues; WebVTT voice span per line), where that makes them readable
    dialogue_cues: bool = True
    #: longest silence between the two turns of a dialogue cue, seconds
    dialogue_max_gap: float = 1.5
    #: show the emotion of the speech (``Segment.emotion``, majority over the cue's words): "class"
    #: wraps WebVTT cue text in ``<c.LABEL>…</c>`` (style it with ``::cue(.LABEL)``; LABEL made a
    #: valid class name), "tag" prefixes ``[LABEL] `` to the cue text in every format; None = off
    emotion_captions: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> CaptionOptions:
        """Raise :class:`CaptionOptionsError` when the options cannot work together."""
        def bad(msg: str) -> CaptionOptionsError:
            return CaptionOptionsError(f"invalid caption options: {msg}")

        if isinstance(self.speaker_labels, bool):
            self.speaker_labels = "on" if self.speaker_labels else "off"
        if not isinstance(self.max_chars_per_line, int) or self.max_chars_per_line < 1:
            raise bad(f"max_chars_per_line must be a positive integer, got {self.max_chars_per_line!r}")
        if not isinstance(self.max_lines, int) or self.max_lines < 1:
            raise bad(f"max_lines must be a positive integer, got {self.max_lines!r}")
        for name in ("min_duration", "max_duration", "max_cps", "min_gap", "close_gap", "paragraph_gap",
                     "dialogue_max_gap", "max_start_delay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise bad(f"{name} must be a finite number >= 0, got {v!r}")
        if self.max_duration <= 0 or self.max_cps <= 0:
            raise bad("max_duration and max_cps must be > 0")
        if self.min_duration > self.max_duration:
            raise bad(f"min_duration ({self.min_duration}) exceeds max_duration ({self.max_duration})")
        if self.pause_threshold is not None and (
            not isinstance(self.pause_threshold, (int, float)) or not self.pause_threshold > 0
        ):
            raise bad(f"pause_threshold must be > 0 or None, got {self.pause_threshold!r}")
        if self.emotion_captions not in (None, "class", "tag"):
            raise bad(f"emotion_captions must be 'class', 'tag' or None, got {self.emotion_captions!r}")
        if self.speaker_labels not in ("off", "on", "auto"):
            raise bad(f"speaker_labels must be 'off', 'on' or 'auto', got {self.speaker_labels!r}")
        try:
            self.speaker_format.format(n=1, label="X")
        except (KeyError, IndexError, ValueError) as exc:
            raise bad(f"speaker_format {self.speaker_format!r} may only use {{n}} and {{label}}") from exc
        return self



#: scripts written without spaces between words (CJK, kana, Thai, Lao, Myanmar, Khmer) and CJK punctuation
_NO_SPACE = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
)


_NO_SPACE_SPLIT = re.compile(f"{_NO_SPACE.pattern}|(?:(?!{_NO_SPACE.pattern}).)+")


def _sep(left: str, right: str) -> str:
    """What goes between two words or lines: nothing between two no-space-script characters, else a space."""
    return "" if left and right and _NO_SPACE.match(left[-1]) and _NO_SPACE.match(right[0]) else " "


def _join(parts: Sequence[str]) -> str:
    """Join words or lines as the script writes them (spaces, except inside CJK/Thai text)."""
    out = ""
    for p in parts:
        out = p if not out else out + _sep(out, p) + p
    return out

