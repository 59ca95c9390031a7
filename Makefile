# Everything a fresh clone needs: `make demo` and `make test` install what is
# missing (a .venv with the locked Python packages, anvil from npm) and reuse it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all deps demo test compile clean
all: test

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	test -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil || test -x node_modules/.bin/anvil
	touch $@

deps: $(VENV)/.installed node_modules/.installed

.build/__local__.json: $(VENV)/.installed $(wildcard contracts/*.vy) ape-config.yaml
	ape compile
	touch $@

compile: deps .build/__local__.json

# `make demo ARGS="--protocol gmx-v2"`: the same story on the GMX v2 stand-in;
# `make demo ARGS="--protocol aave-v3"`: on the real Aave v3 and Uniswap v3 (npm artifacts)
demo: compile
	$(PY) scripts/demo.py $(ARGS)

test: compile
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q

clean:
	rm -rf .build .venv node_modules
