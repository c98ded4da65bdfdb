"""Test-session plumbing shared by all suites.

As root, the session builds the lab's network (three namespaces, bridge in the
witness) before pytest starts any thread, then moves this process into the witness
namespace: the salt-master and pytest-salt-factories' log/event servers must be
reachable from the minions' namespaces, and nothing may be added to the root
namespace. At the end every namespace, process and directory of the run is removed,
and the run fails if a test or fixture left any of them behind.
"""

import logging
import os
import shutil

import pytest

from saltext_hamn.lab import netns, network, pgbin
from saltext_hamn.lab.lab import processes_under
from saltext_hamn.lab.saltd import terminate
from saltext_hamn.lab.spec import LabSpec
from saltext_hamn.utils.errors import HamnError

TEST_BASE = "/var/tmp/hamn-tests"
IS_ROOT = os.geteuid() == 0


def _postgres_under_test():
    """The PostgreSQL the run tests (env HAMN_PG, else the newest Debian one), or None.

    Asked for by HAMN_PG but not runnable is an error, not a skip: ``make test`` asks for
    15 and 18 and must not pass by testing neither.
    """
    try:
        return pgbin.choose()
    except HamnError as exc:
        if os.environ.get(pgbin.ENV_VAR):
            raise pytest.UsageError(f"{pgbin.ENV_VAR}={os.environ[pgbin.ENV_VAR]}: {exc}") from exc
        return None


def _has_postgres():
    return _postgres_under_test() is not None


def pytest_report_header(config):  # pylint: disable=unused-argument
    chosen = _postgres_under_test()
    return f"hamn: {chosen.describe() if chosen else 'no PostgreSQL server binaries (make deps)'}"


def _xdist_controller(config):
    """With ``-n N`` (make test) the controller only hands out test files; each worker
    builds a lab network of its own (its pid in the prefix)."""
    return bool(getattr(config.option, "numprocesses", None)) and not os.environ.get("PYTEST_XDIST_WORKER")


def pytest_configure(config):
    config.hamn_lab_spec = None
    if not IS_ROOT or os.environ.get("HAMN_TESTS_NO_NETNS") or _xdist_controller(config):
        return
    spec = LabSpec(prefix=f"ht{os.getpid()}", base_dir=TEST_BASE)
    network.build(spec)
    config.hamn_lab_spec = spec
    config.hamn_home_netns = netns.enter_for_good(spec.witness_ns)


def run_prefix(config):
    spec = config.hamn_lab_spec
    return spec.prefix if spec else None


def leftovers(spec):
    """Namespaces, processes and directories of this run that still exist."""
    found = [f"netns {ns}" for ns in sorted(netns.existing()) if ns.startswith(spec.prefix)]
    found += [f"process {pid} {cmd}" for pid, cmd in processes_under(spec.lab_dir)]
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    spec = session.config.hamn_lab_spec
    if spec is None:
        return
    # The lab's own three namespaces are this hook's to remove; anything else is a leak.
    own = set(spec.namespaces)
    leaks = [item for item in leftovers(spec) if item.split()[1] not in own]
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "hamn: the test run left these behind (a fixture does not clean up): " + "; ".join(leaks)
        if reporter:
            reporter.write("\n")
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    terminate([pid for pid, _ in processes_under(spec.lab_dir)])
    for ns in sorted(netns.existing()):
        if ns.startswith(spec.prefix):
            terminate(netns.pids(ns))
            netns.delete(ns)
    shutil.rmtree(spec.lab_dir, ignore_errors=True)
    try:
        os.rmdir(TEST_BASE)  # unless another test run uses it
    except OSError:
        pass


def pytest_unconfigure(config):
    # Salt's deferred stderr handler flushes at exit into pytest's closed capture
    # stream; without this every run ends in "--- Logging error ---" noise.
    logging.raiseExceptions = False
    home = getattr(config, "hamn_home_netns", None)
    if home is not None:
        netns.leave(home)


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root (network namespaces, the postgres OS user)")
    skip_pg = pytest.mark.skip(reason="PostgreSQL server binaries not installed (make deps)")
    for item in items:
        if "root" in item.keywords and not IS_ROOT:
            item.add_marker(skip_root)
        if "postgres" in item.keywords and not _has_postgres():
            item.add_marker(skip_pg)


@pytest.fixture
def recorder_dir(tmp_path, monkeypatch):
    """The lab's recorder scripts (systemctl, makedns, ...) first on PATH; their node dir."""
    from saltext_hamn.lab import recorders

    node_dir = tmp_path / "node"
    bin_dir = recorders.install(node_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    return node_dir


@pytest.fixture(scope="session")
def lab_spec(pytestconfig):
    """The test run's lab network (root only)."""
    if pytestconfig.hamn_lab_spec is None:
        pytest.skip("needs root: the lab network is built only when running as root")
    return pytestconfig.hamn_lab_spec
