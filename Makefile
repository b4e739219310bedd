# mesh-testbed. Every target that needs the machine set up depends on `setup`, which is
# idempotent and quick when everything is already installed. Run as root.
VENV    ?= .venv
TESTBED := $(VENV)/bin/testbed
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit bench clean help

help:
	@echo "make setup   install what is missing (Debian packages, kernel headers, venv)"
	@echo "make demo    set up, then run the demo (build a cluster, show its connectivity, tear down)"
	@echo "make test    set up, then lint (ruff) and run the test suite (root tests need root)"
	@echo "make bench   set up, then run the benchmarks under benchmarks/"
	@echo "make clean   remove every object the testbed created (namespaces, cgroups, processes)"

setup:
	@bash scripts/provision.sh

demo: setup
	$(TESTBED) demo

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: setup
	$(VENV)/bin/pytest -m "not root" $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python benchmarks/bench_cluster.py
	$(VENV)/bin/python benchmarks/bench_mesh.py

clean:
	@if [ -x $(TESTBED) ]; then $(TESTBED) clean -v; else echo "no venv: nothing the testbed made can exist"; fi
