# Every target sets up .venv from uv.lock first; only Python 3.11+ and make are needed.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: venv test lint demo dev bench clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

venv: $(VENV)/.synced

test: venv
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) .tools .dagster_home
