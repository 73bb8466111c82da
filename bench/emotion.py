"""Speech emotion: the acoustic backend vs a plain MFCC + pitch + SVM baseline, same run, same folds.

    python bench/emotion.py [--folder ../shared/eval/emotion/emodb_train] [--test DIR] [--no-nested]

Both are scored by leave-one-speaker-out (LOSO) over the folder's actors: train
on all actors but one, predict the held-out actor, mean of the per-actor
accuracies.  The acoustic backend's regularisation C is the only tuned
hyper-parameter; with nesting (default) it is chosen inside each training fold
by an inner LOSO over the remaining actors, so the reported figure never saw
the held-out actor.  ``--test DIR`` trains on the whole folder and scores
another labelled folder (e.g. unseen actors), grouping its clips by speaker.
Times are wall seconds on this machine (noise when it is shared) and process
CPU seconds; the real-time factor is audio seconds / prediction seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidtrans import emotion_acoustic as ea  # noqa: E402

SR = ea.SAMPLE_RATE
C_GRID = (0.03, 0.1, 0.3)


def baseline_features(y: np.ndarray) -> np.ndarray:
    """The classic 30-line recipe: MFCC mean/std + YIN pitch mean/std (librosa)."""
    import librosa

    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20)
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=SR)
    return np.concatenate([mfcc.mean(1), mfcc.std(1), [np.log(f0).mean(), np.log(f0).std()]])


def baseline_loso(X, y, spk):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    per = {}
    pred = np.empty(len(y), dtype=object)
    for s in sorted(set(spk)):
        te = spk == s
        clf = make_pipeline(StandardScaler(), SVC(C=10)).fit(X[~te], y[~te])
        pred[te] = clf.predict(X[te])
        per[s] = float(np.mean(pred[te] == y[te]))
    return per, pred


def nested_loso(X, y, spk, labels):
    per, pred, chosen = {}, np.empty(len(y), dtype=object), {}
    for s in sorted(set(spk)):
        te = spk == s
        inner = {C: ea.leave_one_speaker_out(X[~te], y[~te], spk[~te], labels, C).mean_accuracy for C in C_GRID}
        C = max(inner, key=inner.get)
        chosen[s] = C
        s_clf, g_clf = ea.fit_classifiers(X[~te], y[~te], spk[~te], labels, C)
        P = ea.AcousticModel(list(labels), s_clf, g_clf).predict_features(X[te], spk[te])
        pred[te] = np.asarray(labels)[P.argmax(1)]
        per[s] = float(np.mean(pred[te] == y[te]))
    return per, pred, chosen


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", default=str(Path(__file__).resolve().parents[2] / "shared/eval/emotion/emodb_train"))
    ap.add_argument("--test", default=None, help="labelled folder of unseen speakers to score after training on --folder")
    ap.add_argument("--no-nested", dest="nested", action="store_false")
    args = ap.parse_args()
    clips = ea.read_labelled_folder(args.folder)
    audio = [ea.read_clip(c.path) for c in clips]
    y = np.array([c.label for c in clips])
    spk = np.array([c.speaker for c in clips])
    labels = sorted(set(y))
    seconds = sum(len(a) for a in audio) / SR
    print(f"{len(clips)} clips, {len(set(spk))} speakers, {len(labels)} classes, {seconds / 60:.1f} min of audio")

    ea.extract_features(audio[:2], list(spk[:2]))  # warm up (model load, numba JIT)
    ea.prosody_features(audio[0])
    baseline_features(audio[0])
    t, c = time.perf_counter(), time.process_time()
    Xb = np.vstack([baseline_features(a) for a in audio])
    tb, cb = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    X = ea.extract_features(audio, list(spk))
    tf, cf = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    ea.fit_classifiers(X, y, spk, labels, 0.1)
    tfit = time.perf_counter() - t

    per_b, pred_b = baseline_loso(Xb, y, spk)
    val = ea.leave_one_speaker_out(X, y, spk, labels, 0.1)
    print("\n== leave-one-speaker-out accuracy (mean over held-out actors) ==")
    print(f"peer  MFCC+pitch+SVM        : {np.mean(list(per_b.values())):.1%}")
    print(f"vidtrans acoustic (C=0.1)   : {val.mean_accuracy:.1%}")
    val_g = ea.leave_one_speaker_out(X, y, spk, labels, 0.1, speaker_norm=False)
    print(f"vidtrans, no speaker norm.  : {val_g.mean_accuracy:.1%}")
    n_pros = len(ea.prosody_features(audio[0]))
    for name, cols in (("whisper encoder only", slice(0, X.shape[1] - n_pros)), ("prosody/librosa only", slice(X.shape[1] - n_pros, None))):
        v = ea.leave_one_speaker_out(X[:, cols], y, spk, labels, 0.1)
        print(f"vidtrans, {name:<18}: {v.mean_accuracy:.1%}")
    if args.nested:
        per_n, pred_n, chosen = nested_loso(X, y, spk, labels)
        print(f"vidtrans, nested C tuning   : {np.mean(list(per_n.values())):.1%} (C chosen per fold: {chosen})")
    print("\nper held-out actor (peer / vidtrans):")
    for s in per_b:
        print(f"  {s}: {per_b[s]:.1%} / {val.per_speaker[s]:.1%}")
    print()
    print(val.format())

    print("\n== speed (this machine; wall / process CPU seconds) ==")
    print(f"peer features     : {tb:.1f} s / {cb:.1f} s CPU -> {seconds / tb:.0f}x real time")
    print(f"vidtrans features : {tf:.1f} s / {cf:.1f} s CPU -> {seconds / tf:.0f}x real time (wall), "
          f"{seconds / max(cf, 1e-9):.0f}x per CPU-second")
    print(f"vidtrans training : features + fit {tf + tfit:.1f} s (fit {tfit:.1f} s)")

    if args.test:
        tclips = ea.read_labelled_folder(args.test)
        model, _ = ea.train(clips, validate=False, trained_on="EmoDB folder")
        taudio = [ea.read_clip(c.path) for c in tclips]
        tspk = [c.speaker for c in tclips]
        P = model.predict(taudio, tspk)
        pred = np.asarray(model.labels)[P.argmax(1)]
        ty = np.array([c.label for c in tclips])
        print(f"\n== unseen speakers ({args.test}) ==")
        for s in sorted(set(tspk), key=str):
            m = np.array(tspk) == s
            print(f"  {s}: {np.mean(pred[m] == ty[m]):.1%} ({m.sum()} clips)")
        print(f"  all: {np.mean(pred == ty):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
