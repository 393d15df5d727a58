# Both main targets create .venv when it is missing and install the project with torch pinned in
# the same pip command (an unpinned torch would pull a multi-GB CUDA build).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test test-all lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/anon-store demo --output demo

test: $(STAMP)
	$(BIN)/ruff check pipeline flows store_schema tests benchmarks
	$(BIN)/python -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipeline flows store_schema tests benchmarks
	$(BIN)/ruff format --check pipeline flows store_schema tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format pipeline flows store_schema tests benchmarks
	$(BIN)/ruff check --fix pipeline flows store_schema tests benchmarks

clean:
	rm -rf demo .pytest_cache
