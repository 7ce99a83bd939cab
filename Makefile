# make book    create .venv if missing, install the pinned environment, train the preset's sweep, build the book
# make test    the whole test suite (what .ci/run calls)
# PRESET=auto|smoke|cpu|gpu (default auto: $SSLGEO_PRESET, else gpu with CUDA, else cpu)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PRESET ?= auto
ifneq ($(PRESET),auto)
export SSLGEO_PRESET := $(PRESET)
endif

.PHONY: book train test env clean

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $@

train: env
	$(BIN)/sslgeo train --preset $(PRESET)

book: train
	$(BIN)/jupyter-book build . -W -n --keep-going

test: env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf _build
