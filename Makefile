# One target per task; CI runs exactly `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest docs reliability difftest bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m example_app

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term-missing:skip-covered --cov-fail-under=85

# The site must build without a warning; its snippets are run by tests/test_docs.py.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The full load/fault/race/fuzz runs against the example app (minutes); the
# reduced forms run in `make test` through the `reliability` pytest marker.
reliability: $(STAMP)
	FLASH_RELIABILITY=full $(BIN)/pytest tests/reliability -m reliability -s -p no:cacheprovider -q -rxX

# The Django oracle at length (docs/testing.md): N random queries per database through
# Django and Flash DB, the agreement per class; a reduced run is in `make test`.
# Fails on a class that is neither deliberate nor known open, or a known one now gone.
SEED ?= 1
N ?= 3000
difftest: $(STAMP)
	$(BIN)/python -m tests.oracle --seed $(SEED) -n $(N) --strict

test: lint typecheck docs pytest

# The benchmark suite (not part of `make test`); e.g. make bench BENCH_ARGS="--scale 0.1".
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV)
