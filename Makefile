# Two commands on a fresh machine: `make run` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= ../shared/data/fb_marketplace
ARTIFACTS_DIR ?= ./artifacts
HOST ?= 127.0.0.1
PORT ?= 8000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-fast docker-test bench install serve clean

# The stamp is rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/listing-search run --data $(DATA_DIR) --artifacts $(ARTIFACTS_DIR) --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/listing-search serve --artifacts $(ARTIFACTS_DIR) --host $(HOST) --port $(PORT)

test: install
	bash scripts/install_system_deps.sh || true
	$(BIN)/python -m pytest -q -m "not docker"

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not realdata and not browser and not docker"

# The serving image, built offline and run over tiny artifacts (as root: installs and starts dockerd if needed).
docker-test: install
	PYTHON=$(BIN)/python bash scripts/docker_test.sh

bench: install
	for f in bench/bench_*.py; do $(BIN)/python $$f --data $(DATA_DIR) --artifacts $(ARTIFACTS_DIR) || exit 1; done

clean:
	rm -rf $(ARTIFACTS_DIR) .pytest_cache
