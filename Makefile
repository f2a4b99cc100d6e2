# Runyard's two commands: `make demo` and `make test` (README). `make bench` runs the benchmarks.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNYARD := $(VENV)/bin/runyard
PEERS_VENV ?= .venv-peers
RAY_VENV ?= .venv-ray
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-setup test-fast test-ui test-peers ui bench install install-test system-test-deps test-images clean-demo

# The web UI (web/, TypeScript) is built into the package's static folder, which `runyard server` serves at /.
UI_INDEX := runyard/server/static/index.html
UI_DEPS := web/node_modules/.package-lock.json
UI_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/package.json web/vite.config.ts web/tsconfig.json

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,examples]'
	@touch $@

$(UI_DEPS): web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

$(UI_INDEX): $(UI_DEPS) $(UI_SOURCES)
	cd web && npm run build

# The frameworks the distributed-run and integration tests drive for real (PyTorch, XGBoost, JAX, Ray, TensorFlow,
# Lightning, Transformers, LightGBM): ~1.5 GB of wheels, so only `make test` installs them, not `make demo`.
# One pip run for all of it (a second run over the same requirements costs ~40 s of resolving): it also stands for
# install's Python part, which `make test` therefore asks for after it.
$(VENV)/.installed-dist: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,examples,distributed-test,integrations-test]'
	@touch $(VENV)/.installed $@

## install-test: the test dependencies on top of install (the distributed-run frameworks)
install-test: $(VENV)/.installed-dist

## ui: build the web UI (npm ci && npm run build in web/)
ui: $(UI_INDEX)

install: $(VENV)/.installed $(UI_INDEX)

## demo: install into .venv, start the embedded local server, log a run by hand, push the digits data as a dataset,
## run the digits sweep (which reads it) live
demo: install
	$(RUNYARD) server start
	@echo "Web UI: $$($(RUNYARD) server status --json | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["url"])')/  (watch the sweep there)"
	cd examples/quickstart && ../../$(PY) train.py --epochs 10
	$(RUNYARD) info $$($(RUNYARD) ls --project quickstart --limit 1 --json | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
	cd examples/digits-sweep && ../../$(PY) prepare_data.py
	$(RUNYARD) datasets push examples/digits-sweep/data --name digits --project digits -m "scikit-learn's 8x8 digits"
	$(RUNYARD) run examples/digits-sweep --follow
	$(RUNYARD) ls --project digits
	$(RUNYARD) server status
	@echo "Web UI: $$($(RUNYARD) server status --json | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["url"])')/projects/digits"

## system-test-deps: system packages the tests need (apt-get update first)
system-test-deps:
	bash scripts/test-setup.sh

## test-images: the container tests' podman image (the host's Python, ~5 s), the wheels of numpy and scikit-learn,
## and the image as a directory for Charliecloud; made once, reused while current (runyard/testing/_images.py)
test-images: install system-test-deps
	$(PY) -m runyard.testing._images

## test-peers: the peers' own virtualenv (PEERS_VENV: MLflow and scikit-learn, pinned), never Runyard's; the
## MLflow-compatibility tests (tests/mlflow) drive the real MLflow client from it; idempotent
test-peers:
	PEERS_VENV=$(PEERS_VENV) bash benchmarks/setup_peers.sh

## test-ui: the web UI's unit tests (Vitest)
test-ui: $(UI_DEPS)
	cd web && npx vitest run

## test: everything the tests need, then the UI's unit tests and the whole suite (slow end-to-end and browser tests included):
## first, one at a time, the tests of the shared engines (Slurm, sshd, Ray, podman, Charliecloud) and of the pool
## accounts, which restart daemons and kill what accounts leave running (beside other tests on 2 cores their
## engines' runners miss their start-up times); then the rest on TEST_WORKERS pytest-xdist workers (they mostly
## wait for servers, runs and browsers: 3 keep 2 cores busy). The engine tests leave most of a core idle (they wait
## on daemons): the unit tests of BESIDE_ENGINES (no engine, no browser, no timing) run beside them at a lower CPU
## priority (nice), so the engines' processes still come first (no test that times a process's signals: tests/runner stays with the rest); their output follows the rest's.
TEST_WORKERS ?= 3
BESIDE_ENGINES := tests/store tests/search tests/records tests/launch tests/scheduler tests/docs tests/auth \
	tests/containers tests/registry tests/dataset_versions tests/flavors tests/test_snapshot.py tests/test_spec.py \
	tests/test_spec_notebook.py tests/test_media.py tests/test_proc.py tests/test_lint.py tests/test_layers.py
test: test-setup
	beside_log=$$(mktemp); \
	nice -n 10 $(PY) -m pytest -q -p no:cacheprovider --durations=10 -m "not engines and not job_accounts" \
		$(BESIDE_ENGINES) > $$beside_log 2>&1 & beside=$$!; \
	$(PY) -m pytest -q -p no:cacheprovider --durations=20 -m "engines or job_accounts"; first=$$?; \
	$(PY) -m pytest -q -p no:cacheprovider --durations=30 -n $(TEST_WORKERS) --dist loadgroup \
		-m "not engines and not job_accounts" $(addprefix --ignore=,$(BESIDE_ENGINES)); rest=$$?; \
	wait $$beside; side=$$?; echo "== the unit tests run beside the engine tests ($(BESIDE_ENGINES)):"; \
	cat $$beside_log; rm -f $$beside_log; \
	test $$first -eq 0 -a $$rest -eq 0 -a $$side -eq 0

## test-setup: everything the tests need. Its independent parts go at once (pip into .venv, the peers' virtualenv,
## npm ci and the UI's build, Debian's packages: each mostly waits on downloads and disk), then what needs them
test-setup:
	$(MAKE) --no-print-directory -j4 -O install-test ui system-test-deps test-peers
	$(MAKE) --no-print-directory install test-images test-ui

## test-fast: the suite without the tests marked slow
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" -n 2 --dist loadgroup

## bench: side-by-side benchmarks against the peers (installed into their own venv)
bench: install system-test-deps
	$(PY) -m pip install -q -e '.[ray]'  # the Ray backend's client, for dispatch.py's per-backend table
	PEERS_VENV=$(PEERS_VENV) bash benchmarks/setup_peers.sh
	RAY_VENV=$(RAY_VENV) bash benchmarks/setup_ray.sh
	mkdir -p bench-results
	PEERS_VENV=$(PEERS_VENV) $(PY) benchmarks/ingest.py --json bench-results/ingest.json
	PEERS_VENV=$(PEERS_VENV) $(PY) benchmarks/query.py --with-mlflow --json bench-results/query.json
	PEERS_VENV=$(PEERS_VENV) $(PY) benchmarks/mlflow_client.py --json bench-results/mlflow_client.json
	RAY_VENV=$(RAY_VENV) $(PY) benchmarks/dispatch.py --json bench-results/dispatch.json
	$(PY) benchmarks/reads_beside_writes.py --json bench-results/reads_beside_writes.json
	$(PY) benchmarks/dispatch_images.py --json bench-results/dispatch_images.json
	$(PY) benchmarks/output_metrics.py --json bench-results/output_metrics.json
	PEERS_VENV=$(PEERS_VENV) $(PY) benchmarks/datasets_push.py --json bench-results/datasets_push.json
