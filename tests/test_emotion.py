"""Speech emotion (vidtrans.emotion): heuristic, trainable acoustic and pretrained backends on real speech."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from vidtrans import emotion as em
from vidtrans import emotion_acoustic as ea
from vidtrans.schema import Segment, Transcript

SR = 16_000


def _emodb_actor03(shared_eval: Path) -> dict[str, np.ndarray]:
    d = shared_eval / "emotion"
    names = {"anger": "emodb_03a01Wa.wav", "boredom": "emodb_03a04Lc.wav", "neutral": "emodb_03a01Nc.wav",
             "happiness": "emodb_03a01Fa.wav", "sadness": "emodb_03a02Ta.wav", "fear": "emodb_03a04Ad.wav"}
    return {k: ea.read_clip(d / v) for k, v in names.items()}


def _conversation(clips: list[tuple[np.ndarray, str, str]], gap: float = 0.3) -> tuple[Transcript, np.ndarray]:
    """Concatenate real clips into one recording; one segment per clip (speaker, text)."""
    parts, segs, t = [], [], 0.0
    for y, speaker, text in clips:
        parts += [y, np.zeros(int(gap * SR), np.float32)]
        segs.append(Segment(t, t + len(y) / SR, text, speaker=speaker))
        t += len(y) / SR + gap
    audio = np.concatenate(parts).astype(np.float32)
    return Transcript(segments=tuple(segs), duration=len(audio) / SR), audio


@pytest.fixture(scope="module")
def actor03(shared_eval):
    return _emodb_actor03(shared_eval)


def test_heuristic_arousal_and_valence(actor03):
    """Anger is more aroused than boredom/sadness of the same actor; positive words beat negative ones."""
    pos, neg = "I love this, it is wonderful and great!", "This is terrible, I hate it, it is awful."
    clips = [(actor03["anger"], "A", "Der Lappen liegt auf dem Eisschrank."),
             (actor03["boredom"], "A", "Der Lappen liegt auf dem Eisschrank."),
             (actor03["sadness"], "A", "Das will sie am Mittwoch abgeben."),
             (actor03["neutral"], "A", pos),
             (actor03["happiness"], "A", neg)]
    transcript, audio = _conversation(clips)
    out = em.analyze(transcript, audio, em.EmotionOptions(backend="heuristic"))
    e = [s.emotion for s in out.segments]
    assert all(x is not None and x.source == "heuristic:prosody+vader" for x in e)
    arousal = [x.scores["arousal"] for x in e]
    assert arousal[0] > arousal[1] and arousal[0] > arousal[2]
    assert e[3].scores["valence"] > 0.3 > -0.3 > e[4].scores["valence"]
    assert "positive" in e[3].label and "negative" in e[4].label
    assert arousal[0] > 0 > arousal[1]
    assert out.insights["emotion"]["speakers"]["A"]["seconds"] > 5
    # JSON round trip keeps the emotions
    assert Transcript.from_json(out.to_json()) == out


def test_heuristic_loud_fast_vs_soft_slow_same_speaker(sample_wav):
    """Real speech without ../shared: a louder, faster copy of one speaker's stretch reads as more aroused."""
    import librosa

    y = ea.read_clip(sample_wav)[int(6.4 * SR) : int(10.4 * SR)]
    calm = librosa.effects.time_stretch(y, rate=0.8) * 0.25
    loud = np.clip(librosa.effects.time_stretch(y, rate=1.25) * 2.5, -1, 1)
    transcript, audio = _conversation([(calm, "B", "oh hello"), (y, "B", "oh hello"), (loud, "B", "oh hello")])
    out = em.analyze(transcript, audio, em.EmotionOptions())
    a = [s.emotion.scores["arousal"] for s in out.segments]
    assert a[2] > a[1] > a[0]


