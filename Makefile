# Runyard's two commands: `make demo` and `make test` (README). `make bench` runs the benchmarks.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNYARD := $(VENV)/bin/runyard
PEERS_VENV ?= .venv-peers
RAY_VENV ?= .venv-ray
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-fast bench install install-test system-test-deps clean-demo

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,examples]'
	@touch $@

install: $(VENV)/.installed

## demo: install into .venv, start the embedded local server, log a run by hand, run the digits sweep live
demo: install
	$(RUNYARD) server start
	cd examples/quickstart && ../../$(PY) train.py --epochs 10
	$(RUNYARD) info $$($(RUNYARD) ls --project quickstart --limit 1 --json | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
	$(RUNYARD) run examples/digits-sweep --follow
	$(RUNYARD) ls --project digits
	$(RUNYARD) server status

## system-test-deps: system packages the tests need (apt-get update first)
system-test-deps:
	bash scripts/test-setup.sh

## test: everything the tests need, then the whole suite (slow end-to-end tests included)
test: install system-test-deps
	$(PY) -m pytest -q -p no:cacheprovider

## test-fast: the suite without the tests marked slow
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

## bench: side-by-side benchmarks against the peers (installed into their own venv)
bench: install
	PEERS_VENV=$(PEERS_VENV) bash benchmarks/setup_peers.sh
	RAY_VENV=$(RAY_VENV) bash benchmarks/setup_ray.sh
	mkdir -p bench-results
	PEERS_VENV=$(PEERS_VENV) $(PY) benchmarks/ingest.py --json bench-results/ingest.json
	PEERS_VENV=$(PEERS_VENV) $(PY) benchmarks/query.py --with-mlflow --json bench-results/query.json
	RAY_VENV=$(RAY_VENV) $(PY) benchmarks/dispatch.py --json bench-results/dispatch.json
