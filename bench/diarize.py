"""Diarization benchmark: DER, speaker count, leave-one-clip-out tuning, long inputs and speed.

What it measures, in one run:

* **every clip** of ``../shared/eval`` diarization (pyannote sample + 9 AMI
  excerpts) and every single-speaker clip of ``../shared/eval`` asr: DER
  without collar inside 0-30 s (miss / false alarm / confusion), speakers
  found vs true;
* **leave-one-clip-out (LOO)** figures for the clustering parameters
  (:data:`GRID`): for each clip, the grid point that minimises the objective
  on *all the other clips* (meetings and single-speaker clips) and on the long
  inputs that do not contain the held clip is applied to the held clip.
  Objective = mean DER of the multi-speaker inputs + 0.05 x mean |count error|
  + 0.5 x share of single-speaker clips not found as one speaker + mean DER of
  the multi-speaker inputs with the true count given (see :func:`objective`);
* the shipped defaults (``vidtrans.diarize.clustering.ClusterParams()``) and
  the true speaker count given (oracle: must not be worse);
* the peer in the same run: pyannote 3.1 / WhisperX's algorithm (one CAM++
  embedding per 10 s chunk and local speaker, pyannote's agglomerative
  clustering and reconstruction) built from pyannote.audio's classes on the
  same offline models, since the hosted pipeline needs a token and network;
* **long inputs**: concatenations of dev clips (minutes) with merged
  references (AMI speaker ids are global, so a speaker heard in two clips is
  one speaker);
* **speed**: real-time factor on a 10-minute file including model loading,
  each run in a fresh process, vidtrans and the peer alternating, at 1 and 2
  torch threads (the machine is shared: compare the ratio, not the seconds).

    .venv/bin/python bench/diarize.py                   # everything (about 15-25 min on 2 busy cores)
    .venv/bin/python bench/diarize.py --skip-speed --skip-peer --cache /tmp/diar-cache
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import json
import os
import pickle
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = Path(os.environ.get("VIDTRANS_SHARED_EVAL", ROOT.parent / "shared" / "eval"))

#: the grid searched by leave-one-clip-out (ClusterParams fields)
GRID = {
    "threshold": [0.3, 0.4, 0.5],
    "min_speaker_seconds": [0.25],  # 0.25 in every fold of a wider grid (0.25-2 s)
    "merge": [0.8, 0.7],  # acts on the long inputs only (no effect on 30 s clips)
    "local_seconds": [1.0, 2.0],
    "grow_support": [4, 6, 8],
    "grow_margin": [0.0, 0.2],  # acts only when a count is given (num/min_speakers)
    "grow_choice": ["segmentation", "distinct"],
    "local_group_seconds": [2.0, 1.0],
}


def items() -> list[dict]:
    """Diarization clips (with RTTM) and single-speaker clips (count only)."""
    man = SHARED / "manifest.json"
    if not man.exists():
        d = Path(list(importlib.util.find_spec("pyannote.audio").submodule_search_locations)[0]) / "sample"
        return [{"name": "pyannote_sample", "audio": str(d / "sample.wav"), "rttm": str(d / "sample.rttm"),
                 "speakers": 2, "uem": (0.0, 30.0), "kind": "sample"}]
    data = json.loads(man.read_text())
    out = []
    for e in data["diarization"]:
        name = Path(e["file"]).stem
        out.append({"name": name, "audio": str(SHARED / e["file"]), "rttm": str(SHARED / e["rttm"]),
                    "speakers": e["speakers"], "uem": tuple(e.get("uem") or (0.0, 30.0)),
                    "kind": "ami" if name.startswith("ami") else "sample"})
    for e in data["asr"]:
        if e.get("speakers", 1) == 1:
            out.append({"name": Path(e["file"]).stem, "audio": str(SHARED / e["file"]), "rttm": None,
                        "speakers": 1, "uem": None, "kind": "single", "duration": e["audio"]["duration_s"]})
    return out


def reference(item):
    from vidtrans import diarize as dz

    return next(iter(dz.read_rttm(item["rttm"]).values())) if item["rttm"] else None


# --------------------------------------------------------------------------- features (model work, cached)
def features(item: dict, preset: str, cache: Path | None, runtime: str = "auto", threads: int = 1):
    from vidtrans.diarize import DiarizeOptions, _base, local
    from vidtrans.diarize_models import resolve_runtime

    key = None
    if cache:
        st = Path(item["audio"]).stat()
        resolved = resolve_runtime(runtime, "cpu")  # "auto" is openvino where it is installed
        sub = preset if resolved == "onnx" else f"{preset}-{resolved}"
        key = cache / sub / f"{item['name']}-{st.st_size}-{int(st.st_mtime)}.pkl"
        if key.exists():
            f = pickle.loads(key.read_bytes())
            if getattr(f, "soft_count", None) is None:
                f.soft_count = local.soft_count(f)
            return f
    audio = item["audio"] if "array" not in item else item["array"]
    f = local.analyze(_base._AudioSource(audio), DiarizeOptions(preset=preset, runtime=runtime, num_threads=threads))
    if key:
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(pickle.dumps(f))
    return f


def _frames(turns, labels: list, lo: float, hi: float, step: float) -> np.ndarray:
    n = int(round((hi - lo) / step))
    m = np.zeros((n, max(1, len(labels))), dtype=bool)
    for t in turns:
        a, b = int(round((max(t.start, lo) - lo) / step)), int(round((min(t.end, hi) - lo) / step))
        if b > a:
            m[a:b, labels.index(t.speaker)] = True
    return m


def frame_der(ref, hyp, uem: tuple[float, float], step: float = 0.01) -> dict:
    """DER without collar on a 10 ms grid with the optimal one-to-one speaker mapping (as pyannote.metrics)."""
    from scipy.optimize import linear_sum_assignment

    rl, hl = sorted({t.speaker for t in ref}), sorted({t.speaker for t in hyp})
    r, h = _frames(ref, rl, *uem, step), _frames(hyp, hl, *uem, step)
    nr, nh = r.sum(1), h.sum(1)
    co = r.T.astype(np.float64) @ h.astype(np.float64)
    rows, cols = linear_sum_assignment(co, maximize=True)
    correct = np.zeros(len(r))
    for i, j in zip(rows, cols):
        correct += r[:, i] & h[:, j]
    total = max(float(nr.sum()), 1e-9)
    miss = np.maximum(nr - nh, 0).sum()
    fa = np.maximum(nh - nr, 0).sum()
    conf = (np.minimum(nr, nh) - correct).sum()
    return {"der": (miss + fa + conf) / total, "miss": miss / total, "fa": fa / total, "conf": conf / total}


def score(d, item, ref=None, exact: bool = False) -> dict:
    """DER (no collar) and its parts inside the item's UEM, and the speaker count.

    ``exact`` uses pyannote.metrics; otherwise a 10 ms frame DER that agrees with it to about 0.1 point
    (checked in the defaults table) and is fast enough for the parameter grid.
    """
    out = {"spk": len(d.speakers), "true": item["speakers"]}
    ref = ref if ref is not None else reference(item)
    if ref is None:
        return out
    if not exact:
        return out | frame_der(ref, list(d.turns) if hasattr(d, "turns") else _ann_turns(d.to_annotation()), item["uem"])
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    from vidtrans import diarize as dz

    m = DiarizationErrorRate(collar=0.0)(dz.turns_to_annotation(ref), d.to_annotation(),
                                        uem=Timeline([Segment(*item["uem"])]), detailed=True)
    tot = m["total"] or 1.0
    return out | {"der": m["diarization error rate"], "miss": m["missed detection"] / tot,
                  "fa": m["false alarm"] / tot, "conf": m["confusion"] / tot}


def _ann_turns(ann):
    from vidtrans import diarize as dz

    return dz.annotation_to_turns(ann)


def objective(rows: list[dict], oracle: list[dict] = ()) -> float:
    """Mean DER of the multi-speaker clips + 0.05 x mean |count error| + 0.5 x share of single-speaker
    clips not found as one speaker, + mean DER of the multi-speaker clips with the true count given (so
    that parameters which act only when a count is given, ``grow_margin``, are chosen too)."""
    multi = [r for r in rows if "der" in r]
    single = [r for r in rows if "der" not in r]
    j = 0.0
    if multi:
        j += np.mean([r["der"] for r in multi]) + 0.05 * np.mean([abs(r["spk"] - r["true"]) for r in multi])
    if single:
        j += 0.5 * np.mean([r["spk"] != 1 for r in single])
    if oracle:
        j += np.mean([r["der"] for r in oracle if "der" in r])
    return float(j)


def hearing(f, ref, item, min_local: float = 0.5) -> tuple[str, list[float]]:
    """One clip's line: the most local speakers segmentation-3.0 hears in one 10 s chunk (each talking
    ``min_local`` s or more), and per reference speaker: seconds talked, seconds alone, and seconds where
    the model's speaker count reaches the number of people talking (the speech it can attribute at all).
    Also returns those "heard" seconds per reference speaker (for :func:`count_ceiling`)."""
    step = float(f.rel[1] - f.rel[0]) if len(f.rel) > 1 else f.grid.step
    most = max((int(((seg.sum(axis=1) * step) >= min_local).sum(axis=1).max()) for _, seg in f.chunks if len(seg)),
               default=0)
    lo, hi = item["uem"]
    t = np.arange(lo, hi, 0.01) + 0.005
    spk = sorted({x.speaker for x in ref})
    act = np.zeros((len(spk), len(t)), dtype=bool)
    for x in ref:
        act[spk.index(x.speaker)] |= (t >= x.start) & (t < x.end)
    n_ref = act.sum(0)
    cnt = f.count[np.clip(f.grid.index(t), 0, len(f.count) - 1)] if len(f.count) else np.zeros(len(t))
    parts, heard = [], []
    for i in np.argsort(-act.sum(1)):
        a = act[i]
        heard.append(float((a & (cnt >= n_ref)).sum() * 0.01))
        parts.append(f"{a.sum() * 0.01:.1f}/{(a & (n_ref == 1)).sum() * 0.01:.1f}/{heard[-1]:.1f}")
    line = (f"{item['name']:30} true {item['speakers']}  most local speakers in one chunk: {most}  "
            f"per person talk/alone/heard s: {'  '.join(parts)}")
    return line, heard


def count_ceiling(heard: dict[str, list[float]], min_seconds: float) -> tuple[int, int, dict[str, int]]:
    """The speaker count a clustering of this segmentation output can reach without splitting voices it
    hears as one: a person counts only when the model's speaker count covers at least *min_seconds* of
    their speech (the shipped minimum speaker size); everyone else talks only where the model hears fewer
    voices than there are, so finding them means inventing a voice the model did not hear -- which is what
    splits monologues.  Returns (clips whose exact count is reachable, the smallest possible worst miss,
    reachable count per clip)."""
    reach = {name: sum(h >= min_seconds for h in hs) for name, hs in heard.items()}
    exact = sum(reach[n] == len(hs) for n, hs in heard.items())
    worst = max((len(hs) - reach[n] for n, hs in heard.items()), default=0)
    return exact, worst, reach


# --------------------------------------------------------------------------- the peer recipe
def pyannote_recipe(audio, num_speakers=None, threshold: float = 0.7, min_cluster_size: int = 12):
    """pyannote 3.1's SpeakerDiarization algorithm with the offline models (returns an Annotation)."""
    import torch
    from pyannote.audio import Inference
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering
    from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
    from pyannote.audio.pipelines.utils import SpeakerDiarizationMixin

    from vidtrans.audio import load_audio
    from vidtrans.diarize_models import load_embedding_model, load_segmentation_model

    seg = load_segmentation_model("cpu")
    emb = load_embedding_model("cpu", "torch")  # the peer runs on torch, as pyannote does
    rf = seg.receptive_field
    audio = load_audio(audio) if not isinstance(audio, np.ndarray) else audio
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
    discrete = SpeakerDiarization.reconstruct(SpeakerDiarizationMixin(), segs, hard, count)
    return SpeakerDiarizationMixin.to_annotation(discrete)


