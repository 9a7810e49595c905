# The two commands a new user runs (see README.md):
#   make reproduce   regenerate the paper's figures on the offline sample data (cpu profile)
#   make test        the whole test suite, gates in order
# Both create .venv and install the project with its dev extras when needed, and are safe to repeat.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= cpu

export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export XDG_CACHE_HOME := $(CURDIR)/.cache
export MPLBACKEND := Agg
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0

.PHONY: install reproduce test bench docs lab clean readme

install: $(STAMP)

$(STAMP): setup.py settings.ini
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (seemore_nb .venv)" >/dev/null
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/seemore_reproduce --config $(PROFILE)

# Gates, in order: the library is in sync with the notebooks, the notebooks are clean,
# the notebook tests pass, the integration tests pass. `make test RECORD=1` also records how long the gates took
# (seemore_bench suite: figures/benchmarks.json, BENCHMARKS.md and the README's line).
tree_hash = find seemore_nb nbs -type f \( -name '*.py' -o -name '*.ipynb' \) -not -path '*/.ipynb_checkpoints/*' | LC_ALL=C sort | xargs sha1sum | sha1sum

test: $(STAMP)
	@mkdir -p .cache && date +%s > .cache/make-test.started
	@before=$$($(tree_hash)); $(BIN)/nbdev_export; \
	  if [ "$$before" != "$$($(tree_hash))" ]; then echo "FAIL: nbdev_export changed seemore_nb/: export the notebooks and commit nbs/ and seemore_nb/ together"; exit 1; fi
	@before=$$($(tree_hash)); $(BIN)/nbdev_clean; \
	  if [ "$$before" != "$$($(tree_hash))" ]; then echo "FAIL: nbdev_clean changed notebooks: run nbdev_clean and commit the cleaned notebooks"; exit 1; fi
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2
	$(BIN)/python -m pytest -q --durations=12 tests
	@if [ -n "$(RECORD)" ]; then $(BIN)/seemore_bench suite --seconds $$(( $$(date +%s) - $$(cat .cache/make-test.started) )); fi

# Every CPU benchmark, each in its own process, recorded in figures/benchmarks.json and BENCHMARKS.md; then their
# targets: exit 1 naming any missed (04_benchmarks). Run it on a quiet machine: a busy one slows every rate.
BENCHMARKS := spectrogram loader train tf store
bench: $(STAMP)
	@status=0; for b in $(BENCHMARKS); do $(BIN)/seemore_bench $$b || status=1; done; \
	  $(BIN)/seemore_bench check || status=1; exit $$status

# The documentation site in _docs/ (open _docs/index.html): every notebook executed as nbdev_test runs it, cached,
# plus the executed figure templates of the smoke grid (PROFILE=cpu: the main job's); see nbs/82_tools.docs.ipynb.
DOCS_PROFILE := $(if $(filter command line environment,$(origin PROFILE)),$(PROFILE),smoke)
docs: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/seemore_docs --config $(DOCS_PROFILE)

# Open the notebooks in JupyterLab from the same .venv (its kernel is registered by install).
lab: $(STAMP)
	test -x $(BIN)/jupyter-lab || $(BIN)/python -m pip install --quiet jupyterlab
	$(BIN)/jupyter lab nbs

clean:
	rm -rf runs data/stores .cache .pytest_cache _docs

# README.md is generated from nbs/index.ipynb.
readme: $(STAMP)
	$(BIN)/python tools/readme.py
