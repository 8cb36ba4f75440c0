# Every target first sets up .venv from uv.lock, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
# uv is installed into .tools (not .venv) so that `uv sync` can manage .venv exactly.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: venv httpfs-venv test lint typecheck pytest demo dev bench soak screenshots clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

venv: $(VENV)/.synced

# A second environment whose DuckDB can read s3:// URLs without downloading anything: the
# `duckdb-extension-httpfs` package ships DuckDB's httpfs binary for DuckDB 1.5.5 only, while
# the product runs the DuckDB of uv.lock. tests/s3 runs the warehouse build over a bucket in
# it. The other packages are the locked ones, without the project and its dev group.
HTTPFS_VENV := .venv-httpfs
HTTPFS_DUCKDB := duckdb==1.5.5 duckdb-extension-httpfs==1.5.5

$(HTTPFS_VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing $(HTTPFS_VENV)
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes --quiet \
		| grep -v '^duckdb==' > $(HTTPFS_VENV)/requirements.txt
	$(UV) pip install --quiet --python $(HTTPFS_VENV)/bin/python \
		-r $(HTTPFS_VENV)/requirements.txt $(HTTPFS_DUCKDB)
	touch $@

httpfs-venv: $(HTTPFS_VENV)/.synced

# VSCOPE_DAGSTER_STORAGE=postgres selects the PostgreSQL instance file (docs/postgres.md).
INSTANCE_FILE := $(if $(filter postgres,$(VSCOPE_DAGSTER_STORAGE)),dagster.postgres.yaml,dagster.yaml)

$(DAGSTER_HOME)/dagster.yaml: $(INSTANCE_FILE)
	mkdir -p $(DAGSTER_HOME)
	cp $(INSTANCE_FILE) $@

lint: venv
	$(BIN)/ruff check vscope_pipeline tests bench
	$(BIN)/ruff format --check vscope_pipeline tests bench

typecheck: venv
	$(BIN)/mypy vscope_pipeline bench

pytest: venv httpfs-venv
	$(BIN)/pytest

test: lint typecheck pytest

demo: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/vscope-pipeline demo

dev: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/vscope-pipeline dev

# Throughput, memory and request figures on a simulated 500-VM day; see docs/benchmarks.md.
bench: venv
	$(BIN)/python -m bench

# A 30-day backfill without faults and twice with seeded random faults; see docs/reliability.md.
soak: venv
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

# PNGs of the Dagster UI and the report for the README, taken in /usr/bin/chromium.
screenshots: venv
	$(BIN)/python -m tests.browser.screenshots

clean:
	rm -rf $(VENV) $(HTTPFS_VENV) .tools $(DAGSTER_HOME)
