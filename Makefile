# Two commands: `make demo` (sample data -> precompute -> serve) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(HASH)
BENCH_STAMP := $(VENV)/.bench-$(HASH)
DEMO_DIR ?= demo-data
DEMO_SEED ?= 0

.PHONY: demo demo-data screenshots test install bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	rm -f $(VENV)/.bench-*
	touch $(BENCH_STAMP)

install: $(STAMP)

demo: demo-data
	$(BIN)/cryoet-ng serve --data-root $(DEMO_DIR)

# Sample tree at demo size, precomputed (a re-run skips finished work), with the portal's
# state files exported. Generated again when the generator changed since (a tree from an
# older generator lacks what was added later: the surface mesh 107 went unseen that way).
SAMPLE_SOURCES := $(wildcard cryoet_ng/sample/*.py)
$(DEMO_DIR)/sample-manifest.json: $(SAMPLE_SOURCES) | $(STAMP)
	$(BIN)/cryoet-ng sample $(DEMO_DIR) --size demo --seed $(DEMO_SEED)

demo-data: install $(DEMO_DIR)/sample-manifest.json
	$(BIN)/cryoet-ng precompute $(DEMO_DIR)
	$(BIN)/cryoet-ng export-states $(DEMO_DIR) --local-urls

# The README screenshots, taken by the real viewer in headless Chromium.
screenshots: demo-data
	$(BIN)/python -m tools.screenshots --data-root $(DEMO_DIR) --out docs/screenshots

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_DIR) .states .pytest_cache
