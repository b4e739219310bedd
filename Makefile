# mesh-testbed. Every target that needs the machine set up depends on `setup`, which is
# idempotent and quick when everything is already installed. Run as root; from a normal
# account with sudo, `make demo` (or test, setup, bench, clean) re-runs itself with sudo.
VENV    ?= .venv
TESTBED := $(VENV)/bin/testbed
PYTEST_ARGS ?=
ROOT_TARGETS := setup demo demo-quick test bench clean

.PHONY: $(ROOT_TARGETS) lint unit help

help:
	@echo "make setup       install what is missing (Debian packages, kernel headers, venv)"
	@echo "make demo        set up, then the full comparison of the architectures (faults, cost, report)"
	@echo "make demo-quick  the same in under 3 minutes, for a classroom"
	@echo "make test        set up, then lint (ruff) and run the test suite"
	@echo "make bench       set up, then run the benchmarks under benchmarks/"
	@echo "make clean       remove every object the testbed created (namespaces, cgroups, processes, the BPF compile cache)"
	@echo "Run them as root; from an account with sudo they re-run themselves with sudo."

ifneq ($(shell id -u),0)
$(ROOT_TARGETS):
	@command -v sudo >/dev/null 2>&1 || { echo "make $@ needs root: run it as root (e.g. su -c 'make $@')" >&2; exit 2; }
	sudo $(MAKE) $@ PYTEST_ARGS='$(PYTEST_ARGS)'
else
setup:
	@bash scripts/provision.sh

demo: setup
	$(TESTBED) demo

demo-quick: setup
	$(TESTBED) demo --quick

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python benchmarks/bench_cluster.py
	$(VENV)/bin/python benchmarks/bench_mesh.py
	$(VENV)/bin/python benchmarks/bench_scale.py --repeat 1

clean:
	@if [ -x $(TESTBED) ]; then $(TESTBED) clean -v && $(TESTBED) bpf cache --clear; else echo "no venv: nothing the testbed made can exist"; fi
endif

lint: setup
	$(VENV)/bin/ruff check .

unit: setup
	$(VENV)/bin/pytest -m "not root" $(PYTEST_ARGS)
