# learnstream: `make demo` runs the pipeline, `make test` runs the suite. Both set up first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo test bench lock lint clean stack-up stack-down help

help:
	@echo "make setup   install everything (venvs, Kafka/Flink jars, anvil, solc); idempotent"
	@echo "make demo    start the local stack, run the pipeline end to end, stop it"
	@echo "make test    the whole test suite against real local services"
	@echo "make bench   the benchmarks (BENCHMARKS.md)"
	@echo "make lock    re-resolve requirements/*.lock from requirements/*.in"

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/learnstream demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

lock:
	$(BIN)/uv pip compile -q --python-version 3.11 --generate-hashes requirements/app.in -o requirements/app.lock
	$(BIN)/uv pip compile -q --python-version 3.11 --generate-hashes requirements/flink.in -o requirements/flink.lock
	$(BIN)/uv pip compile -q --python-version 3.11 --generate-hashes requirements/tools.in -o requirements/tools.lock

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

stack-up: setup
	$(BIN)/learnstream stack up

stack-down:
	$(BIN)/learnstream stack down

clean:
	rm -rf .stack
