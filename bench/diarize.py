"""Diarization benchmark: DER, speaker count, speed and memory of vidtrans' offline diarizer.

Compares, in the same run and on the same models (segmentation-3.0 + CAM++,
both from PyPI wheels):

* ``vidtrans/<preset>`` -- :func:`vidtrans.diarize.diarize` (short-window
  CAM++ embeddings + spectral clustering, refined by segmentation);
* ``pyannote-recipe`` -- the peer: pyannote 3.1 / WhisperX's algorithm
  (one embedding per 10 s chunk and local speaker, agglomerative clustering,
  pyannote's own reconstruction), built from pyannote.audio's classes because
  the hosted pipeline needs a token and a network.

Data: the pyannote sample and the AMI excerpts listed in ``../shared/eval``
(only the wheel's sample when that folder is absent).  DER from
pyannote.metrics without collar and with a 0.25 s collar, split into missed
speech / false alarm / speaker confusion.  Each configuration runs in a fresh
subprocess so peak RSS is its own.  ``--long`` adds tiled copies of the
sample (minutes) to show memory against length.

    .venv/bin/python bench/diarize.py                 # accuracy + speed table
    .venv/bin/python bench/diarize.py --long 5,20     # + memory on 5 and 20 min
    .venv/bin/python bench/diarize.py --systems "" --long 10,30   # memory check only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = Path(os.environ.get("VIDTRANS_SHARED_EVAL", ROOT.parent / "shared" / "eval"))


def items() -> list[dict]:
    man = SHARED / "manifest.json"
    if man.exists():
        data = json.loads(man.read_text())["diarization"]
        return [
            {"name": Path(e["file"]).stem, "audio": str(SHARED / e["file"]), "rttm": str(SHARED / e["rttm"]),
             "speakers": e["speakers"], "uem": e.get("uem", [0.0, e["audio"]["duration_s"]])}
            for e in data
        ]
    d = Path(list(importlib.util.find_spec("pyannote.audio").submodule_search_locations)[0]) / "sample"
    return [{"name": "pyannote_sample", "audio": str(d / "sample.wav"), "rttm": str(d / "sample.rttm"), "speakers": 2, "uem": [0, 30]}]


# --------------------------------------------------------------------------- the peer recipe
def pyannote_recipe(audio_path: str, num_speakers=None, threshold: float = 0.7, min_cluster_size: int = 12):
    """pyannote 3.1's SpeakerDiarization algorithm with the offline models (returns an Annotation)."""
    import numpy as np
    import torch
    from pyannote.audio import Inference
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering
    from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
    from pyannote.audio.pipelines.utils import SpeakerDiarizationMixin
    from pyannote.core import SlidingWindowFeature

    from vidtrans.audio import load_audio
    from vidtrans.diarize_models import load_embedding_model, load_segmentation_model

    seg = load_segmentation_model("cpu")
    emb = load_embedding_model("cpu")
    rf = seg.receptive_field
    audio = load_audio(audio_path)
    inf = Inference(seg, duration=10.0, step=1.0, skip_aggregation=True, batch_size=8)
    segs = inf({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000})
    count = SpeakerDiarizationMixin.speaker_count(segs, rf, warm_up=(0.0, 0.0))
    C, F, K = segs.data.shape
    embs = np.full((C, K, emb.dimension), np.nan, np.float32)
    for c, (chunk, m) in enumerate(segs):
        s0 = int(round(chunk.start * 16000))
        w = audio[s0 : s0 + 160000]
        w = np.pad(w, (0, 160000 - len(w))) if len(w) < 160000 else w
        fb = emb.fbank(w)
        t = np.arange(fb.shape[0]) * 0.01 + 0.0125
        j = np.clip(np.round((t - rf.start - rf.duration / 2) / rf.step).astype(int), 0, F - 1)
        masks = (m[j] > 0.5).T
        clean = masks & (masks.sum(0, keepdims=True) == 1)  # embedding_exclude_overlap
        use = np.where(clean.sum(1, keepdims=True) >= 40, clean, masks)
        embs[c] = emb.embed_masked(fb, use)
    clustering = AgglomerativeClustering(metric="cosine")
    clustering.instantiate({"method": "centroid", "min_cluster_size": min_cluster_size, "threshold": threshold})
    hard, _, _ = clustering(embeddings=embs, segmentations=segs, num_clusters=num_speakers)
    hard[np.sum(segs.data, axis=1) == 0] = -2
    count.data = np.minimum(count.data, hard.max() + 1).astype(np.int8)
    mixin = SpeakerDiarizationMixin()
    discrete = SpeakerDiarization.reconstruct(mixin, segs, hard, count)
    assert isinstance(discrete, SlidingWindowFeature)
    return SpeakerDiarizationMixin.to_annotation(discrete)


