# Tooltrail — `make up` starts everything on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test install chromium mergekit mcp-servers lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Tooltrail needs Python 3.11 (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	# torch first and pinned exactly: the CPU wheel on local disk, never a CUDA download.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/python -m tooltrail.launcher up

# End-to-end tests drive Debian's chromium (no downloaded browsers).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# mergekit is the reference the merge engine is checked against; it lives in its own venv.
mergekit:
	bash scripts/mergekit_venv.sh

# The npm MCP server the tests talk to, cached outside the repo (idempotent).
mcp-servers:
	bash scripts/mcp_test_servers.sh >/dev/null

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install chromium mergekit mcp-servers lint
	$(BIN)/python -m tooltrail.launcher with-redis -- $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/live_latency.py

clean:
	rm -rf $(VENV) .venv-mergekit var staticfiles .pytest_cache .ruff_cache
