"""Live-captions benchmark: commit latency, WER against offline decoding of the same audio, RTF, drift, speakers.

    .venv/bin/python bench/live.py                         # tiny.en and base, real-time pace, English clips
    .venv/bin/python bench/live.py --models tiny.en --clips 3
    .venv/bin/python bench/live.py --models tiny.en:0,tiny.en:3   # rows NAME[@BEAM][:MAX_PENDING], alternating
    .venv/bin/python bench/live.py --models base,base+max_buffer=10 --fast --fixed-step   # any LiveOptions field
    .venv/bin/python bench/live.py --models tiny.en,tiny.en+trim_seconds=3 --fast --fixed-step --loo 0.3   # choose per held-out clip
    .venv/bin/python bench/live.py --drift-minutes 30      # tiled file, as fast as possible: per-minute drift
    .venv/bin/python bench/live.py --speakers              # live speaker threshold, leave-one-clip-out DER

**latency** = ``committed_at - end`` of every committed word (wall seconds from
the end of the spoken word to the moment it was written), with the file read
at real-time pace, so it includes decoding, queueing and the speaker lag.
**WER** is scored against the clip's reference for the live run and for the
peer measured in the same run: plain faster-whisper on the whole file with
the same model (beam 5 as ``vidtrans run``, and beam 1 as the live decoder
uses), normalised as ``bench/asr.py`` does.  **RTF** = decode seconds per
audio second.  **revised** counts committed words whose log line changed
after it was first written (the log is read after every step and compared
with the final one); **duplicated** counts words the live output repeats
right after themselves (1-3-word n-grams) that an alignment with the clip's
reference leaves unmatched (a repeat the speaker said is no duplicate).

The drift run tiles the English clips (1 s gaps) to N minutes and streams it as
fast as possible (real-time pace for 30 minutes is long on a shared machine):
per minute it prints the median *algorithmic* latency (``audio_at - end``:
audio received when a word was committed minus its end), the median decode
time per step and the largest buffer, which must all stay flat.

Absolute numbers depend on the machine's load: this project's 2-core machine
is shared by other jobs, so the peer is always measured in the same run,
alternating with the live runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

from asr import _normalizers, clips, score  # noqa: E402  (same normalisation as bench/asr.py)

SHARED_EVAL = Path(os.environ.get("VIDTRANS_SHARED_EVAL", ROOT.parent / "shared" / "eval"))


def _p(xs, q):
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


# --------------------------------------------------------------------------- duplicates
def _words(text: str) -> list[str]:
    return [x for x in (x.strip(".,?!;:\"'()").lower() for x in text.split()) if x]


def repeats(text: str) -> list[str]:
    """The 1-3-word n-grams of *text* that follow themselves back to back ("the the", "I think I think")."""
    return [" ".join(g) for _, g in _repeat_spans(_words(text))]


def _repeat_spans(w: list[str]) -> list[tuple[int, list[str]]]:
    out = []
    i = 1
    while i < len(w):
        for n in (3, 2, 1):
            if i >= n and i + n <= len(w) and w[i : i + n] == w[i - n : i]:
                out.append((i, w[i : i + n]))
                i += n - 1
                break
        i += 1
    return out


def duplicated_words(hyp: str, reference: str) -> int:
    """Words of *hyp* that repeat the 1-3 words right before them and are not in *reference*.

    The words are aligned with the reference (difflib); a back-to-back repeat counts only for its
    words the alignment leaves unmatched, so "Hello? Hello? Oh, hello." heard as "hello hello hello"
    (a dropped "oh") is no duplicate, while a fourth "hello" is.
    """
    import difflib

    h, r = _words(hyp), _words(reference)
    matched = set()
    for a, b, size in difflib.SequenceMatcher(a=r, b=h, autojunk=False).get_matching_blocks():
        matched.update(range(b, b + size))
    # either copy of the n-gram may be the one the alignment left over
    return sum(min(len(g), sum(1 for j in range(i - len(g), i + len(g)) if j not in matched)) for i, g in _repeat_spans(h))


# --------------------------------------------------------------------------- ASR runs
def offline(model, path: str, beam: int) -> tuple[str, float]:
    from faster_whisper import WhisperModel  # noqa: F401  (model is a WhisperModel)
    from vidtrans.audio import load_audio
    from vidtrans.schema import join_words

    audio = load_audio(path)
    t = time.perf_counter()
    segs, _ = model.transcribe(audio, language="en", beam_size=beam, word_timestamps=True)
    words = [w.word for s in segs for w in (s.words or ())]
    return join_words(words), time.perf_counter() - t


def live_run(model_name: str, model, path: str, realtime: bool, speakers: bool, step: float, adaptive: bool = True,
             beam: int = 1, extra: dict | None = None) -> dict:
    from vidtrans.live import LiveOptions, LiveSpeakers, StreamingTranscriber, read_events, run_live

    opts = LiveOptions(model=model_name, realtime=realtime, speakers=speakers, step=step, adaptive_step=adaptive,
                       beam_size=beam, **(extra or {}))
    tr = StreamingTranscriber(opts, model=model)
    spk = LiveSpeakers(opts, tr.vad) if speakers else None
    with tempfile.TemporaryDirectory() as d:
        ev = Path(d) / "w.jsonl"
        seen: dict[int, str] = {}

        def watch(state) -> None:  # snapshot the log after every step
            if ev.exists():
                for i, line in enumerate(ev.read_text(encoding="utf-8").splitlines()):
                    seen.setdefault(i, line)

        t = time.perf_counter()
        r = run_live(path, Path(d) / "l.vtt", ev, opts, transcriber=tr, speakers=spk, on_update=watch)
        wall = time.perf_counter() - t
        final = ev.read_text(encoding="utf-8").splitlines()
        revised = sum(1 for i, line in seen.items() if i >= len(final) or final[i] != line)
        events = read_events(ev)
    return {
        "text": r.text, "latency": r.latencies, "algo_latency": [e["audio_at"] - e["end"] for e in events],
        "rtf": r.rtf, "cpu_rtf": sum(d.get("decode_cpu", 0.0) for d in r.decodes) / max(r.audio_seconds, 1e-9),
        "audio": r.audio_seconds, "wall": wall, "revised": revised, "switches": r.switches,
        "adaptations": r.adaptations, "speakers": r.speakers, "speaker_waits": r.speaker_waits, "start_delay": r.start_delay,
        "steps": [d["new_audio"] for d in r.decodes],
    }


def bench_asr(models: list[str], items: list[dict], realtime: bool, speakers: bool, step: float, adaptive: bool = True,
              beams: dict[str, int] | None = None, loo_tolerance: float | None = None) -> dict:
    from vidtrans.live import LiveOptions, load_whisper

    norms = _normalizers()
    # a model may be given as NAME[@BEAM][:PENDING][+FIELD=VALUE...] (e.g. base@3, tiny.en:0,
    # base+max_buffer=10): the live decoder's beam width and LiveOptions fields for that row (:PENDING is
    # short for +max_pending=PENDING)
    def parse(m: str) -> tuple[str, int, dict]:
        m, *over = m.split("+")
        extra = {}
        for kv in over:
            k, v = kv.split("=", 1)
            default = getattr(LiveOptions(), k)  # AttributeError names a field LiveOptions lacks
            if isinstance(default, bool):
                extra[k] = v.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, (int, float)):
                extra[k] = type(default)(float(v))
            else:
                extra[k] = v
        m, pending = (m.split(":") + [None])[:2]
        if pending:
            extra = {"max_pending": float(pending), **extra}
        name, beam = (m.split("@") + [None])[:2]
        return name, int(beam) if beam else (beams or {}).get(name, 1), extra

    spec = {m: parse(m) for m in models}
    loaded = {}
    for m, (name, *_) in spec.items():
        if name not in loaded:
            loaded[name] = load_whisper(name, LiveOptions(model=name))
    offline_cache: dict[tuple[str, str, int], str] = {}

    def offline_text(name: str, path: str, beam: int) -> str:
        if (name, path, beam) not in offline_cache:
            offline_cache[name, path, beam] = offline(loaded[name], path, beam)[0]
        return offline_cache[name, path, beam]

    rows = {m: {"live": [], "off5": [], "off1": [], "lat": [], "alat": [], "rtf": [], "cpu": [], "audio": 0.0, "rev": 0, "dup": 0,
                "switches": [], "adapt": [], "wait": [], "step": [], "start": [], "clips": {}} for m in models}
    for k, item in enumerate(items):
        order = models if k % 2 == 0 else models[::-1]  # alternate: both models see the same load on average
        for m in order:
            name, beam, extra = spec[m]
            model = loaded[name]
            off5 = offline_text(name, item["path"], 5)
            off1 = offline_text(name, item["path"], 1)
            r = live_run(name, model, item["path"], realtime, speakers, step, adaptive, beam, extra)
            row = rows[m]
            for key, hyp in (("live", r["text"]), ("off5", off5), ("off1", off1)):
                _, err, n = score(hyp, item["reference"], "en", norms)
                row[key].append((err * n, n))
            row["lat"] += r["latency"]
            row["alat"] += r["algo_latency"]
            row["rtf"].append((r["rtf"] * r["audio"], r["audio"]))
            row["cpu"].append(r["cpu_rtf"] * r["audio"])
            row["audio"] += r["audio"]
            row["rev"] += r["revised"]
            dup = duplicated_words(r["text"], item["reference"])
            row["dup"] += dup
            if dup:
                print(f"  {item['id'][:38]:38s} {m:8s} duplicated {dup}: live repeats {repeats(r['text'])}, "
                      f"reference repeats {repeats(item['reference'])}", flush=True)
            row["switches"] += r["switches"]
            row["adapt"] += r["adaptations"]
            row["wait"] += r["speaker_waits"]
            row["step"] += r["steps"]
            row["start"].append(r["start_delay"])
            row["clips"][item["id"]] = {"live": row["live"][-1], "alat": r["algo_latency"], "lat": r["latency"]}
            _, e_live, _ = score(r["text"], item["reference"], "en", norms)
            _, e_off, _ = score(off5, item["reference"], "en", norms)
            print(f"  {item['id'][:38]:38s} {m:8s} live WER {e_live:6.1%} offline {e_off:6.1%}  "
                  f"latency median {_p(r['latency'], 50):5.2f} s p90 {_p(r['latency'], 90):5.2f} s  "
                  f"step median {_p(r['steps'], 50):.2f} s  rtf {r['rtf']:.2f}  {r['speakers']}  load {os.getloadavg()[0]:.1f}",
                  flush=True)

    def wer(pairs):
        return sum(e for e, _ in pairs) / max(sum(n for _, n in pairs), 1)

    pace = "real-time pace" if realtime else "as fast as possible"
    print(f"\nlive vs offline on {len(items)} English clips ({pace}, {'speakers on' if speakers else 'speakers off'}, "
          f"{'adaptive step' if adaptive else f'fixed step {step} s'}, load average {os.getloadavg()[0]:.1f} at the end):")
    print("| model | live beam | live WER | offline WER beam 5 (vidtrans run) | offline WER beam 1 | latency median | latency p90 "
          "| algorithmic latency median | speaker wait median / p90 | step median | RTF (wall) | decode CPU s per audio s "
          "| source start delay median | revised | duplicated | self-monitor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m, row in rows.items():
        rtf = sum(a for a, _ in row["rtf"]) / max(row["audio"], 1e-9)
        label = spec[m][0] + "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}" for k, v in spec[m][2].items())
        print(f"| {label} | {spec[m][1]} | {wer(row['live']):.1%} | {wer(row['off5']):.1%} | {wer(row['off1']):.1%} | "
              f"{_p(row['lat'], 50):.2f} s | {_p(row['lat'], 90):.2f} s | {_p(row['alat'], 50):.2f} s | "
              f"{_p(row['wait'], 50):.2f} / {_p(row['wait'], 90):.2f} s | {_p(row['step'], 50):.2f} s | {rtf:.2f} | "
              f"{sum(row['cpu']) / max(row['audio'], 1e-9):.2f} | "
              f"{_p(row['start'], 50):.2f} s | {row['rev']} | {row['dup']} | {len(row['adapt'])} changes, switches {row['switches']} |")
    if loo_tolerance is not None and len(models) > 1:
        leave_one_clip_out(rows, [i["id"] for i in items], loo_tolerance, "algorithmic" if not realtime else "wall")
    return rows


def leave_one_clip_out(rows: dict, ids: list[str], tolerance: float, kind: str) -> dict:
    """Choose a row (a candidate setting) per held-out clip on the other clips; score it on the held-out one.

    The first row is the reference setting.  On the training clips a row is eligible when its pooled live WER is
    at most the reference's plus *tolerance* (points); the eligible row with the lowest median latency
    (algorithmic when read as fast as possible, wall at real-time pace) is chosen.  Returns and prints the pooled
    held-out WER and latency of the chosen rows beside the reference's, and how often each row was chosen.
    """
    key = "alat" if kind == "algorithmic" else "lat"
    names = list(rows)
    ref = names[0]

    def pooled(m: str, clip_ids: list[str]) -> tuple[float, float]:
        c = [rows[m]["clips"][i] for i in clip_ids]
        err = sum(x["live"][0] for x in c) / max(sum(x["live"][1] for x in c), 1)
        return err, _p([v for x in c for v in x[key]], 50)

    chosen: dict[str, int] = {m: 0 for m in names}
    held_err, held_n, held_lat = 0.0, 0, []
    for held in ids:
        train = [i for i in ids if i != held]
        base_wer = pooled(ref, train)[0]
        eligible = [m for m in names if pooled(m, train)[0] <= base_wer + tolerance / 100 + 1e-12]
        pick = min(eligible, key=lambda m: pooled(m, train)[1])
        chosen[pick] += 1
        c = rows[pick]["clips"][held]
        held_err += c["live"][0]
        held_n += c["live"][1]
        held_lat += c[key]
    ref_wer, ref_lat = pooled(ref, ids)
    out = {"wer": held_err / max(held_n, 1), "latency": _p(held_lat, 50), "ref_wer": ref_wer, "ref_latency": ref_lat,
           "chosen": chosen}
    print(f"\nleave-one-clip-out over {len(ids)} clips (per fold: the lowest {kind} median latency among rows whose "
          f"training WER is within {tolerance:g} points of '{ref}'):")
    print(f"  held-out WER {out['wer']:.1%} (reference row {ref_wer:.1%}), {kind} latency median "
          f"{out['latency']:.2f} s (reference {ref_lat:.2f} s)")
    print("  chosen: " + ", ".join(f"{m} x{n}" for m, n in chosen.items() if n))
    return out


# --------------------------------------------------------------------------- drift
def bench_drift(model_name: str, items: list[dict], minutes: float, step: float, realtime: bool = False,
                speakers: bool = False, stretch: float = 1.0, adaptive: bool = True) -> None:
    """Tile the clips to *minutes* and stream them; per *stretch* minutes (by word end) print the
    latency figures, decode time and buffer, which must stay flat."""
    import resource

    from vidtrans.audio import load_audio, write_wav
    from vidtrans.live import LiveOptions, read_events, run_live

    gap = np.zeros(16000, dtype=np.float32)
    parts, total = [], 0
    while total < minutes * 60 * 16000:
        for it in items:
            a = load_audio(it["path"])
            parts += [a, gap]
            total += a.size + gap.size
    audio = np.concatenate(parts)[: int(minutes * 60 * 16000)]
    span = 60.0 * stretch
    rss: dict[int, float] = {}
    loads: dict[int, list[float]] = {}

    def watch(state) -> None:
        k = int(state.audio_seconds // span)
        rss[k] = max(rss.get(k, 0.0), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        loads.setdefault(k, []).append(os.getloadavg()[0])

    opts = LiveOptions(model=model_name, speakers=speakers, step=step, realtime=realtime, adaptive_step=adaptive)
    with tempfile.TemporaryDirectory() as d:
        path = write_wav(Path(d) / "tiled.wav", audio)
        t = time.perf_counter()
        r = run_live(path, Path(d) / "l.vtt", Path(d) / "w.jsonl", opts, on_update=watch)
        wall = time.perf_counter() - t
        events = read_events(Path(d) / "w.jsonl")
    per: dict[int, dict[str, list[float]]] = {}
    for e in events:
        slot = per.setdefault(int(e["end"] // span), {"lat": [], "alat": []})
        slot["lat"].append(e["committed_at"] - e["end"])
        slot["alat"].append(e["audio_at"] - e["end"])
    dec: dict[int, list[float]] = {}
    buf: dict[int, list[float]] = {}
    stp: dict[int, list[float]] = {}
    for x in r.decodes:
        k = int(x["audio_end"] // span)
        dec.setdefault(k, []).append(x["decode_seconds"])
        buf.setdefault(k, []).append(x["buffer_seconds"])
        stp.setdefault(k, []).append(x["new_audio"])
    pace = "real-time pace" if realtime else "as fast as possible"
    print(f"\ndrift: {minutes:.0f} min tiled English speech, {model_name}, {'adaptive step' if adaptive else f'step {step} s'}, "
          f"{pace}, speakers {'on' if speakers else 'off'} ({wall:.0f} s wall, {len(r.words)} words, "
          f"switches {r.switches}, {len(r.adaptations)} logged step changes)")
    print(f"| {stretch:g}-min stretch | words | latency median | p90 | algorithmic latency median | p90 | decode s median "
          "| step s median | max buffer s | peak RSS MB | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    last = max(int(np.ceil(minutes / stretch)) - 1, 0)  # the final instant belongs to the last stretch
    for table in (per, dec, buf, stp, rss, loads):
        for k in [k for k in table if k > last]:
            v = table.pop(k)
            if isinstance(v, dict):
                slot = table.setdefault(last, {"lat": [], "alat": []})
                for name in v:
                    slot[name] += v[name]
            elif isinstance(v, list):
                table.setdefault(last, []).extend(v)
            else:
                table[last] = max(table.get(last, 0.0), v)
    keys = sorted(set(per) | set(dec))
    for k in keys:
        lat, al = per.get(k, {}).get("lat", []), per.get(k, {}).get("alat", [])
        print(f"| {k * stretch:g}-{(k + 1) * stretch:g} | {len(al)} | {_p(lat, 50):.2f} | {_p(lat, 90):.2f} | {_p(al, 50):.2f} | "
              f"{_p(al, 90):.2f} | {_p(dec.get(k, []), 50):.2f} | {_p(stp.get(k, []), 50):.2f} | {max(buf.get(k, [0])):.1f} | "
              f"{rss.get(k, 0):.0f} | {_p(loads.get(k, []), 50):.1f} |")
    if len(keys) >= 4:
        q = max(1, len(keys) // 4)
        first = [x for k in keys[:q] for x in per.get(k, {}).get("lat", [])]
        last = [x for k in keys[-q:] for x in per.get(k, {}).get("lat", [])]
        d_first = [x for k in keys[:q] for x in dec.get(k, [])]
        d_last = [x for k in keys[-q:] for x in dec.get(k, [])]
        print(f"first vs last quarter: latency median {_p(first, 50):.2f} -> {_p(last, 50):.2f} s; "
              f"decode s/step {_p(d_first, 50):.2f} -> {_p(d_last, 50):.2f}")


# --------------------------------------------------------------------------- speakers
def bench_speakers(thresholds: list[float], windows: list[int], margins: list[float] = (0.0, 0.05, 0.1)) -> None:
    """Live speaker timeline DER (no collar, 0-30 s) per threshold; the threshold is chosen
    leave-one-clip-out (best mean DER on the other clips) and scored on the held-out clip."""
    import torch
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    from vidtrans.audio import load_audio
    from vidtrans.diarize_models import load_embedding_model
    from vidtrans.live import LiveOptions, LiveSpeakers, VadTracker

    torch.set_num_threads(1)
    man = json.loads((SHARED_EVAL / "manifest.json").read_text())
    items = [(d["file"], d["rttm"]) for d in man["diarization"]]

    class Cached:  # each 1.5 s window is embedded once for all thresholds
        def __init__(self):
            self.e, self.c = load_embedding_model("cpu"), {}

        def embed(self, x):
            k = hashlib.md5(x.tobytes()).hexdigest()
            if k not in self.c:
                self.c[k] = self.e.embed(x)
            return self.c[k]

    emb = Cached()

    def ref(rttm: str) -> Annotation:
        a = Annotation()
        for line in (SHARED_EVAL / rttm).read_text().splitlines():
            p = line.split()
            a[Segment(float(p[3]), float(p[3]) + float(p[4]))] = p[7]
        return a

    audio = {f: load_audio(SHARED_EVAL / f)[: 30 * 16000] for f, _ in items}
    table: dict[tuple[float, int, float], list[tuple[float, int, int]]] = {}
    for thr, nw, margin in [(t, n, m) for t in thresholds for n in windows for m in margins]:
        res = []
        for f, rttm in items:
            o = LiveOptions(speaker_threshold=thr, new_speaker_windows=nw, speaker_update_margin=margin)
            vad = VadTracker(o.vad_threshold)
            sp = LiveSpeakers(o, vad, embedder=emb)
            a = audio[f]
            for i in range(0, a.size, 16000):
                vad.update(a[i : i + 16000])
                sp.insert(a[i : i + 16000])
                sp.update()
            sp.update(final=True)
            hyp = Annotation()
            for t0, t1, label in sp.timeline:
                if label:
                    hyp[Segment(t0, t1)] = label
            r = ref(rttm)
            res.append((DiarizationErrorRate()(r, hyp, uem=Segment(0, 30)), len(sp.speakers), len(r.labels())))
        table[(thr, nw, margin)] = res
        print(f"  threshold {thr:.2f}, {nw} windows, margin {margin}: mean DER {np.mean([x[0] for x in res]):.1%}, "
              f"speaker count right on {sum(x[1] == x[2] for x in res)}/{len(res)}", flush=True)
    keys = list(table)
    held = []
    for i, (f, _) in enumerate(items):
        best = min(keys, key=lambda k: np.mean([x[0] for j, x in enumerate(table[k]) if j != i]))
        held.append((Path(f).stem, best, table[best][i]))
    print("\nleave-one-clip-out ((threshold, windows, margin) chosen on the other clips; DER of the held-out clip):")
    for name, k, (der, n, n_ref) in held:
        print(f"  {name[:40]:40s} chosen {k}: DER {der:.1%}, {n} speakers (reference {n_ref})")
    print(f"cross-validated mean DER {np.mean([h[2][0] for h in held]):.1%}; "
          f"count right on {sum(h[2][1] == h[2][2] for h in held)}/{len(held)}; "
          f"choices {sorted({h[1] for h in held})}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny.en,base")
    ap.add_argument("--clips", type=int, default=0, help="at most N English clips (0 = all)")
    ap.add_argument("--fast", action="store_true", help="read files as fast as possible instead of real-time pace")
    ap.add_argument("--no-speakers", dest="speakers", action="store_false")
    ap.add_argument("--step", type=float, default=1.0)
    ap.add_argument("--drift-minutes", type=float, default=0.0, help="also run the tiled drift test this long")
    ap.add_argument("--drift-only", action="store_true")
    ap.add_argument("--drift-realtime", action="store_true",
                    help="stream the drift file at real-time pace (N minutes of wall time) instead of as fast as possible")
    ap.add_argument("--drift-stretch", type=float, default=0.0,
                    help="minutes per drift table row (default 1, or 5 with --drift-realtime)")
    ap.add_argument("--beams", default="", help="live beam width per model, e.g. base=3 (default 1)")
    ap.add_argument("--fixed-step", action="store_true", help="the old fixed step (no adaptive step) for comparison")
    ap.add_argument("--speakers-cv", "--speakers", dest="speakers_cv", action="store_true",
                    help="only the speaker-threshold cross-validation")
    ap.add_argument("--thresholds", default="0.55,0.6,0.65")
    ap.add_argument("--loo", type=float, default=None, metavar="POINTS",
                    help="treat the rows as candidate settings of one model, the first as the reference, and choose one "
                         "per held-out clip: the lowest latency within POINTS of the reference's WER on the other clips")
    args = ap.parse_args(argv)
    if args.speakers_cv:
        bench_speakers([float(x) for x in args.thresholds.split(",")], [2])
        return 0
    items = clips({"en"})
    if args.clips:
        items = items[-1:] + items[: args.clips - 1]  # the two-speaker sample first
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared with other jobs)")
    if not args.drift_only:
        beams = {m: int(b) for m, b in (x.split("=") for x in args.beams.split(",") if x)}
        bench_asr(models, items, realtime=not args.fast, speakers=args.speakers, step=args.step,
                  adaptive=not args.fixed_step, beams=beams, loo_tolerance=args.loo)
    if args.drift_minutes:
        bench_drift(models[0], [i for i in items if i["id"] != "pyannote_sample"] or items, args.drift_minutes, args.step,
                    realtime=args.drift_realtime, speakers=args.speakers if args.drift_realtime else False,
                    stretch=args.drift_stretch or (5.0 if args.drift_realtime else 1.0), adaptive=not args.fixed_step)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
