# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo demo-zipapp test venv pebble test-components lint unit bench mutate claims zipapp zipapp-venv coverage clean

$(BIN)/certfleet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,postgresql]'
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

# Coverage of the whole suite, the processes it starts included (not part of `make test`;
# slower than it, and its processes print nothing more). Report: .cache/coverage/report.txt
coverage: export CERTFLEET_COVERAGE_DIR = $(CURDIR)/.cache/coverage
coverage: export COVERAGE_RCFILE = $(CURDIR)/tools/coverage-suite.rc
coverage: venv test-components $(BIN)/coverage
	rm -rf .cache/coverage && mkdir -p .cache/coverage && chmod 1777 .cache/coverage
	$(BIN)/coverage run -m pytest -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report | tee .cache/coverage/report.txt

$(BIN)/coverage: | venv
	$(BIN)/pip install -q 'coverage>=7.10'

# Mutation testing of the modules that hold the promises (not part of `make test`):
# writes mutation/report.md; fails while a mutant survives that mutation/equivalent.md
# does not explain.
$(BIN)/mutmut: | venv
	$(BIN)/pip install -q -e '.[test,mutate]'

mutate: $(BIN)/mutmut
	$(BIN)/python tools/mutate.py

# Each row of SECURITY.md's promise table with its mechanism taken out of a copy of the
# source: the row's tests must fail (not part of `make test`; writes mutation/claims.md).
claims: venv test-components
	$(BIN)/python tools/claims_check.py

# The figures of issue 13 against their targets; a full run rewrites the "after" section of
# bench/FIGURES.md. Only Pebble is needed. BENCH_ARGS: more options, e.g. --quick, --profile.
BENCH_ARGS ?=
bench: venv pebble
	$(BIN)/python bench/figures.py $(BENCH_ARGS)

# One file holding certfleet and every dependency (a shiv zipapp), run by the system Python
# with nothing installed: `python3 dist/certfleet.pyz run`. cryptography and aiohttp carry
# compiled code, so the file is for one platform and Python version: the system Python's
# (here cp311, manylinux x86_64). Built with a shiv of its own venv under .cache/, made from
# that same Python. docs/dependencies.md says what is inside and why.
SYSTEM_PYTHON ?= /usr/bin/python3
PYZ           ?= dist/certfleet.pyz
ZIPAPP_VENV   := .cache/zipapp-venv
SHIV          := $(ZIPAPP_VENV)/bin/shiv
SHIV_VERSION  := 1.0.8

# A venv that no longer runs (its checkout moved: venvs hold absolute paths) is made again.
zipapp-venv:
	@$(SHIV) --version 2>/dev/null | grep -qx 'shiv, version $(SHIV_VERSION)' || { \
		rm -rf $(ZIPAPP_VENV) && $(SYSTEM_PYTHON) -m venv $(ZIPAPP_VENV) && \
		$(ZIPAPP_VENV)/bin/pip install -q 'shiv==$(SHIV_VERSION)'; }

zipapp: zipapp-venv
	mkdir -p $(dir $(PYZ))
	rm -rf build  # setuptools' leftovers: a module deleted from src/ must not come back
	$(SHIV) -q --reproducible --console-script certfleet --output-file $(PYZ) \
		--python "/usr/bin/env $$($(SYSTEM_PYTHON) -c 'import sys; print("python%d.%d" % sys.version_info[:2])')" .
	@ls -l $(PYZ)

# The demo with the zipapp: certfleet started with nothing of this environment (no venv).
demo-zipapp: venv pebble zipapp
	$(BIN)/python tools/demo.py --certfleet "$(SYSTEM_PYTHON) $(PYZ)" --clean-env

clean:
	rm -rf $(VENV) .cache demo-state dist mutants mutation/report.md
