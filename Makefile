# slm-course: `make lab` to learn, `make test` to check everything.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := set -o pipefail; $(PY) -m pip install --quiet
# pip's local index folders print harmless "... is ignored" lines for every package; hide those.
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
# make test keeps its cache inside the clone, so every CI run proves a cold fetch.
TEST_ENV := SLM_COURSE_HOME=$(CURDIR)/.cache TIKTOKEN_CACHE_DIR=$(CURDIR)/.cache/tiktoken \
	HF_HOME=$(CURDIR)/.cache/huggingface HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONHASHSEED=0 \
	TORCHINDUCTOR_CACHE_DIR=$(CURDIR)/.cache/torchinductor
NOTEBOOKS := $(wildcard notebooks/*.ipynb) $(wildcard solutions/*.ipynb)

.PHONY: lab test venv site serve-extra assets assets-test execute build-exercises bench clean help

help:
	@echo "make lab    create .venv, install, fetch assets, open JupyterLab on notebooks/"
	@echo "make test   create .venv if needed, fetch assets, run the whole test suite"
	@echo "make execute          re-run every notebook and store its outputs"
	@echo "make build-exercises  write exercises/ from solutions/"
	@echo "make bench            run the benchmark scripts"
	@echo "make site             build the course site (static HTML of every chapter) into site/"
	@echo "make serve-extra      add llama.cpp (llama-cpp-python[server]) for chapter 10's serving (compiles, ~11 min once)"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: install it, or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip $(QUIET_PIP)
	$(PIP) -r requirements.txt $(QUIET_PIP)
	$(PIP) --no-deps -e . $(QUIET_PIP)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (slm-course)" >/dev/null
	touch $(STAMP)

# llama.cpp's bindings compile from source (about 11 minutes on 2 cores, once: pip keeps the built wheel).
# The course site's generator (MkDocs Material + mkdocs-jupyter), pinned in requirements-dev.txt.
DEV_STAMP := $(VENV)/.installed-dev
$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(PIP) -r requirements-dev.txt $(QUIET_PIP)
	touch $(DEV_STAMP)

SERVE_STAMP := $(VENV)/.installed-serve
serve-extra: $(SERVE_STAMP)

$(SERVE_STAMP): requirements-serve.txt $(STAMP)
	@command -v cc >/dev/null && command -v cmake >/dev/null || { echo "llama-cpp-python needs a C/C++ compiler and cmake (Debian: apt-get install build-essential cmake)"; exit 1; }
	$(PIP) -r requirements-serve.txt $(QUIET_PIP)
	touch $(SERVE_STAMP)

assets: $(STAMP)
	$(VENV)/bin/slm-course fetch --all

lab: assets
	mkdir -p work
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

assets-test: $(STAMP) $(SERVE_STAMP) $(DEV_STAMP)
	$(TEST_ENV) $(VENV)/bin/slm-course fetch --all
	$(TEST_ENV) $(VENV)/bin/slm-course build-shared

test: assets-test
	$(TEST_ENV) $(PY) -m pytest --durations=25 $(PYTEST_ARGS)

execute: assets-test
	for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(TEST_ENV) $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=600 "$$nb" || exit 1; \
	done

build-exercises: $(STAMP)
	$(VENV)/bin/slm-course build-exercises

site: $(DEV_STAMP)
	$(PY) docs/build_site.py --out site

bench: assets-test
	for script in benchmarks/*.py; do echo "== $$script"; $(TEST_ENV) $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .cache .pytest_cache
