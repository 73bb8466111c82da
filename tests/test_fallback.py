"""Temperature fallback with the sampling passes two at a time (vidtrans.transcribe.local._paired_fallback).

The pairs must judge exactly as faster-whisper's own ``generate_with_fallback``
does: a scripted decoder (results fixed per temperature) gives both the same
answer in every case; the real model shows the second decoder is loaded only at
a fallback and that a run gives the same text every time.  Speed is measured in
``bench/batched.py`` / ``bench/speed.py``, never here.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import numpy as np
import pytest

from vidtrans.audio import SAMPLE_RATE, load_audio
from vidtrans.models import ModelCache
from vidtrans.transcribe import TranscribeOptions
from vidtrans.transcribe import local

fw = pytest.importorskip("faster_whisper.transcribe")


class _Result:
    def __init__(self, tokens, score, no_speech):
        self.sequences_ids, self.scores, self.no_speech_prob = [tokens], [score], no_speech


class _Async:
    def __init__(self, result):
        self._result = result

    def result(self):
        return self._result


class _ScriptedDecoder:
    """CTranslate2's ``generate`` answering from *script*: temperature -> (text, score, no_speech_prob)."""

    def __init__(self, script, calls, name):
        self.script, self.calls, self.name = script, calls, name

    def generate(self, encoder_output, prompts, asynchronous=False, **kw):
        t = kw.get("sampling_temperature", 0.0) if kw.get("beam_size") == 1 else 0.0
        assert (kw.get("num_hypotheses") == 5) == (t > 0) and kw["max_length"] == 448
        self.calls.append((self.name, t, threading.current_thread().name))
        text, score, nsp = self.script[t]
        result = _Result([ord(c) for c in text], score, nsp)
        return [_Async(result)] if asynchronous else [result]


class _Tokenizer:
    def decode(self, tokens):
        return "".join(chr(t) for t in tokens)


def _owner(script, calls, helper: bool):
    owner = type("Owner", (), {})()
    owner.model = _ScriptedDecoder(script, calls, "main")
    owner.max_length, owner.time_precision, owner.logger = 448, 0.02, logging.getLogger("test")
    owner._fallback_decoder = (lambda: _ScriptedDecoder(script, calls, "helper")) if helper else (lambda: None)
    return owner


def _options(**kw):
    base = dict(beam_size=5, best_of=5, patience=1.0, length_penalty=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0,
                log_prob_threshold=-1.0, no_speech_threshold=0.6, compression_ratio_threshold=2.4,
                condition_on_previous_text=True, prompt_reset_on_temperature=0.5,
                temperatures=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], initial_prompt=None, prefix=None, suppress_blank=True,
                suppress_tokens=[-1], without_timestamps=False, max_initial_timestamp=1.0, word_timestamps=True,
                prepend_punctuations="", append_punctuations="", multilingual=False, max_new_tokens=None,
                clip_timestamps="0", hallucination_silence_threshold=None, hotwords=None)
    base.update(kw)
    return fw.TranscriptionOptions(**{f.name: base[f.name] for f in dataclasses.fields(fw.TranscriptionOptions)})


GOOD = "a plain sentence of speech"
LOOP = "ha " * 60  # compression ratio far over 2.4
TEMPS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _script(**by_temp):
    """Every temperature loops (score -0.5) unless given: name t02 = temperature 0.2."""
    out = {t: (LOOP, -0.5, 0.1) for t in TEMPS}
    for k, v in by_temp.items():
        out[int(k[1:]) / 10] = v
    return out


