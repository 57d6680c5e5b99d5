# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# CPU machines: the constraints file pins the CPU build of torch. GPU machines: `make CONSTRAINTS= run`.
CONSTRAINTS ?= constraints-cpu.txt
PIP_CONSTRAINT_FLAG := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install bench-install postgres-install bench run test e2e lint clean-campaigns

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_CONSTRAINT_FLAG) -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/ctmevo run experiments/quickstart.yaml

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest --ignore=tests/e2e

# The slower end-to-end checks, apart from `make test` (CI runs both): the browser check of the MLflow UI (headless
# Chromium: apt-get install -y chromium chromium-driver), which also refreshes the screenshots in docs/img/, and
# MLflow on PostgreSQL (apt-get install -y postgresql; the postgres extra); skipped with the reason where those are
# not installed.
$(BIN)/.postgres: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet $(PIP_CONSTRAINT_FLAG) -e '.[postgres]'
	touch $@

postgres-install: $(BIN)/.postgres

e2e: install postgres-install
	CTMEVO_SCREENSHOTS=docs/img $(BIN)/python -m pytest tests/e2e -rs -v

# CTM-Bench: the strategy comparison on replayed training (benchmarks/ctmbench_compare.py; BENCH_ARGS=--full for
# 30 seeds, resumable). Installs the bench extra (scikit-learn, DEHB) first.
$(BIN)/.bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet $(PIP_CONSTRAINT_FLAG) -e '.[bench]'
	$(BIN)/python -m pip install --quiet --no-deps dehb==0.1.2
	touch $@

bench-install: $(BIN)/.bench

bench: bench-install
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ctmbench_compare.py $(BENCH_ARGS)
