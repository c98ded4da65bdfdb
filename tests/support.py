"""Shared test helpers: a minimal valid ``hamn`` pillar, deep-merged with overrides."""

import contextlib
import copy
import time

from saltext_hamn.lab.lab import Lab
from saltext_hamn.lab.spec import LabSpec
from saltext_hamn.utils import config

MINIMAL = {
    "nodes": {
        "mn1": {"address": "198.51.100.11", "hostname": "localhost"},
        "mn2": {"address": "198.51.100.12", "hostname": "localhost"},
    },
    "initial_primary": "mn1",
    "vip": {"address": "198.51.100.10"},
    "postgres": {"replication": {"password": "Test-Pw-0123"}},
}


def _merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def pillar(**extra):
    """The raw ``hamn`` pillar: MINIMAL with ``extra`` merged in (dicts recursively)."""
    return _merge(copy.deepcopy(MINIMAL), copy.deepcopy(extra))


def load(**extra):
    """The validated config of ``pillar(**extra)``."""
    return config.load(pillar(**extra))


@contextlib.contextmanager
def own_lab(lab_spec, letter, dirname, automation=False):
    """A lab of a test module's own, inside the run's prefix and directory (so the
    session's leak check covers it); always torn down. ``automation``: heartbeat
    beacon and reactor, so the pair fails over by itself."""
    lab = Lab(LabSpec(prefix=f"{lab_spec.prefix}{letter}", base_dir=str(lab_spec.lab_dir / dirname)),
              out=lambda message: None, automation=automation)
    try:
        yield lab
    finally:
        lab.down()


def poll(predicate, timeout, step=0.05):
    """``predicate()``'s first truthy value within ``timeout`` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