class _PeerResult:
    def __init__(self, ann):
        self.ann = ann
        self.speakers = tuple(ann.labels())

    def to_annotation(self):
        return self.ann


# --------------------------------------------------------------------------- report helpers
def pct(x) -> str:
    return f"{100 * x:5.1f}" if x is not None else "    -"


def row(name, r, extra="") -> str:
    name = name if len(name) <= 30 else name[:19] + "…" + name[-10:]
    return (f"{name:30} {r['spk']:>3}/{r['true']:<3} {pct(r.get('der'))} {pct(r.get('miss'))} {pct(r.get('fa'))} "
            f"{pct(r.get('conf'))} {extra}")


HEADER = f"{'clip':30} {'spk':>7} {'DER':>5} {'miss':>5} {'FA':>5} {'conf':>5}"


def summary(label: str, rows: list[dict]) -> str:
    ami = [r for r in rows if r.get("kind") == "ami"]
    single = [r for r in rows if r.get("kind") == "single"]
    s = f"{label:30}"
    if ami:
        der = np.mean([r["der"] for r in ami])
        exact = sum(r["spk"] == r["true"] for r in ami)
        worst = max(abs(r["spk"] - r["true"]) for r in ami)
        parts = {k: np.mean([r[k] for r in ami]) for k in ("miss", "fa", "conf")}
        s += (f" AMI mean DER {100 * der:5.1f} % (miss {100 * parts['miss']:.1f}, FA {100 * parts['fa']:.1f}, "
              f"conf {100 * parts['conf']:.1f}); count exact {exact}/{len(ami)}, worst off by {worst}")
    if single:
        s += f"; single-speaker clips = 1 speaker: {sum(r['spk'] == 1 for r in single)}/{len(single)}"
    return s


