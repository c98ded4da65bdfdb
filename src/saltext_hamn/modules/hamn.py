"""Execution module ``hamn``: node-local steps of an xCAT HA management node pair.

Thin loader layer: argument handling and pillar lookup here, logic in
``saltext_hamn.utils``. Failures raise CommandExecutionError (a non-zero retcode,
which orchestrate's onfail/failhard see); bad arguments raise SaltInvocationError.
"""

import copy

import saltext_hamn
from saltext_hamn.utils import config as hamn_config

try:
    import psycopg2  # noqa: F401
    import pyroute2  # noqa: F401

    _MISSING = None
except ImportError as exc:  # pragma: no cover - depends on the host
    _MISSING = str(exc)

__virtualname__ = "hamn"

REDACTED = "**redacted**"


def __virtual__():
    if _MISSING:
        return False, f"hamn: missing Python dependency ({_MISSING}); pip install saltext-hamn"
    return __virtualname__


def _cfg():
    return hamn_config.load(__pillar__.get("hamn"))  # pylint: disable=undefined-variable


def config():
    """
    Return this node's validated ``hamn`` pillar with defaults filled in.

    Secrets are redacted. Raises SaltInvocationError naming the key path when the
    pillar is wrong, so this is also the quickest pillar check.

    CLI Example:

    .. code-block:: bash

        salt '*' hamn.config
    """
    cfg = copy.deepcopy(_cfg())
    cfg["postgres"]["replication"]["password"] = REDACTED
    return cfg


def version():
    """
    Return the saltext-hamn version installed on this minion.

    CLI Example:

    .. code-block:: bash

        salt '*' hamn.version
    """
    return saltext_hamn.__version__
