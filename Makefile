# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv pebble test-components lint unit bench mutate clean

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

# Mutation testing of the modules that hold the promises (not part of `make test`):
# writes mutation/report.md; fails while a mutant survives that mutation/equivalent.md
# does not explain.
$(BIN)/mutmut: | venv
	$(BIN)/pip install -q -e '.[test,mutate]'

mutate: $(BIN)/mutmut
	$(BIN)/python tools/mutate.py

bench: venv test-components
	$(BIN)/python bench/issue_bench.py

clean:
	rm -rf $(VENV) .cache demo-state mutants mutation/report.md
