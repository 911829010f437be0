# The two commands a new user types are `make demo` and `make test`; both
# build the virtualenv they need first. Nothing else is required: no Docker,
# no account, no manual step.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The browser tests drive Debian's Chromium through Playwright (no browser download); installed when missing.
# Defined before any rule that lists it: make expands prerequisites as it reads them.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install install-dev demo test lint docs sandbox airflow bench clean

help:
	@echo "make demo     install, start the vendor sandbox, run every pipeline through Airflow, print what it wrote"
	@echo "make test     install test tools and run the whole suite"
	@echo "make lint     ruff check and ruff format --check on the whole tree"
	@echo "make docs     regenerate the README's dataset tables from the declarations"
	@echo "make sandbox  serve the vendor sandbox alone on http://127.0.0.1:8765"
	@echo "make airflow  Airflow's own UI (LocalExecutor, SQLite, 4 task slots) wired to the sandbox, on http://localhost:8080"
	@echo "make bench    the benchmarks under bench/"
	@echo "make clean    remove the virtualenv, local Airflow home and demo data"

$(VENV)/.runtime: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev $(CHROMIUM)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "the browser tests need Chromium at $(CHROMIUM): install it, or set CHROMIUM=/path/to/chromium"; exit 1; }
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium

demo: install
	$(BIN)/python -m include.demo

test: install-dev
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: install
	$(BIN)/python -m vendorflow.datasets.docs

sandbox: install
	$(BIN)/python -m include.sandbox --port 8765

airflow: install
	$(BIN)/python -m include.airflow_local $(ARGS)

# dlt, the benchmarks' peer, lives in a virtualenv of its own: its pins never meet Airflow's.
.venv-bench/.installed: requirements-bench.txt
	@test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q -r requirements-bench.txt
	@touch $@

bench: install-dev .venv-bench/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-bench .airflow data .pytest_cache
