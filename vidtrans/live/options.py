"""Options of the live-captioning stage (one dataclass; CLI flags and notebook parameters share its names)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigurationError


@dataclass
class LiveOptions:
    """How :func:`vidtrans.live.run_live` listens, decodes, labels speakers and writes."""

    # -- model ------------------------------------------------------------------
    #: Whisper model: "tiny.en" (default: the fastest that ships offline), "base", a model dir, ...
    model: str = "tiny.en"
    #: smaller model to switch to when decoding cannot keep up; "auto" = tiny.en for English
    #: when the main model is larger, None = never switch (only longer steps)
    fallback_model: str | None = "auto"
    #: spoken language; None = "en" for English-only models, else detected on the first speech
    language: str | None = None
    #: "auto" (CUDA when CTranslate2 sees a GPU), "cpu" or "cuda"
    device: str = "auto"
    #: CTranslate2 compute type; "default" = int8 on CPU, float16 on GPU
    compute_type: str = "default"
    #: CPU threads for decoding; 0 = all cores this process may use
    cpu_threads: int = 0
    #: beam width (1 = greedy: the decode runs many times a second, speed matters most)
    beam_size: int = 1
    #: size Whisper's encoder input to the buffer (+2 s, rounded up to 5 s) instead of padding
    #: it to 30 s: 3-5x less encoder work per decode (see ``bench/live.py`` for the WER cost)
    short_context: bool = True

    # -- streaming ----------------------------------------------------------------
    #: seconds of new audio between two decodes: the first step, and the fixed step when
    #: ``adaptive_step`` is off (the self-monitor may lengthen it up to ``max_step``)
    step: float = 1.0
    #: live sources: the step follows the decode time (``step_factor`` x the recent decode
    #: seconds, between ``min_step`` and ``max_step``), so a fast decoder decodes more often
    #: and LocalAgreement-2 commits sooner; a slow one steps longer and keeps up
    adaptive_step: bool = True
    #: shortest adaptive step (s).  Shorter steps cut the algorithmic latency only a little and cost
    #: WER (bench/live.py, deterministic fixed-step runs over the English clips with tiny.en: step
    #: 1.0 s 11.0 % WER, 1.37 s median; 0.5 s 18.7 %; 0.5 s with 1 s right context and a 1 s
    #: agreement gap 12.6 %, 1.28 s), so by default the step only grows when decoding is slow
    min_step: float = 1.0
    #: adaptive step = this x recent decode seconds; 1 / step_factor is the decode ratio it aims at
    step_factor: float = 1.5
    #: LocalAgreement-2 commits an agreed word only once the newer decode heard this much audio
    #: after it (s): with short steps two decodes can agree on a word cut off at the buffer end
    #: (the fixed 1 s step gave every committed word about 1 s of right context)
    min_right_context: float = 0.0
    #: LocalAgreement-2 compares the new hypothesis with the latest one decoded at least this many
    #: audio seconds earlier (0 = the previous one): short steps then commit as often as they decode
    #: but on the evidence of two decodes ~1 s apart, as with the fixed 1 s step
    agreement_gap: float = 1.0
    #: longest step the self-monitor may choose
    max_step: float = 3.0
    #: decode seconds per audio second above which the self-monitor lengthens the step, then
    #: switches to ``fallback_model`` (only for live sources: microphone, URL, file with ``realtime``)
    max_decode_ratio: float = 0.8
    #: a pending (tentative) word that ends this long before the newest audio (s) is committed even
    #: when two decodes did not agree on it: it has been decoded with this much audio after it, as
    #: well as it will be, and waiting longer only adds latency (overlapping or fast speech can
    #: keep the hypothesis head changing for 10+ s); 0 = only agreement, pauses and a full buffer
    max_pending: float = 3.0
    #: the audio buffer is cut at the last committed sentence end once it is longer than this (s)
    trim_seconds: float = 6.0
    #: the buffer never grows past this (s): cut at the last committed word (or commit what is
    #: stable) so a decode costs the same after an hour as after a minute
    max_buffer: float = 15.0
    #: characters of committed text given to Whisper as the prompt
    prompt_chars: int = 200
    #: Silero VAD speech probability threshold; audio without speech is never decoded
    vad_threshold: float = 0.5
    #: after this much silence (s) following speech the pending hypothesis is committed
    #: (end of an utterance); 0 = only LocalAgreement commits
    silence_flush: float = 0.5
    #: read a file source at real-time pace (a file is read as fast as possible otherwise)
    realtime: bool = False
    #: a live source that delivers nothing for this long (s) is treated as ended
    stall_timeout: float = 10.0
    #: seconds of audio per read from the source
    chunk_seconds: float = 0.1

    # -- speakers ---------------------------------------------------------------------
    #: label speakers live (CAM++ embeddings of 1.5 s stretches matched to the voices seen so far)
    speakers: bool = True
    #: cosine similarity at or above which a stretch belongs to a known voice
    speaker_threshold: float = 0.6
    #: a stretch updates its voice's centroid only when it matches by this much above the threshold
    speaker_update_margin: float = 0.05
    #: most voices told apart; further new voices go to the closest known one
    max_speakers: int = 8
    #: consecutive stretches of an unknown voice needed to open a new speaker
    new_speaker_windows: int = 2
    #: embedding window and hop (s)
    speaker_window: float = 1.5
    speaker_hop: float = 0.5
    #: a committed word ending up to this far (s) past the settled speaker timeline is labelled from
    #: the latest embedded window (which heard up to ``speaker_window / 2 - speaker_hop / 2`` s past
    #: it) instead of waiting in the lag buffer, unless a new voice is being decided; 0 = always wait
    speaker_lookahead: float = 0.5
    #: name -> reference clip (3 s or more of that voice); matched stretches take the name
    enroll: dict[str, str] = field(default_factory=dict)
    #: torch threads for the speaker model; 0 = leave torch's setting alone
    speaker_threads: int = 1

    # -- output -------------------------------------------------------------------------
    #: voice spans in the VTT: "auto" (on when speakers are labelled), "on" or "off"
    speaker_labels: str = "auto"

    def validate(self) -> LiveOptions:
        def bad(msg: str) -> ConfigurationError:
            return ConfigurationError(f"invalid live options: {msg}")

        for name in ("step", "max_step", "trim_seconds", "max_buffer", "stall_timeout", "chunk_seconds",
                     "speaker_window", "speaker_hop", "max_decode_ratio", "min_step", "step_factor"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise bad(f"{name} must be a positive number, got {v!r}")
        if self.max_step < self.step:
            raise bad(f"max_step ({self.max_step}) is shorter than step ({self.step})")
        if self.adaptive_step and self.min_step > self.max_step:
            raise bad(f"min_step ({self.min_step}) is longer than max_step ({self.max_step})")
        if self.step_factor < 1:
            raise bad(f"step_factor must be >= 1 (a step shorter than a decode cannot keep up), got {self.step_factor!r}")
        if self.max_buffer > 28 or self.max_buffer < self.trim_seconds:
            raise bad(f"max_buffer must be between trim_seconds ({self.trim_seconds}) and 28 s (Whisper sees 30 s)")
        if self.agreement_gap < 0:
            raise bad(f"agreement_gap must be >= 0, got {self.agreement_gap!r}")
        if self.min_right_context < 0:
            raise bad(f"min_right_context must be >= 0, got {self.min_right_context!r}")
        if self.silence_flush < 0:
            raise bad(f"silence_flush must be >= 0, got {self.silence_flush!r}")
        if not 0 < self.vad_threshold < 1:
            raise bad(f"vad_threshold must be in (0, 1), got {self.vad_threshold!r}")
        if not -1 <= self.speaker_threshold <= 1:
            raise bad(f"speaker_threshold must be a cosine similarity in [-1, 1], got {self.speaker_threshold!r}")
        if not isinstance(self.beam_size, int) or self.beam_size < 1:
            raise bad(f"beam_size must be a positive integer, got {self.beam_size!r}")
        if not isinstance(self.max_speakers, int) or self.max_speakers < 1:
            raise bad(f"max_speakers must be a positive integer, got {self.max_speakers!r}")
        if not isinstance(self.new_speaker_windows, int) or self.new_speaker_windows < 1:
            raise bad(f"new_speaker_windows must be a positive integer, got {self.new_speaker_windows!r}")
        if not 0 <= self.speaker_lookahead <= self.speaker_window:
            raise bad(f"speaker_lookahead must be between 0 and speaker_window, got {self.speaker_lookahead!r}")
        if self.speaker_hop > self.speaker_window:
            raise bad("speaker_hop must not exceed speaker_window")
        if self.speaker_labels not in ("auto", "on", "off"):
            raise bad(f"speaker_labels must be 'auto', 'on' or 'off', got {self.speaker_labels!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.cpu_threads < 0 or self.speaker_threads < 0:
            raise bad("cpu_threads and speaker_threads must be >= 0")
        return self