# --------------------------------------------------------------------------- accuracy + LOO
def accuracy(args) -> None:
    from vidtrans import diarize as dz
    from vidtrans.diarize import local
    from vidtrans.diarize.clustering import ClusterParams

    cache = Path(args.cache) if args.cache else None
    its = items()
    print(f"data={SHARED if (SHARED / 'manifest.json').exists() else 'wheel sample only'}  preset={args.preset}  "
          f"threads={args.threads}  clips={len(its)}", flush=True)
    feats, refs = {}, {}
    t0 = time.perf_counter()
    for it in its:
        feats[it["name"]] = features(it, args.preset, cache, args.runtime, args.threads)
        refs[it["name"]] = reference(it)
    print(f"features of {len(its)} clips: {time.perf_counter() - t0:.0f} s", flush=True)
    opts = dz.DiarizeOptions(preset=args.preset)

    def run(it, params, **kw):
        d = local.label(feats[it["name"]], replace(opts, **kw), params)
        return score(d, it, refs[it["name"]]) | {"kind": it["kind"], "name": it["name"]}

    # long inputs (concatenations of the clips) take part in the tuning: a held clip's fold leaves out every
    # concatenation that contains it
    longs = [] if args.skip_long else long_features(args, cache)

    def run_long(lf, params, **kw):
        d = local.label(lf["feats"], replace(opts, **kw), params)
        return score(d, lf["item"], lf["ref"]) | {"kind": "long", "name": lf["label"]}

    # grid: every clip under every parameter set (labelling is cheap; the models ran once)
    keys = list(GRID)
    combos = [dict(zip(keys, v)) for v in itertools.product(*GRID.values())]
    t0 = time.perf_counter()
    table, otable, ltable, lotable = {}, {}, {}, {}
    for i, c in enumerate(combos):
        p = replace(ClusterParams(), **c)
        table[i] = {it["name"]: run(it, p) for it in its}
        # the same grid with the true count given, to score the held clip's oracle under its fold's parameters
        otable[i] = {it["name"]: run(it, p, num_speakers=it["speakers"]) for it in its if it["rttm"]}
        ltable[i] = [run_long(lf, p) for lf in longs]
        lotable[i] = [run_long(lf, p, num_speakers=lf["item"]["speakers"]) for lf in longs]
    print(f"grid of {len(combos)} parameter sets scored on {len(its)} clips and {len(longs)} long inputs in "
          f"{time.perf_counter() - t0:.0f} s\n", flush=True)

    def fold_objective(i, names, long_idx):
        return objective([table[i][o] for o in names] + [ltable[i][j] for j in long_idx],
                         [otable[i][o] for o in names if o in otable[i]] + [lotable[i][j] for j in long_idx])

    # leave one clip out
    print("LEAVE-ONE-CLIP-OUT (parameters tuned on all other clips and the long inputs without the held clip, "
          "scored on the held clip; oracle = the true count given, same parameters)")
    print(HEADER + "  oracle  chosen " + " ".join(keys))
    loo_rows, chosen, loo_oracle = [], [], []
    for it in its:
        others = [o["name"] for o in its if o["name"] != it["name"]]
        long_idx = [j for j, lf in enumerate(longs) if it["name"] not in lf["names"]]
        best = min(table, key=lambda i: (fold_objective(i, others, long_idx), i))
        r = table[best][it["name"]]
        loo_rows.append(r)
        chosen.append(best)
        o = otable[best].get(it["name"])
        if o is not None:
            loo_oracle.append(o)
        print(row(it["name"], r, f"  {pct(o and o.get('der'))}  " + " ".join(f"{combos[best][k]}" for k in keys)),
              flush=True)
    print(summary("LOO", loo_rows))
    print(summary("LOO, true count given", loo_oracle))
    best_all = min(table, key=lambda i: (fold_objective(i, list(table[i]), range(len(longs))), i))
    print(f"tuned on all clips: {combos[best_all]}  (shipped default: "
          f"{ {k: getattr(ClusterParams(), k) for k in keys} })")
    print(f"parameter sets chosen across folds: { {str(combos[c]): chosen.count(c) for c in set(chosen)} }\n")

    print("WHAT THE SEGMENTATION MODEL HEARS (the limit of any count built on it)")
    heard = {}
    for it in its:
        if it["kind"] == "ami":
            line, heard[it["name"]] = hearing(feats[it["name"]], refs[it["name"]], it)
            print(line, flush=True)
    if heard:
        exact, worst, reach = count_ceiling(heard, ClusterParams().min_speaker_seconds)
        print(f"count ceiling (a person counts when heard >= {ClusterParams().min_speaker_seconds} s): exact "
              f"reachable on {exact} of {len(heard)} AMI clips, worst miss at least {worst}; reachable per clip "
              + ", ".join(f"{n.removeprefix('ami_')} {reach[n]}/{len(heard[n])}" for n in heard))
    print()

    # shipped defaults and the oracle count
    print("SHIPPED DEFAULTS (estimated count) and with the true count given (oracle)")
    print(HEADER + "   oracle DER   (pyannote.metrics DER)")
    dflt, orac = [], []
    for it in its:
        r = run(it, ClusterParams())
        o = run(it, ClusterParams(), num_speakers=it["speakers"])
        dflt.append(r)
        orac.append(o)
        ex = score(local.label(feats[it["name"]], opts, ClusterParams()), it, refs[it["name"]], exact=True)
        print(row(it["name"], r, f"  {pct(o.get('der'))}  spk {o['spk']}   ({pct(ex.get('der'))})"), flush=True)
    print(summary("defaults", dflt))
    print(summary("defaults + true count", orac))
    print()

    if not args.skip_peer:
        print("PEER: pyannote 3.1 recipe with the same offline models (threshold 0.7, centroid AHC)")
        print(HEADER)
        peer = []
        for it in its:
            r = score(_PeerResult(pyannote_recipe(it["audio"])), it, refs[it["name"]]) | {"kind": it["kind"]}
            peer.append(r)
            print(row(it["name"], r), flush=True)
        print(summary("peer", peer))
        print()

    if longs:
        long_inputs(args, longs)


