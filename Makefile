# bullbridge: `make demo` and `make test` bootstrap everything they need
# (virtualenv, locked Python deps, npm ci) and skip what is already in place.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: bootstrap browser test flakes demo bench compat chaos ha django6 lint format-check format typecheck check lock clean

$(STAMP): pyproject.toml requirements/dev.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/dev.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bootstrap: $(STAMP) $(NODE_STAMP) browser

## Debian's chromium for the dashboard's browser test (Playwright drives it; never `playwright install`).
browser:
	@if [ -z "$$BULLBRIDGE_SKIP_BROWSER" ] && [ ! -x "$${BULLBRIDGE_CHROMIUM:-/usr/bin/chromium}" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the dashboard browser test"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	  else \
	    echo "chromium is missing: sudo apt-get install chromium (or set BULLBRIDGE_CHROMIUM=/path/to/chrome)"; \
	    exit 1; \
	  fi; \
	fi

## The whole suite: the style checks, then unit, interop (real Node + real Redis), properties.
## Starts its own Redis. Prints its 10 slowest tests. Timing rules for tests: tests/README.md.
## Two pytest processes, a test file each at a time (pytest-xdist --dist loadfile), each with its own
## private Redis and Node driver: the suite mostly waits on Redis, Node and timers, so two halve its
## wall time on 2 cores (7m49s -> 4m01s measured); PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
test: check
	$(PY) -m pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) --durations=10 $(PYTEST_ARGS)

## The suite FLAKES_RUNS times (default 10) from clean clones of HEAD, each its own `make test`;
## FLAKES_LOAD=cpu loads every core with stress-ng meanwhile. Prints a table of passed/failed,
## wall time and failing tests per run, and writes it to <tmp>/flakes-report.md (tests/flakes.py).
FLAKES_RUNS ?= 10
FLAKES_LOAD ?=
flakes:
	$(PYTHON) tests/flakes.py --runs $(FLAKES_RUNS) $(if $(FLAKES_LOAD),--load $(FLAKES_LOAD)) $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

## The front door: Node and Python exchanging jobs, with a summary table.
demo: $(STAMP) $(NODE_STAMP)
	$(PY) -m examples.layer15.demo

## Side-by-side benchmark: Node BullMQ vs bullbridge vs the Python port (bench/README.md).
## BENCH_ARGS=--quick for a < 30 s smoke run; e.g. BENCH_ARGS="--only node,bullbridge --concurrency 10".
BENCH_ARGS ?=
bench: $(STAMP) $(NODE_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

## The compatibility matrix: every interop scenario for each Node bullmq x Python port pair of
## compat/matrix.toml, each installed in a temporary directory (needs npm and PyPI), two pairs at a
## time (--jobs). Writes compat/MATRIX.md and compat/matrix.json;
## COMPAT_ARGS="--node 5.81.5 --only pause" narrows it.
COMPAT_ARGS ?=
compat: $(STAMP) $(NODE_STAMP)
	$(PY) compat/run.py $(COMPAT_ARGS)

## The full chaos run: 10,000 jobs, Python and Node workers killed at random, one Redis crash;
## then the network table: black-holed, reset, cut, slow connections, bullbridge beside Node (docs/faults.md).
CHAOS_ARGS ?=
NETWORK_ARGS ?=
chaos: $(STAMP) $(NODE_STAMP)
	$(PY) -m tests.chaos.run $(CHAOS_ARGS)
	$(PY) -m tests.faults.network $(NETWORK_ARGS)

## The Django integration's tests (tests/contrib) on Django 6's own django.tasks, which needs Python 3.12+
## (the suite runs on 3.11 with the django-tasks backport): a venv of its own, .venv-django6.
PYTHON312 ?= python3.12
DJANGO6 := .venv-django6
django6: $(NODE_STAMP)
	@test -x $(DJANGO6)/bin/python || $(PYTHON312) -m venv $(DJANGO6)
	grep -v -i -E '^(django|django-tasks|django-stubs-ext)==' requirements/dev.lock | \
	  $(DJANGO6)/bin/pip install -q --disable-pip-version-check -r /dev/stdin 'Django>=6.0,<6.1'
	$(DJANGO6)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(DJANGO6)/bin/python -m pytest -p no:cacheprovider tests/contrib

## The HA run: Sentinel kill -9 / forced failover (default config and min-replicas-to-write 1)
## and Cluster resharding under load, bullbridge beside Node; prints the table (tests/ha/run.py).
## HA_ARGS="--jobs 600 --only failover" narrows it.
HA_ARGS ?=
ha: $(STAMP) $(NODE_STAMP)
	$(PY) -m tests.ha.run $(HA_ARGS)

## Style, as CI checks it (part of `make test`): ruff's lint with complexity <= 15,
## ruff's formatter, and mypy --strict (unused ignores reported) on the package and the reference apps.
STYLED := bullbridge tests bench examples compat
lint: bootstrap
	$(PY) -m ruff check $(STYLED)

format-check: bootstrap
	$(PY) -m ruff format --check $(STYLED)

typecheck: bootstrap
	$(PY) -m mypy bullbridge examples/layer15 examples/flask_app examples/fastapi_app

check: lint format-check typecheck

## Apply the formatter and the lint's safe fixes.
format: bootstrap
	$(PY) -m ruff format $(STYLED)
	$(PY) -m ruff check --fix $(STYLED)

## Re-pin requirements/dev.lock from the current venv (after changing pyproject.toml).
lock:
	{ head -2 requirements/dev.lock; $(PY) -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > requirements/dev.lock.new
	mv requirements/dev.lock.new requirements/dev.lock

clean:
	rm -rf $(VENV) $(DJANGO6) node_modules .pytest_cache .mypy_cache .ruff_cache
