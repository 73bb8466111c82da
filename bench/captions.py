"""Caption quality/speed: vidtrans.captions vs openai-whisper's subtitle writer on the same real transcripts.

Second part (issue 9): conversational speech with speakers -- the `make demo` job (pyannote sample,
offline diarization, defaults) and the AMI clips of ../shared/eval/diar through the same job (its
own diarization) and with their reference RTTM speakers on the same words -- scored per clip and
cue: hard rules (line length, lines, max duration, overlap, min gap) and soft rules (min duration,
reading speed), for vidtrans with speakers, vidtrans with one speaker per cue (no dialogue cues),
vidtrans without speakers, and openai-whisper's writer on the same speaker-split segments; then
how late cues start and the leave-one-clip-out choice of max_start_delay.
Run: python bench/captions.py [--fast]
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
    conv.append(("demo", "demo", r.transcript, r.transcript))
    if (EVAL / "manifest.json").exists():
        clips = ["dev00", "dev01"] + ([] if "--fast" in sys.argv else ["trn00", "trn03", "trn04", "trn05", "trn06", "trn08", "trn09"])
        for k in clips:
            # the main job (vidtrans' own diarization), and the same words with the reference speakers
            r = run(str(EVAL / "diar" / f"ami_{k}.flac"), PipelineOptions(out_dir=tmp, cpu_threads=1, formats=("json",)))
            group = "AMI dev" if k.startswith("dev") else "AMI other"
            conv.append((group, f"{k} vidtrans diar.", r.transcript, r.transcript))
            conv.append((group, f"{k} ref. speakers", assign_speakers(r.transcript, rttm_turns(EVAL / "diar" / f"ami_{k}.rttm")),
                         r.transcript))

def unlabelled(t):
    return t.replace(segments=tuple(
        Segment(s.start, s.end, s.text, words=tuple(Word(w.start, w.end, w.text, w.probability) for w in s.words))
        for s in t.segments))

systems = {
    "vidtrans, speakers": lambda ts, t: C.to_vtt(C.build_cues(ts)),
    "vidtrans, 1 speaker/cue": lambda ts, t: C.to_vtt(C.build_cues(ts, C.CaptionOptions(dialogue_cues=False))),
    "vidtrans, no speakers": lambda ts, t: C.to_vtt(C.build_cues(unlabelled(t))),
    "openai-whisper writer": lambda ts, t: whisper_vtt(ts),
}
print("\nConversational speech with speakers: cues / hard-rule cues / soft-rule cues (min duration, cps)")
print(f"  {'clip':22} " + " | ".join(f"{name:^26}" for name in systems))
totals = {}
for group, clip, ts, t in conv:
    cells = []
    for name, fn in systems.items():
        n, h, s = score(fn(ts, t))
        cells.append(f"{n:3d} cues h={h} s={s:2d} ({100 * s / max(n, 1):4.1f}%)")
        for g in (group, "target (demo + AMI dev)" if group != "AMI other" else None, "all"):
            if g:
                a = totals.setdefault((g, name), [0, 0, 0])
                a[0] += n; a[1] += h; a[2] += s
    print(f"  {clip:22} " + " | ".join(f"{c:26}" for c in cells))
print("totals")
for (g, name), (n, h, s) in totals.items():
    print(f"  {g:24} {name:24} cues={n:3d} hard={h:2d} soft={s:2d} ({100 * s / max(n, 1):4.1f} %)")

# how late cues start (max_start_delay) and the leave-one-clip-out choice of it
import statistics

print("\nmax_start_delay, leave one clip out (the clip's diarized and reference-speaker versions held out together)")
DELAYS = (0.3, 0.5, 0.75, 1.0)
res = {}
for d in DELAYS:
    o = C.CaptionOptions(max_start_delay=d)
    lags = []
    for group, clip, ts, t in conv:
        cues = C.build_cues(ts, o)
        lags += [c.start - c.words[0].start for c in cues]
        n, h, s = score(C.to_vtt(cues))
        a = res.setdefault((d, clip.split()[0]), [0, 0, 0])
        a[0] += n; a[1] += h; a[2] += s
    lags.sort()
    n, s = sum(v[0] for k, v in res.items() if k[0] == d), sum(v[2] for k, v in res.items() if k[0] == d)
    print(f"  max_start_delay={d:4.2f}: soft={s}/{n} ({100 * s / n:.1f} %); start after speech: mean {statistics.mean(lags):.2f} s, "
          f"p95 {lags[int(0.95 * len(lags))]:.2f} s, max {lags[-1]:.2f} s")
names = sorted({k[1] for k in res})
tot = [0, 0, 0]
for held in names:
    rate = lambda d: sum(res[(d, c)][2] for c in names if c != held) / max(1, sum(res[(d, c)][0] for c in names if c != held))  # noqa: E731
    d = min(DELAYS, key=lambda x: (round(rate(x), 9), x))
    n, h, s = res[(d, held)]
    tot[0] += n; tot[1] += h; tot[2] += s
    print(f"  held out {held:6} -> chosen {d:4.2f}: cues={n:3d} hard={h} soft={s} ({100 * s / max(n, 1):4.1f} %)")
print(f"  leave-one-clip-out: cues={tot[0]} hard={tot[1]} soft={tot[2]} ({100 * tot[2] / max(tot[0], 1):.1f} %); "
      f"default max_start_delay={C.CaptionOptions().max_start_delay}")