def test_short_and_silent_segments_are_skipped_with_a_reason(sample_wav):
    y = ea.read_clip(sample_wav)[int(6.4 * SR) : int(9.4 * SR)]
    audio = np.concatenate([y, np.zeros(2 * SR, np.float32)])
    transcript = Transcript(segments=(
        Segment(0.0, 3.0, "oh hello, I didn't know you were there", speaker="A"),
        Segment(3.1, 3.3, "hm", speaker="A"),
        Segment(3.5, 4.8, "...", speaker="A"),
    ))
    out = em.analyze(transcript, audio)
    assert out.segments[0].emotion is not None and "emotion_skipped" not in out.segments[0].meta
    assert out.segments[1].emotion is None and "too short" in out.segments[1].meta["emotion_skipped"]
    assert out.segments[2].emotion is None and "silent" in out.segments[2].meta["emotion_skipped"]
    assert out.insights["emotion"]["skipped"] == 2


def test_backend_names_are_checked():
    from vidtrans.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="unknown emotion backend"):
        em.parse_backend("magic")
    assert em.parse_backend("acoustic:m.npz") == ("acoustic", "m.npz")
    with pytest.raises(ConfigurationError, match="needs a model"):
        em.get_backend(em.EmotionOptions(backend="acoustic"))


@pytest.fixture(scope="module")
def small_emodb(shared_eval, tmp_path_factory) -> Path:
    """A labels.csv over 3 actors x 4 emotions x 4 clips of the EmoDB folder (48 real clips)."""
    src = shared_eval / "emotion" / "emodb_train"
    rows, seen = [], {}
    for r in csv.DictReader((src / "labels.csv").open()):
        key = (r["speaker"], r["emotion"])
        if r["speaker"] in ("03", "09", "11") and r["emotion"] in ("anger", "sadness", "neutral", "happiness") and seen.get(key, 0) < 4:
            seen[key] = seen.get(key, 0) + 1
            rows.append(r)
    out = tmp_path_factory.mktemp("emo") / "labels.csv"
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "speaker", "emotion"])
        w.writeheader()
        for r in rows:
            w.writerow({"file": str(src / r["file"]), "speaker": r["speaker"], "emotion": r["emotion"]})
    return out


def test_train_predict_round_trip_via_cli(small_emodb, tmp_path, capsys):
    """`vidtrans emotion train` reports leave-one-speaker-out accuracy; the model round-trips and predicts."""
    from vidtrans.cli import main

    model_path = tmp_path / "emo.npz"
    rc = main(["emotion", "train", str(small_emodb.parent), "--labels", str(small_emodb), "--out", str(model_path),
               "--trained-on", "EmoDB subset (acted German)"])
    out = capsys.readouterr().out
    assert rc == 0 and model_path.is_file()
    assert "leave-one-speaker-out accuracy" in out and "speaker 03" in out and "confusion" in out
    model = ea.AcousticModel.load(model_path)
    assert model.labels == ["anger", "happiness", "neutral", "sadness"]
    assert model.trained_on == "EmoDB subset (acted German)"
    loso = model.validation["mean_accuracy"]
    assert loso >= 0.5, f"LOSO accuracy {loso:.2f} on 4 classes (chance 0.25)"
    assert set(model.validation["per_speaker"]) == {"03", "09", "11"}

    rows = list(csv.DictReader(small_emodb.open()))[:12]
    files = [r["file"] for r in rows]
    j = tmp_path / "pred.json"
    assert main(["emotion", "predict", *files, "--model", str(model_path), "--json", str(j), "--speakers", "name"]) == 0
    pred = json.loads(j.read_text())
    assert [p["file"] for p in pred] == files
    assert all(abs(sum(p["scores"].values()) - 1) < 1e-3 and p["label"] in model.labels for p in pred)

    # save/load keeps the weights exactly
    again = ea.AcousticModel.load(model.save(tmp_path / "copy.npz"))
    X = np.random.default_rng(0).normal(size=(6, model.global_clf.coef.shape[1]))
    np.testing.assert_allclose(again.predict_features(X, ["s"] * 6), model.predict_features(X, ["s"] * 6))

    # the acoustic backend labels a conversation of one (trained-on) speaker
    clips = [(ea.read_clip(r["file"]), "A", "") for r in rows[:6]]
    transcript, audio = _conversation(clips)
    labelled = em.analyze(transcript, audio, em.EmotionOptions(backend=f"acoustic:{model_path}"))
    assert all(s.emotion and s.emotion.label in model.labels for s in labelled.segments)
    assert labelled.insights["emotion"]["trained_on"] == "EmoDB subset (acted German)"


