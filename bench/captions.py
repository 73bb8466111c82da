"""Caption quality/speed: vidtrans.captions vs openai-whisper's subtitle writer on the same real transcripts."""
import io, time
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
