# The two commands: `make demo` and `make test`. Both set up .venv when it is missing.
# `make demo` (and `make install`) install what the product needs: the library, the CLI and the
# Prefect flows (the demo runs the monitoring flow). `make install-extras` adds the change-model
# runtime and Dask (scaling out).
# `make test` installs everything plus the test tools (pytest, Playwright, nbclient, GDAL's validator).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_HOME := $(CURDIR)/.prefect

.PHONY: install install-extras install-test demo test browser bench clean

install: $(STAMP)

# A regular (not editable) install: setuptools' editable mode warns about this layout (two package
# roots, src/ and pipelines/); the stamp follows the sources, so an edited file is installed again.
# `make test` makes it editable (`-e`), for development.
SOURCES := $(shell find src pipelines -type f -not -path '*/__pycache__/*' 2>/dev/null)

$(STAMP): pyproject.toml $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# --no-compile: Python compiles what it imports on first use, not every module of every package
	# (a venv `make test` made stays editable and is brought up to date by its own target)
	if [ -f $(TEST_STAMP) ]; then $(MAKE) --no-print-directory install-test; \
	else $(BIN)/python -m pip install -q --no-compile ".[flows]"; fi
	touch $(STAMP)

# --change-model (onnxruntime), `review learn` (scikit-learn), --workers/--cluster (Dask)
install-extras: install
	$(BIN)/python -m pip install -q --no-compile $(if $(wildcard $(TEST_STAMP)),-e) ".[flows,models,dask]"

install-test: $(TEST_STAMP)

$(TEST_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all]"
	# GDAL's GeoPackage validator, without pulling in GDAL's Python bindings.
	$(BIN)/python -m pip install -q --no-deps gdal-utils
	touch $(STAMP) $(TEST_STAMP)

# Headless Chromium for the browser tests (review page, timeline page), from Debian.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

demo: install
	$(BIN)/sitewatch demo --out demo-out

test: install-test browser
	$(BIN)/python -m pytest -q -n auto --dist loadfile

bench: install
	$(BIN)/python benchmarks/accuracy.py

clean:
	rm -rf demo-out .pytest_cache