# --------------------------------------------------------------------------- one measurement (subprocess)
def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    from vidtrans import diarize as dz
    from vidtrans.audio import probe

    # load models before timing (both systems share them; loading is a one-off cost)
    from vidtrans.diarize_models import load_embedding_model, load_segmentation_model

    load_segmentation_model("cpu"), load_embedding_model("cpu")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    duration = probe(args.audio).duration
    t0 = time.perf_counter()
    if args.system == "pyannote-recipe":
        hyp = pyannote_recipe(args.audio, num_speakers=args.num_speakers)
        n_spk = len(hyp.labels())
    else:
        d = dz.diarize(args.audio, dz.DiarizeOptions(preset=args.system.split("/")[1], num_speakers=args.num_speakers))
        hyp = d.to_annotation()
        n_spk = len(d.speakers)
    elapsed = time.perf_counter() - t0
    out = {"elapsed": elapsed, "rtf": elapsed / duration, "speakers": n_spk, "duration": duration,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "models_rss_mb": rss0 / 1024}
    if args.rttm:
        ref = next(iter(dz.read_rttm(args.rttm).values()))
        uem = Timeline([Segment(*json.loads(args.uem))])
        for collar in (0.0, 0.25):
            m = DiarizationErrorRate(collar=collar)(dz.turns_to_annotation(ref), hyp, uem=uem, detailed=True)
            key = f"c{collar:g}"
            out[key] = {"der": m["diarization error rate"], "miss": m["missed detection"] / m["total"],
                        "fa": m["false alarm"] / m["total"], "conf": m["confusion"] / m["total"]}
    print("@@" + json.dumps(out))


def run_one(system: str, audio: str, rttm: str | None, uem, threads: int, num_speakers=None) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--system", system, "--audio", audio, "--threads", str(threads)]
    if rttm:
        cmd += ["--rttm", rttm, "--uem", json.dumps(uem)]
    if num_speakers:
        cmd += ["--num-speakers", str(num_speakers)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError(f"{system} on {audio} failed:\n{proc.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--system", default="vidtrans/balanced")
    ap.add_argument("--audio")
    ap.add_argument("--rttm")
    ap.add_argument("--uem", default="[0, 30]")
    ap.add_argument("--num-speakers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--systems", default="pyannote-recipe,vidtrans/fast,vidtrans/balanced")
    ap.add_argument("--oracle", action="store_true", help="also run with the true speaker count")
    ap.add_argument("--long", default="", help="comma-separated minutes of tiled sample audio for the memory check")
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    systems = [s for s in args.systems.split(",") if s]  # --systems "" runs only the --long check
    print(f"threads={args.threads}  cpu={os.cpu_count()}  data={SHARED if (SHARED / 'manifest.json').exists() else 'wheel sample only'}")
    print(f"{'item':18} {'system':18} {'spk':>7} {'DER':>6} {'miss':>6} {'FA':>6} {'conf':>6} {'DER.25':>7} {'RTF':>6} {'peakMB':>7}")
    totals: dict[str, list] = {}
    for it in items() if systems else []:
        for system in systems:
            for oracle in ([None, it["speakers"]] if args.oracle else [None]):
                r = run_one(system, it["audio"], it["rttm"], it["uem"], args.threads, oracle)
                c0, c25 = r["c0"], r["c0.25"]
                label = system + (" (oracle)" if oracle else "")
                print(f"{it['name']:18} {label:18} {r['speakers']:>3}/{it['speakers']:<3} {100 * c0['der']:6.1f} "
                      f"{100 * c0['miss']:6.1f} {100 * c0['fa']:6.1f} {100 * c0['conf']:6.1f} {100 * c25['der']:7.1f} "
                      f"{r['rtf']:6.3f} {r['peak_rss_mb']:7.0f}", flush=True)
                if it["name"].startswith("ami") and not oracle:
                    totals.setdefault(system, []).append(c0["der"])
    for system, ders in totals.items():
        print(f"AMI mean DER (no collar) {system:18} {100 * sum(ders) / len(ders):.1f}%")

    if args.long:
        from vidtrans.audio import load_audio, write_wav
        import numpy as np

        sample = [i for i in items() if "sample" in i["name"]][0]["audio"]
        base = load_audio(sample)
        print(f"\nmemory vs length (tiled {Path(sample).name}, vidtrans/fast, default 600 s blocks)")
        print(f"{'minutes':>8} {'RTF':>6} {'peakMB':>7} {'speakers':>8}")
        with tempfile.TemporaryDirectory() as tmp:
            for minutes in [float(m) for m in args.long.split(",") if m]:
                n = int(np.ceil(minutes * 60 / 30))
                p = write_wav(Path(tmp) / f"long{minutes:g}.wav", np.tile(base, n)[: int(minutes * 60 * 16000)])
                r = run_one("vidtrans/fast", str(p), None, None, args.threads)
                print(f"{minutes:8g} {r['rtf']:6.3f} {r['peak_rss_mb']:7.0f} {r['speakers']:>8}", flush=True)
                p.unlink()


if __name__ == "__main__":
    main()
