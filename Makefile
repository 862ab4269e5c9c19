# The two commands: `make demo` runs the seed's hand-off; `make test` runs every test.
# Both create .venv and install what they need on a fresh clone; nothing else is needed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: demo test lint docs bench dist clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip

$(VENV)/.core: pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

$(VENV)/.test: pyproject.toml $(wildcard integrations/*/pyproject.toml) | $(PY)
	$(PIP) install -e '.[dev,server,postgres,mcp,console]' $(foreach p,$(wildcard integrations/*/pyproject.toml),-e '$(dir $(p))[test]')
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(VENV)/bin/moss demo

test: $(VENV)/.test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check src tests integrations benchmarks docs
	$(VENV)/bin/ruff format --check src tests integrations benchmarks docs
	$(VENV)/bin/mypy

docs: $(VENV)/.test
	$(PY) docs/build_api.py

# Wheels of moss-sessions and both adapters, for machines that install from files, not an index.
dist: | $(PY)
	rm -rf dist
	$(PIP) wheel --no-deps -w dist . $(foreach p,$(wildcard integrations/*/pyproject.toml),$(dir $(p)))
	@ls dist

bench: $(VENV)/.test
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