# --------------------------------------------------------------------------- long inputs
#: concatenations of dev clips: (name, clips); speakers merge by AMI id
CONCATS = [
    ("dev00+dev01 (same 2 people)", ["ami_dev00", "ami_dev01"]),
    ("trn00+trn03 (3 people)", ["ami_trn00", "ami_trn03"]),
    ("trn04+trn05 (7 people)", ["ami_trn04", "ami_trn05"]),
    ("dev00+trn06 (5 people)", ["ami_dev00", "ami_trn06"]),
    ("trn05+trn06+trn08 (11 people)", ["ami_trn05", "ami_trn06", "ami_trn08"]),
    ("all 9 AMI (4.5 min, 21 people)", ["ami_dev00", "ami_dev01", "ami_trn00", "ami_trn03", "ami_trn04",
                                        "ami_trn05", "ami_trn06", "ami_trn08", "ami_trn09"]),
    ("6 monologues (3 takes of 1 reader: 4 people)", "first6"),
    ("6 monologues (6 people)", "distinct6"),
]


def voice(name: str) -> str:
    """Speaker key of a single-speaker clip: clips of one recording (LibriVox chapter, LJ Speech, an NST
    session, a LibriSpeech chapter) differ only in a trailing segment number and share the voice."""
    return re.sub(r"[-_]u?\d+$", "", name)


