# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Slicer 5.12's own Python packages + slicer-core: the harness that loads the extension as Slicer does
SLICER_ENV := .venv-slicer
SLICER_STAMP := $(SLICER_ENV)/.slicer-5.12-stamp

.PHONY: demo test lint venv clean bench

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m DicomTeamAnnotateLib.demo --out demo-output

$(SLICER_STAMP): Testing/slicer_harness/slicer-5.12-python.txt Testing/slicer_harness/environment.py
	$(PYTHON) Testing/slicer_harness/environment.py $(SLICER_ENV)

test: $(STAMP) $(SLICER_STAMP)
	$(PY) -m pytest Testing $(PYTEST_ARGS)

# ruff: pyflakes, pycodestyle, import order, pyupgrade, bugbear (config in pyproject.toml)
lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(SLICER_ENV) demo-output .pytest_cache
