# zoo: `make demo` runs the main job on the offline catalog entries, `make test` runs the tests
# (`make test-fast`: the unit and integration tiers only, for the edit-test loop).
# Both install what they need first (into .venv); a second run skips the install.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= zoo-out
PYTEST_ARGS ?=

.PHONY: install system-deps test test-fast demo lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found (zoo needs Python 3.11; set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt "torch==2.13.0"
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,ray]"
	touch $(STAMP)

# Debian packages the tests use (espeak-ng for speech probes, a local OCI registry); skipped when present.
system-deps:
	@bash scripts/system-deps.sh

test: install system-deps
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# unit + integration (the CLI in-process, tiny models); no real model conversions
test-fast: install system-deps
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "unit or integration" $(PYTEST_ARGS)

demo: install
	bash scripts/demo.sh $(OUT)

# ruff (lint and format) and mypy (config in pyproject.toml); CI runs it before the tests
lint: install
	$(BIN)/ruff check zoo converters tests bench
	$(BIN)/ruff format --check zoo converters tests bench
	$(BIN)/mypy zoo converters

clean:
	rm -rf $(OUT) .pytest_cache
