# Two commands do all the set-up on a fresh Debian machine with Python 3.11:
#   make run   - install, migrate, load the demo data, serve http://127.0.0.1:8050
#   make test  - install test tools (and Debian's Chromium when root), run the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8050
PYTEST_ARGS ?=

.PHONY: run test bench install install-dev system-deps lint migrate demo clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Python 3.11 or newer is needed ($(PYTHON) is $$($(PYTHON) -V 2>&1))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv with apt-get ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	    $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "error: '$(PYTHON) -m venv' failed; install it with: sudo apt-get install python3-venv"; exit 1; \
	  fi; }
	@$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Browser tests drive Debian's Chromium; PDF tests read PDFs with poppler-utils; TLS tests
# make a certificate with openssl.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v pdftotext >/dev/null || ! command -v openssl >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium, fonts-dejavu and poppler-utils with apt-get ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium fonts-dejavu poppler-utils openssl >/dev/null; \
	  else \
	    echo "error: the browser tests need Chromium and poppler-utils; install them with:"; \
	    echo "  sudo apt-get install -y chromium fonts-dejavu poppler-utils openssl"; exit 1; \
	  fi; \
	fi

migrate: install
	$(BIN)/python -m etl migrate

demo: install
	$(BIN)/python -m etl demo

run: install
	$(BIN)/python -m etl bootstrap
	$(BIN)/python -m dashboard users demo
	$(BIN)/gunicorn --config gunicorn.conf.py --bind $(HOST):$(PORT) dashboard.app:server

test: install-dev system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The small scale (about two minutes); `BENCH_ARGS="--scale large --json bench.json"` for the
# issue's large company. Needs Chromium for the PDF part.
BENCH_ARGS ?=
bench: install-dev system-deps
	$(BIN)/python -m benchmarks --scale small $(BENCH_ARGS)

lint: install-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