CASES = {
    "beam passes": _script(t00=(GOOD, -0.3, 0.1)),
    "first sample passes, second would too": _script(t02=(GOOD, -0.2, 0.1), t04=(GOOD + " too", -0.1, 0.1)),
    "second of the first pair passes": _script(t04=(GOOD, -0.4, 0.1)),
    "second pair": _script(t06=("low " + GOOD, -1.5, 0.1), t08=(GOOD, -0.6, 0.1)),
    "last, alone": _script(t10=(GOOD, -0.9, 0.1)),
    "all fail: best log prob under the ratio": _script(t02=("x y z w", -1.4, 0.1), t06=("q r s t", -1.2, 0.1)),
    "all fail, all loop: best log prob of all": {t: (LOOP, -0.5 - t, 0.1) for t in TEMPS},
    "silence stops the fallback": _script(t00=("um", -1.5, 0.9)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_pairs_choose_what_faster_whisper_chooses(name):
    script, opts = CASES[name], _options()
    seq_calls, pair_calls = [], []
    expected = fw.WhisperModel.generate_with_fallback(_owner(script, seq_calls, helper=False), None, [1, 2, 3],
                                                      _Tokenizer(), opts)
    got = local._paired_fallback(_owner(script, pair_calls, helper=True), None, [1, 2, 3], _Tokenizer(), opts)
    assert got[0].sequences_ids == expected[0].sequences_ids and got[1:] == expected[1:]
    # the pairs ran every temperature faster-whisper ran (and at most the one after it), the second of a pair
    # on the helper
    seq_t = [t for _, t, _ in seq_calls]
    pair_t = [t for _, t, _ in pair_calls]
    assert pair_t[: len(seq_t)] == seq_t and len(pair_t) - len(seq_t) <= 1
    assert all((who == "helper") == (t in (0.4, 0.8)) for who, t, _ in pair_calls)


def test_without_a_helper_the_passes_run_one_at_a_time():
    calls = []
    script = CASES["second pair"]
    got = local._paired_fallback(_owner(script, calls, helper=False), None, [1], _Tokenizer(), _options())
    assert got[2] == 0.8 and [t for _, t, _ in calls] == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert {who for who, _, _ in calls} == {"main"}


def test_when_pairs_are_used():
    assert local.fallback_pairs("cpu", decoder_threads=1, workers=1, budget=2)
    assert not local.fallback_pairs("cpu", decoder_threads=1, workers=1, budget=1)  # no idle core
    assert not local.fallback_pairs("cpu", decoder_threads=2, workers=1, budget=2)  # the decoder uses both
    assert not local.fallback_pairs("cpu", decoder_threads=1, workers=2, budget=2)  # two decoders already
    assert not local.fallback_pairs("cuda", decoder_threads=1, workers=1, budget=8)


def _phone(sample_wav):
    return load_audio(sample_wav)[: 20 * SAMPLE_RATE]


def test_second_decoder_loads_at_the_first_fallback_only(sample_wav):
    """Clean decoding never loads it; a fallback (forced here by an impossible compression ratio) does, and
    two fresh models give the same text (each sampler seeded the same way)."""
    clean = TranscribeOptions(model="tiny.en")
    models = ModelCache()
    model, _, _ = local.get_model(clean, models=models)
    if local.choose_device("cpu", "int8", 0).cpu_threads < 2:
        pytest.skip("one CPU core: no pairs")
    list(local.faster_whisper_engine(_phone(sample_wav), clean, models=models))
    assert model._helper is None and model.fallback_helper is not None

    forced = TranscribeOptions(model="tiny.en", extra={"compression_ratio_threshold": 0.1, "redecode": False})
    texts = []
    for _ in range(2):
        cache = ModelCache()
        m, _, _ = local.get_model(forced, models=cache)
        segs = list(local.faster_whisper_engine(_phone(sample_wav), forced, models=cache))
        assert m._helper is not None and m.fallback_helper is None
        assert segs and all(s.meta["temperature"] == 1.0 for s in segs)  # every pass failed: the last temperature
        texts.append(" ".join(s.text for s in segs))
    assert texts[0] == texts[1]
    off = TranscribeOptions(model="tiny.en", extra={"compression_ratio_threshold": 0.1, "redecode": False,
                                                    "fallback_pairs": False})
    m, _, _ = local.get_model(off, models=ModelCache())
    assert m.fallback_helper is None


def test_a_helper_that_cannot_load_leaves_sequential_sampling(sample_wav, caplog):
    forced = TranscribeOptions(model="tiny.en", extra={"compression_ratio_threshold": 0.1, "redecode": False})
    cache = ModelCache()
    m, _, _ = local.get_model(forced, models=cache)
    if m.fallback_helper is None:
        pytest.skip("one CPU core: no pairs")

    def broken():
        raise RuntimeError("out of memory")

    m.fallback_helper = broken
    segs = list(local.faster_whisper_engine(_phone(sample_wav), forced, models=cache))
    assert segs and m._helper is None and "sampling one at a time" in caplog.text
    assert np.isfinite([s.start for s in segs]).all()
