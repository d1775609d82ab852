# The two commands:  make lab   (set up, open the course: start.ipynb, 中文 or English)   make test   (set up, run every test)
# Set-up is a virtual environment in .venv, made once and refreshed when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# PyTorch: with an NVIDIA GPU (nvidia-smi on PATH), PyPI's default build, which bundles CUDA.
# Without one, a wheel already on this machine (pip's find-links) or PyTorch's CPU-only index,
# so a laptop does not download several GB of CUDA libraries it cannot use.
HAS_NVIDIA := $(shell command -v nvidia-smi 2>/dev/null)
CPU_INDEX := https://download.pytorch.org/whl/cpu
# The test suite's parallelism (see `test`): measured on a 2-core machine, figures in the README.
TEST_WORKERS ?= 2
TEST_THREADS ?= 1

.PHONY: setup lab test test-fast test-checks-stress test-browser lint exercises editions locale data gpu-check bench clean help

help:
	@echo "make lab        set up and open JupyterLab on start.ipynb (choose 中文 or English)"
	@echo "make test       set up and run the whole suite (package, notebooks, exercises, lint)"
	@echo "make test-browser  the lessons' widgets in JupyterLab in headless Chromium (needs a Chromium)"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make editions   build the Chinese edition zh/ from notebooks/, solutions/ and zh/translations/"
	@echo "make locale     compile the check hints' catalogs (minigpt/locale/*/LC_MESSAGES/minigpt.po -> .mo)"
	@echo "make test-checks-stress  every exercise check's tests on 50 fresh draws (minutes)"
	@echo "make gpu-check  on a CUDA machine: model tests on the GPU and a short GPU training run"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
	  echo "torch already installed: $$($(BIN)/python -c 'import torch; print(torch.__version__)')"; \
	elif [ -n "$(HAS_NVIDIA)" ]; then \
	  echo "NVIDIA GPU found: installing torch $(TORCH_VERSION) with CUDA"; \
	  $(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"; \
	elif $(BIN)/pip install --quiet --no-index --no-deps "torch==$(TORCH_VERSION)" 2>/dev/null; then \
	  echo "installed torch $(TORCH_VERSION) from a wheel on this machine"; \
	else \
	  echo "no NVIDIA GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
	  $(BIN)/pip install --quiet "torch==$(TORCH_VERSION)" --extra-index-url $(CPU_INDEX); \
	fi
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# JupyterLab at the top of the checkout, opening start.ipynb: choose 中文 (zh/notebooks) or English (notebooks).
lab: setup
	$(BIN)/jupyter lab start.ipynb

# The full suite: package tests, every notebook (FAST mode) under nbval, exercise checks, lint.
# pytest-xdist runs TEST_WORKERS workers (--dist loadscope keeps each notebook's cells in order on one
# worker, each test file on one worker); the sentinels (every notebook collected and run in FAST mode)
# then run in a second short session that reads the first one's logs. TEST_WORKERS=0: one process.
test: setup
	$(BIN)/ruff check minigpt tests notebooks solutions browser_tests
	$(BIN)/python -m minigpt exercises --check
	@logs=$$(mktemp -d) && \
	export MINIGPT_FAST=1 MINIGPT_REQUIRE_ALL_NOTEBOOKS=1 MINIGPT_FAST_LOG=$$logs/fast.log \
	  MINIGPT_COLLECTED_LOG=$$logs/collected.log MINIGPT_RUNS_DIR=$$logs/runs && \
	echo "pytest: $(TEST_WORKERS) workers, $(TEST_THREADS) torch thread(s) each; logs in $$logs" && \
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope \
	  --ignore=tests/test_zz_harness.py --durations=15 && \
	$(BIN)/python -m pytest tests/test_zz_harness.py -p no:xdist

# Package tests only (no notebooks): quick feedback while editing minigpt/.
test-fast: setup
	$(BIN)/python -m pytest tests -p no:nbval -o addopts=""

# Every exercise check's tests on 50 fresh draws each (the repeats of a test become its draws), seeded
# by the run: a failure prints the seed that replays it. Not part of `make test` (it takes minutes).
test-checks-stress: setup
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest tests/test_checks_*.py -p no:nbval -o addopts="" -q \
	  --check-draws=50 -n $(TEST_WORKERS) --dist loadscope

# Lessons 05, 08 (and 09) in a real JupyterLab in headless Chromium: Run All, no errors, every widget
# shown, a slider moved from the keyboard redraws its figure; screenshots. Not part of `make test`
# (browser_tests/ is outside pytest.ini's testpaths); skips when no Chromium is found.
test-browser: setup
	$(BIN)/python -m pytest browser_tests -rs

lint: setup
	$(BIN)/ruff check minigpt tests notebooks solutions browser_tests

exercises: setup
	$(BIN)/python -m minigpt exercises

# The Chinese edition: zh/notebooks, zh/solutions, zh/exercises from the English notebooks and
# zh/translations/ (`python -m minigpt editions --stale` lists the cells to translate).
editions: setup
	$(BIN)/python -m minigpt editions

# The check hints' and widget labels' catalog: messages wrapped in _() are extracted from minigpt/, merged
# into minigpt/locale/zh_CN/LC_MESSAGES/minigpt.po (new ones untranslated, gone ones dropped), then compiled
# to minigpt.mo. Translate the new msgstr entries in the .po and run it again.
locale: setup
	@pot=$$(mktemp) && \
	$(BIN)/pybabel extract -F minigpt/locale/babel.cfg -k N_ --no-location --sort-output -o $$pot minigpt && \
	$(BIN)/pybabel update -D minigpt -i $$pot -d minigpt/locale -l zh_CN --ignore-obsolete -w 100 && \
	$(BIN)/pybabel compile -D minigpt -d minigpt/locale -l zh_CN --statistics && rm -f $$pot

data: setup
	$(BIN)/python -m minigpt data

gpu-check: setup
	$(BIN)/python -m minigpt gpu-check

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
