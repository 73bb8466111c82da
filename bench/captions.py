"""Caption quality/speed: vidtrans.captions vs openai-whisper's subtitle writer on the same real transcripts.

Second part (issue 9): conversational speech with speakers -- the `make demo` job (pyannote sample,
offline diarization, defaults) and the AMI clips of ../shared/eval/diar with their reference RTTM
speakers applied to a base-model transcript -- scored per cue: hard rules (line length, lines,
max duration, overlap, min gap) and soft rules (min duration, reading speed), for vidtrans with
speakers, vidtrans with one speaker per cue (no dialogue cues), vidtrans without speakers, and
openai-whisper's writer on the same speaker-split segments.  Run: python bench/captions.py [--fast]
"""
import io, sys, time
from pathlib import Path
import torch; torch.set_num_threads(1)
from vidtrans import captions as C
from vidtrans.demo import sample_dir
from vidtrans.schema import Transcript, Segment, Word
from vidtrans.transcribe import TranscribeOptions, transcribe
from whisper.utils import get_writer

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
items = [("pyannote sample (tiny.en)", sample_dir() / "sample.wav", "tiny.en", None)]
if (EVAL / "manifest.json").exists():
    items += [("sonnet 53 s (base)", EVAL / "asr/en_librivox_shakespeare_sonnet001.mp3", "base", "en"),
              ("german 68 s (base)", EVAL / "asr/de_librivox_grimmelshausen_simplicissimus_title.mp3", "base", "de")]

def whisper_vtt(t: Transcript) -> str:
    result = {"language": t.language, "text": t.text, "segments": [
        {"start": s.start, "end": s.end, "text": s.text,
         "words": [{"word": " " + w.text.strip(), "start": w.start, "end": w.end} for w in s.words]} for s in t.segments]}
    w = get_writer("vtt", "/tmp")
    buf = io.StringIO()
    w.write_result(result, buf, {"max_line_width": 42, "max_line_count": 2, "highlight_words": False})
    return buf.getvalue()

def row(name, vtt, secs):
    rep = C.validate_vtt(vtt)
    s = rep.readability.summary
    bad = sum(1 for c in rep.readability.cues if c.violations)
    return f"  {name:22} cues={len(rep.readability.cues):3d} cues_with_violations={bad:3d} errors={len(rep.errors)} " \
           f"{ {k: v for k, v in s.items() if v} } build={secs*1000:.1f} ms"

transcripts = []
for label, path, model, lang in items:
    t = transcribe(path, TranscribeOptions(model=model, language=lang, cpu_threads=1))
    transcripts.append(t)
    print(label, f"{len(t.words)} words")
    t0 = time.perf_counter(); cues = C.build_cues(t); a = time.perf_counter() - t0
    print(row("vidtrans", C.to_vtt(cues), a))
    t0 = time.perf_counter(); v = whisper_vtt(t); b = time.perf_counter() - t0
    print(row("openai-whisper writer", v, b))

# speed on one hour: the real words repeated
base = transcripts[0]
segs, off = [], 0.0
while off < 3600:
    for s in base.segments:
        segs.append(Segment(s.start + off, s.end + off, s.text, words=tuple(Word(w.start + off, w.end + off, w.text) for w in s.words)))
    off += 31.0
hour = Transcript(segments=tuple(segs))
print(f"1 h synthetic ({len(hour.words)} words):")
t0 = time.perf_counter(); cues = C.build_cues(hour); a = time.perf_counter() - t0
print(row("vidtrans", C.to_vtt(cues), a))
t0 = time.perf_counter(); v = whisper_vtt(hour); b = time.perf_counter() - t0
print(row("openai-whisper writer", v, b))


# --------------------------------------------------------------------------- conversational speech with speakers
from vidtrans.diarize import assign_speakers
from vidtrans.pipeline import PipelineOptions, run
from vidtrans.schema import SpeakerTurn

HARD = {"max_chars_per_line", "max_lines", "max_duration", "overlap", "min_gap"}
SOFT = {"min_duration", "max_cps"}


def rttm_turns(path):
    out = []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) > 7 and f[0] == "SPEAKER":
            out.append(SpeakerTurn(float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return out


def score(vtt):
    cues = C.validate_vtt(vtt).readability.cues
    return (len(cues), sum(1 for c in cues if set(c.violations) & HARD), sum(1 for c in cues if set(c.violations) & SOFT))


import tempfile

conv = []  # (group, clip, transcript with speakers, transcript without)
with tempfile.TemporaryDirectory() as tmp:
    r = run(str(sample_dir() / "sample.wav"), PipelineOptions(out_dir=tmp, cpu_threads=1, formats=("json",)))
    conv.append(("demo", "make demo (diarized)", r.transcript, r.transcript))
if (EVAL / "manifest.json").exists():
    clips = ["dev00", "dev01"] + ([] if "--fast" in sys.argv else ["trn00", "trn03", "trn04", "trn05", "trn06", "trn08", "trn09"])
    for k in clips:
        t = transcribe(EVAL / "diar" / f"ami_{k}.flac", TranscribeOptions(model="base", cpu_threads=1))
        conv.append(("AMI dev" if k.startswith("dev") else "AMI other", f"AMI {k} (ref. speakers)",
                     assign_speakers(t, rttm_turns(EVAL / "diar" / f"ami_{k}.rttm")), t))

systems = {
    "vidtrans, speakers": lambda ts, t: C.to_vtt(C.build_cues(ts)),
    "vidtrans, 1 speaker/cue": lambda ts, t: C.to_vtt(C.build_cues(ts, C.CaptionOptions(dialogue_cues=False))),
    "vidtrans, no speakers": lambda ts, t: C.to_vtt(C.build_cues(t.replace(segments=tuple(
        Segment(s.start, s.end, s.text, words=tuple(Word(w.start, w.end, w.text, w.probability) for w in s.words))
        for s in t.segments)))),
    "openai-whisper writer": lambda ts, t: whisper_vtt(ts),
}
print("\nConversational speech with speakers: cues / hard-rule cues / soft-rule cues (min duration, cps)")
totals = {}
for group, clip, ts, t in conv:
    print(clip)
    for name, fn in systems.items():
        n, h, s = score(fn(ts, t))
        print(f"  {name:24} cues={n:3d} hard={h:2d} soft={s:2d} ({100 * s / max(n, 1):4.1f} %)")
        for g in (group, "target (demo + AMI dev)" if group != "AMI other" else None, "all"):
            if g:
                a = totals.setdefault((g, name), [0, 0, 0])
                a[0] += n; a[1] += h; a[2] += s
print("totals")
for (g, name), (n, h, s) in totals.items():
    print(f"  {g:24} {name:24} cues={n:3d} hard={h:2d} soft={s:2d} ({100 * s / max(n, 1):4.1f} %)")