def monologues(by_name: dict, how: str) -> list[str]:
    singles = [n for n, it in by_name.items() if it["kind"] == "single" and it.get("duration", 0) >= 5]
    if how == "first6":
        return singles[:6]
    out: list[str] = []
    for n in singles:  # one clip per voice, at most 15 s each
        if by_name[n]["duration"] <= 15 and voice(n) not in {voice(o) for o in out}:
            out.append(n)
    return out[:6]


def concat(names: list[str], by_name: dict) -> tuple[np.ndarray, list, int]:
    """Audio, merged reference turns and true speaker count of clips played one after the other."""
    from vidtrans.audio import load_audio
    from vidtrans.schema import SpeakerTurn

    wavs, ref, t = [], [], 0.0
    for n in names:
        it = by_name[n]
        w = load_audio(it["audio"])[: int(30 * 16000)] if it["rttm"] else load_audio(it["audio"])
        wavs.append(w)
        if it["rttm"]:
            ref += [SpeakerTurn(x.start + t, min(x.end, 30.0) + t, x.speaker) for x in reference(it) if x.start < 30.0]
        else:
            ref.append(SpeakerTurn(t, t + w.size / 16000, voice(it["name"])))
        t += w.size / 16000
    return np.concatenate(wavs), ref, len({x.speaker for x in ref})


