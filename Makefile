# saltext-hamn — the two commands of the README's quick start, and their parts.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test deps venv unit functional integration faults bench bench-auto bench-peers peers-deps lab-down clean

demo: deps $(STAMP)  ## bring the lab up, show replication through the VIP, tear down
	$(VENV)/bin/hamn-lab demo

# Two workers, whole test files each (module-scoped labs stay in one process): the
# integration labs mostly wait on timeouts, so two of them share the 2 cores well.
TEST_WORKERS ?= 2
test: deps $(STAMP)  ## the whole suite (integration tests need root)
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

functional: deps $(STAMP)
	$(PY) -m pytest tests/functional $(PYTEST_ARGS)

integration: deps $(STAMP)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

TRIALS ?= 10
faults: deps $(STAMP)  ## on demand: the automatic failover fault matrix, TRIALS times per case
	HAMN_FAULT_TRIALS=$(TRIALS) $(PY) -m pytest tests/integration/test_auto.py -s $(PYTEST_ARGS)

deps:
	@scripts/install-system-deps

venv: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

bench: deps $(STAMP)  ## on demand, not in CI: switchover/failover outage, medians
	$(PY) benchmarks/failover_times.py --runs 5

bench-auto: deps $(STAMP)  ## on demand: automatic failover, kill -> first write, false failovers
	$(PY) benchmarks/auto_failover.py --runs 5

# Patroni (from the package registry, its own venv) and pg_auto_failover (Debian
# packages) measured with hamn's client and scenarios, hamn itself in the same run
# (--hamn) and a labeled tuned Patroni (--tuned): benchmarks/peers/README.md.
PEERS_VENV ?= .venv-peers
PEERS_RUNS ?= 3
PEERS_ARGS ?= --hamn --tuned
peers-deps:
	@benchmarks/peers/install-deps $(PEERS_VENV)

bench-peers: deps $(STAMP) peers-deps  ## on demand, not in CI: Patroni and pg_auto_failover side by side
	HAMN_PEERS_VENV=$(abspath $(PEERS_VENV)) $(PY) benchmarks/peers/bench.py --runs $(PEERS_RUNS) $(PEERS_ARGS)

lab-down: $(STAMP)  ## remove a lab left by an interrupted run
	$(VENV)/bin/hamn-lab down

clean:
	rm -rf $(VENV) $(PEERS_VENV) build src/*.egg-info .pytest_cache
