# make book    create .venv if missing, install the pinned environment, train the preset's sweep, build the book
# make core    the same for the core chapters only (methods, C1-C5, C7: the main sweep's runs, _toc_core.yml)
# make test    the whole test suite (what .ci/run calls)
# PRESET=auto|smoke|cpu|gpu (default auto: $SSLGEO_PRESET, else gpu with CUDA, else cpu)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PRESET ?= auto
ifneq ($(PRESET),auto)
export SSLGEO_PRESET := $(PRESET)
endif

.PHONY: book core train train-core test env clean

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

train-core: env
	$(BIN)/sslgeo train --preset $(PRESET) --main-only

core: train-core
	$(BIN)/jupyter-book build . -W -n --keep-going --toc _toc_core.yml

test: env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf _build