def long_features(args, cache) -> list[dict]:
    """Model outputs of every concatenation (cached like the clips'), with merged references."""
    from vidtrans import diarize as dz
    from vidtrans.diarize import _base, local

    by_name = {it["name"]: it for it in items()}
    if "ami_dev00" not in by_name:
        return []
    out = []
    t0 = time.perf_counter()
    for label, names in CONCATS:
        names = monologues(by_name, names) if isinstance(names, str) else names
        audio, ref, n_true = concat(names, by_name)
        tag = hashlib.sha1("+".join(names).encode()).hexdigest()[:12]
        key = cache / args.preset / f"concat-{tag}-{audio.size}.pkl" if cache else None
        if key is not None and key.exists():
            feats = pickle.loads(key.read_bytes())
        else:
            feats = local.analyze(_base._AudioSource(audio), dz.DiarizeOptions(preset=args.preset))
            if key is not None:
                key.parent.mkdir(parents=True, exist_ok=True)
                tmp = key.with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps(feats))
                tmp.replace(key)
        out.append({"label": label, "names": names, "feats": feats, "ref": ref, "minutes": audio.size / 16000 / 60,
                    "item": {"speakers": n_true, "uem": (0.0, audio.size / 16000), "rttm": None}})
    print(f"features of {len(out)} long inputs: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def long_inputs(args, longs: list[dict]) -> None:
    from vidtrans import diarize as dz
    from vidtrans.diarize import local

    print("LONG INPUTS (dev clips played one after the other; reference merged by speaker id; shipped defaults)")
    print(f"{'input':46} {'min':>4} {'spk':>7} {'DER':>5} {'miss':>5} {'FA':>5} {'conf':>5}  oracle DER")
    opts = dz.DiarizeOptions(preset=args.preset)
    for lf in longs:
        n_true = lf["item"]["speakers"]
        d, o = local.label(lf["feats"], opts), local.label(lf["feats"], replace(opts, num_speakers=n_true))
        r, ro = score(d, lf["item"], lf["ref"]), score(o, lf["item"], lf["ref"])
        print(f"{lf['label']:46} {lf['minutes']:4.1f} {r['spk']:>3}/{n_true:<3} {pct(r['der'])} {pct(r['miss'])} "
              f"{pct(r['fa'])} {pct(r['conf'])}  {pct(ro['der'])}", flush=True)
    print()


# --------------------------------------------------------------------------- speed (fresh processes)
def speed_worker(args) -> None:
    """One timed run in a fresh process: vidtrans on its default runtime (onnx: no torch import),
    the peer on torch + pyannote.audio, as it ships."""
    t_proc = time.perf_counter()
    from vidtrans import diarize as dz
    from vidtrans.audio import probe

    t0 = time.perf_counter()
    if args.system == "peer":
        import torch

        torch.set_num_threads(args.threads)
        from vidtrans.diarize_models import TorchCamPlusPlus, load_segmentation_model

        load_segmentation_model("cpu"), TorchCamPlusPlus("cpu")
    else:
        from vidtrans.diarize_models import load_embedding_model, load_segmentation

        load_segmentation("cpu", args.runtime, args.threads), load_embedding_model("cpu", args.runtime, args.threads)
    t_load = time.perf_counter() - t0
    duration = probe(args.audio).duration
    if args.system == "peer":
        n = len(pyannote_recipe(args.audio).labels())
    else:
        n = len(dz.diarize(args.audio, dz.DiarizeOptions(preset=args.preset, runtime=args.runtime,
                                                         num_threads=args.threads)).speakers)
    t_end = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print("@@" + json.dumps({"load": t_load, "run": t_end - t0 - t_load, "total": t_end - t0,
                             "process": t_end - t_proc, "cpu": ru.ru_utime + ru.ru_stime,
                             "duration": duration, "speakers": n, "torch": "torch" in sys.modules}))


def speed(args) -> None:
    from vidtrans.audio import load_audio, write_wav

    its = [i for i in items() if i["rttm"]]
    base = np.concatenate([load_audio(i["audio"])[: 30 * 16000] for i in its])
    print("(on a shared machine wall time depends on the neighbours; CPU time of the process does much less:\n"
          " with 1 thread and an idle core, CPU-RTF is the wall-clock RTF)")
    print(f"SPEED: 10-minute file (the {len(its)} diarization clips, tiled with gain changes); RTF = seconds / 600, "
          "model loading included, fresh process per run, vidtrans and peer alternating")
    with tempfile.TemporaryDirectory() as tmp:
        reps = int(np.ceil(600 * 16000 / base.size))
        audio = np.concatenate([base * g for g in np.linspace(0.6, 1.2, reps)])[: 600 * 16000].astype(np.float32)
        path = write_wav(Path(tmp) / "ten_minutes.wav", audio)
        print(f"{'threads':>7} {'system':22} {'load s':>7} {'run s':>7} {'RTF(load+run)':>14} {'RTF(process)':>13} "
              f"{'CPU-RTF':>8} spk")
        for threads in (1, 2):
            res: dict[str, list] = {}
            for rep in range(args.repeats):
                for system in ("vidtrans/" + args.preset, "peer"):
                    cmd = [sys.executable, __file__, "--speed-worker", "--system", system.split("/")[0],
                           "--preset", args.preset, "--audio", str(path), "--threads", str(threads),
                           "--runtime", args.runtime]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    line = next((x for x in proc.stdout.splitlines() if x.startswith("@@")), None)
                    if line is None:
                        raise RuntimeError(proc.stderr[-2000:])
                    r = json.loads(line[2:])
                    res.setdefault(system, []).append(r)
                    print(f"{threads:>7} {system:22} {r['load']:7.1f} {r['run']:7.1f} {r['total'] / 600:14.3f} "
                          f"{r['process'] / 600:13.3f} {r['cpu'] / 600:8.3f} {r['speakers']}", flush=True)
            v, p = (min(x["total"] for x in res[s]) for s in ("vidtrans/" + args.preset, "peer"))
            vc, pc = (min(x["cpu"] for x in res[s]) for s in ("vidtrans/" + args.preset, "peer"))
            print(f"{threads:>7} best-of-{args.repeats}: vidtrans RTF {v / 600:.3f}, peer RTF {p / 600:.3f}, "
                  f"vidtrans/peer time ratio {v / p:.2f}; CPU seconds per audio second (whole process, "
                  f"imports included) {vc / 600:.3f} vs {pc / 600:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speed-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--system", default="vidtrans")
    ap.add_argument("--audio")
    ap.add_argument("--preset", default="accurate")
    ap.add_argument("--threads", type=int, default=1, help="model threads for the accuracy part (default 1)")
    ap.add_argument("--runtime", default="auto", help="vidtrans model runtime: auto (openvino on CPU when installed, else onnx), openvino, onnx or torch")
    ap.add_argument("--cache", default="", help="folder to keep model outputs per clip between runs")
    ap.add_argument("--repeats", type=int, default=2, help="speed runs per system and thread count")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    if args.speed_worker:
        return speed_worker(args)
    if not args.skip_accuracy:
        accuracy(args)
    if not args.skip_speed:
        speed(args)


if __name__ == "__main__":
    main()