def test_model_of_another_feature_version_fails_clearly(tmp_path):
    labels = ["a", "b"]
    clf = ea.LinearSoftmax(np.zeros(3), np.ones(3), np.zeros((2, 3)), np.zeros(2))
    path = ea.AcousticModel(labels, None, clf, feature_version=ea.FEATURE_VERSION + 1).save(tmp_path / "old.npz")
    with pytest.raises(ea.EmotionModelError, match="features version"):
        ea.AcousticModel.load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(ea.EmotionModelError):
        ea.AcousticModel.load(tmp_path / "junk.npz")
    with pytest.raises(ea.EmotionModelError, match="not found"):
        ea.AcousticModel.load(tmp_path / "missing.npz")


def test_labels_from_file_names():
    assert ea.label_from_name("03a01Wa.wav") == ("anger", "03")
    assert ea.label_from_name("emodb_09a02Eb.wav") == ("disgust", "09")
    assert ea.label_from_name("03-01-05-01-02-01-12.wav") == ("anger", "12")
    assert ea.label_from_name("1001_DFA_ANG_XX.wav") == ("anger", "1001")
    assert ea.label_from_name("talk.wav") is None


def test_pretrained_backend_with_a_tiny_local_model(tmp_path, sample_wav):
    """The real transformers loading and inference code on a randomly initialised wav2vec2 classifier."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, num_labels=5, classifier_proj_size=16,
        id2label={0: "ang", 1: "hap", 2: "neu", 3: "sad", 4: "xyz"}, label2id={"ang": 0, "hap": 1, "neu": 2, "sad": 3, "xyz": 4},
    )
    transformers.Wav2Vec2ForSequenceClassification(config).save_pretrained(tmp_path / "tiny")
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=SR).save_pretrained(tmp_path / "tiny")
    y = ea.read_clip(sample_wav)[int(6.4 * SR) : int(12.4 * SR)]
    transcript, audio = _conversation([(y[: 3 * SR], "A", "hello"), (y[3 * SR :], "B", "there")])
    out = em.analyze(transcript, audio, em.EmotionOptions(backend=f"pretrained:{tmp_path / 'tiny'}", device="cpu"))
    for seg in out.segments:
        e = seg.emotion
        assert e is not None and e.label in em.COMMON_LABELS
        assert set(e.scores) <= {"anger", "happiness", "neutral", "sadness", "other"}
        assert abs(sum(e.scores.values()) - 1) < 1e-3 and e.source.startswith("pretrained:")
    assert em.map_label("Angry") == "anger" and em.map_label("LABEL_7") == "other"


def test_summary_change_points_and_plots():
    from vidtrans.schema import Emotion

    def seg(t, spk, lab):
        return Segment(t, t + 1, "x", speaker=spk, emotion=Emotion(lab, 0.9, {lab: 0.9}, "test"))

    t = Transcript(segments=(seg(0, "A", "neutral"), seg(1, "A", "anger"), seg(2, "A", "neutral"),
                             seg(3, "A", "anger"), seg(4, "A", "anger"), seg(5, "B", "sadness")))
    cps = em.change_points(t)
    assert cps == [{"time": 3, "speaker": "A", "from": "neutral", "to": "anger"}]
    s = em.speaker_summary(t)
    assert s["A"]["labels"] == {"anger": 0.6, "neutral": 0.4} and s["B"]["dominant"] == "sadness"
    import matplotlib

    matplotlib.use("Agg")
    assert em.plot_timeline(t) is not None and em.plot_distribution(t) is not None
    assert em.plot_confusion([[3, 1], [0, 4]], ["a", "b"]) is not None


def test_notebook_runs_headless(tmp_path, shared_eval):
    """04_emotion under papermill: trains on a small EmoDB subset (confusion plot) and labels the sample."""
    from conftest import ROOT, run_notebook

    nb = run_notebook(ROOT / "notebooks" / "04_emotion.ipynb", tmp_path / "04.ipynb", timeout=600,
                      backend="acoustic", train_speakers="03,09,11", train_emotions="anger,sadness,neutral",
                      model_out=str(tmp_path / "m.npz"), diarize=False)
    text = json.dumps(nb["cells"])
    assert "leave-one-speaker-out accuracy" in text and "segments labelled" in text
