"""A real salt-master (in the witness namespace, like this pytest process) and two
salt-minions, each inside its node's namespace, via pytest-salt-factories; the
nodes' PostgreSQL pair comes from the lab library (primary -> streaming standby)."""

import sys

import attr
import pytest
from saltfactories.daemons.minion import SaltMinion

from saltext_hamn.lab import saltd
from saltext_hamn.lab.lab import Lab
from saltext_hamn.lab.sampler import Sampler
from saltext_hamn.lab.spec import WITNESS_ADDRESS

pytestmark = [pytest.mark.root, pytest.mark.postgres]


@attr.s(kw_only=True, slots=True)
class NetnsSaltMinion(SaltMinion):
    """A salt-minion started with ``ip netns exec <namespace>`` and the node's PATH
    (recorder scripts first)."""

    netns = attr.ib()
    path = attr.ib()

    def cmdline(self, *args, **kwargs):
        wrapped = super().cmdline(*args, **kwargs)
        return ["ip", "netns", "exec", self.netns, "env", f"PATH={self.path}", *wrapped]


@pytest.fixture(scope="session")
def lab(lab_spec):
    """The test run's lab: network, node dirs, recorders and the PostgreSQL pair."""
    lab = Lab(lab_spec, out=lambda message: print(f"[lab] {message}"))
    lab.up_postgres()
    yield lab
    for node in lab_spec.nodes:
        cluster = lab.cluster(node)
        from saltext_hamn.utils.pg import postmaster

        if postmaster.has_data(cluster) and postmaster.is_running(cluster):
            postmaster.stop(cluster, mode="fast", timeout=20)


@pytest.fixture(scope="session")
def salt_factories_config(lab):
    # Keep the daemons' files inside the run's lab directory (removed at the end).
    root = lab.spec.lab_dir / "factories"
    root.mkdir(parents=True, exist_ok=True)
    return {"root_dir": str(root)}


def master_overrides(lab):
    return {
        # Binds inside the witness namespace only: its loopback and the bridge.
        "interface": "0.0.0.0",
        "file_roots": {"base": [str(lab.spec.states_dir)]},
        "pillar_roots": {"base": [str(lab.spec.lab_dir / "pillar")]},
        # hamn.files_synced (salt transport): the primary cp.pushes, the ext_pillar hands out.
        "file_recv": True,
        "ext_pillar": [{"hamn_files": {}}],
    }


@pytest.fixture(scope="session")
def salt_master(salt_factories, lab):
    factory = salt_factories.salt_master_daemon("hamn-master", overrides=master_overrides(lab))
    with factory.started(start_timeout=120):
        yield factory


def netns_minion(salt_master, lab, node, **overrides):
    """The factory of ``node``'s minion in its namespace; ``overrides`` go into its config."""
    return salt_master.salt_minion_daemon(
        node,
        factory_class=NetnsSaltMinion,
        netns=lab.spec.node_ns(node),
        path=saltd.minion_env(lab.spec, node)["PATH"],
        overrides={
            "master": WITNESS_ADDRESS,
            "pytest-minion": {
                "returner_address": {"host": WITNESS_ADDRESS},
                "log": {"host": WITNESS_ADDRESS},
            },
            **overrides,
        },
    )


@pytest.fixture(scope="session")
def minions(salt_master, lab):
    factories = {node: netns_minion(salt_master, lab, node) for node in lab.spec.nodes}
    started = []
    try:
        for factory in factories.values():
            factory.start(start_timeout=120)
            started.append(factory)
        yield factories
    finally:
        for factory in started:
            factory.terminate()


@pytest.fixture(scope="session")
def salt_cli(salt_master, minions):
    return salt_master.salt_cli(timeout=60)


@pytest.fixture(scope="session")
def salt_run_cli(salt_master, minions):
    return salt_master.salt_run_cli(timeout=120)


@pytest.fixture
def sampler(lab, request):
    """Two writers or two VIP holders at any instant of a fault test fail it: a thread samples
    both nodes every 200 ms through the whole test (``lab`` is the test module's own)."""
    with Sampler(lab) as watching:
        yield watching
    print(f"[sampler] {request.node.name}: {len(watching.samples)} samples, {len(watching.violations)} violations, "
          f"writable samples per node {watching.writers()}")
    assert len(watching.samples) > 5, "the sampler barely ran"
    assert not watching.violations, f"two writers or two VIP holders at some instant: {watching.violations[:3]}"


def python_bin():
    return sys.executable
