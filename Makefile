# Two commands: `make demo` (sample data -> precompute -> serve) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(HASH)
BENCH_STAMP := $(VENV)/.bench-$(HASH)
DEMO_DIR ?= demo-data
DEMO_SEED ?= 0

.PHONY: demo test install bench lint clean

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

demo: install
	$(BIN)/cryoet-ng sample $(DEMO_DIR) --size demo --seed $(DEMO_SEED)
	$(BIN)/cryoet-ng precompute $(DEMO_DIR)
	$(BIN)/cryoet-ng serve --data-root $(DEMO_DIR)

test: install
	$(BIN)/python -m pytest

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO_DIR) .states .pytest_cache
