# forgetbench: the README's commands. Every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
LINT_PATHS := $(wildcard src tests bench experiments)
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

.PHONY: install demo test test-slow test-mlflow lint format clean docs docs-serve
.PHONY: bench bench-peers

install: $(STAMP)

# Re-runs only when the package metadata changes; a no-op otherwise.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The documentation tools have their own stamp, so `make test` never needs them.
$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(DOCS_STAMP)

demo: install
	$(BIN)/forgetbench -m strategy=sequential,replay,ewc,cross_shard,joint seed=0,1,2 train.verbose=0 \
		hydra.sweep.dir=results/sweeps/demo
	$(BIN)/forgetbench-report results/sweeps/demo --figure-copy results/figures/demo_comparison
	mkdir -p results/tables
	cp results/sweeps/demo/report/summary.md results/sweeps/demo/report/summary.tex results/tables/
	@echo "Results: results/sweeps/demo/report/ (tables, figures); curated copies in results/figures/ and results/tables/"

# Test workers (pytest-xdist processes); whole files go to one worker, so module fixtures run once.
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Benchmarks (about 13 minutes on 2 cores, about 9 GB of scratch disk for the memory run):
# tables printed, JSON written to results/bench/. See docs/performance.md.
bench: install
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/training.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/grid.py
	$(BIN)/python bench/scale.py

# Peer benchmark against Avalanche 0.6.0 (bench/peers/: its own venv, CPU torch): 10 to 20
# minutes on 2 cores, plus about 3 minutes and 1.5 GB for the first install. Options for
# run.py go in PEERS_ARGS, e.g. make bench-peers PEERS_ARGS="--forgetbench-ref HEAD --rounds 1".
bench-peers: install
	test -x bench/peers/.venv/bin/python || $(PYTHON) -m venv bench/peers/.venv
	cmp -s bench/peers/requirements.txt bench/peers/.venv/.requirements || { \
		bench/peers/.venv/bin/python -m pip install --quiet --no-deps -r bench/peers/requirements.txt && \
		cp bench/peers/requirements.txt bench/peers/.venv/.requirements; }
	$(BIN)/python bench/peers/run.py $(PEERS_ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m slow -n $(TEST_WORKERS) --dist loadfile

# The site (mkdocs.yml, docs/) into site/; --strict: a broken link, a missing page or a docstring
# that does not render fails the build. `make docs-serve` previews it at http://127.0.0.1:8000.
docs: $(DOCS_STAMP)
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The MLflow logger's tests: installs the optional extra first (not part of `make install`).
test-mlflow: install
	$(BIN)/python -m pip install --quiet -e ".[dev,mlflow]"
	$(BIN)/python -m pytest -q -m mlflow

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: install
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

clean:
	rm -rf results/runs results/sweeps .cache .pytest_cache site
