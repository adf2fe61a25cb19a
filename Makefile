# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv pebble test-components lint unit bench clean

$(BIN)/certfleet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/certfleet

pebble:
	scripts/install-test-components --pebble-only

test-components:
	scripts/install-test-components

# Needs only Pebble: no root, no system service.
demo: venv pebble
	$(BIN)/python tools/demo.py

lint: venv
	$(BIN)/ruff check src tests tools bench
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q tests/unit

test: venv test-components lint
	$(BIN)/pytest -q

# The figures of issue 13 against their targets; a full run rewrites bench/FIGURES.md.
bench: venv test-components
	$(BIN)/python bench/figures.py

clean:
	rm -rf $(VENV) .cache demo-state
