"""State module ``hamn``: desired state of an xCAT HA management node.

Thin loader layer over the ``hamn`` execution module and ``saltext_hamn.utils``.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_hamn.utils import config
from saltext_hamn.utils.filesync import state as filesync
from saltext_hamn.utils.pg import cluster as pg_cluster, replica

__virtualname__ = "hamn"


def __virtual__():
    if "hamn.config" not in __salt__:  # pylint: disable=undefined-variable
        return False, "hamn: the hamn execution module is not available"
    return __virtualname__


def pillar_valid(name):
    """
    Succeed when this node's ``hamn`` pillar validates; otherwise fail with the
    key path and what was expected. Changes nothing, so it is the same in test mode.

    .. code-block:: yaml

        hamn-pillar:
          hamn.pillar_valid
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": "hamn pillar is valid"}
    try:
        __salt__["hamn.config"]()  # pylint: disable=undefined-variable
    except SaltInvocationError as exc:
        ret.update(result=False, comment=f"invalid hamn pillar: {exc}")
    return ret


def replica_configured(name):
    """
    PostgreSQL streaming replication configured on this node for its current role.

    The role is discovered at run time (see ``saltext_hamn.utils.pg.replica``):
    a primary gets the replication settings (in the ``hamn.conf`` include), pg_hba
    and pg_ident managed blocks, the replication role (SCRAM password, pg_rewind
    grants) and a slot for the peer, and is reloaded or restarted as the changed
    settings require; a standby gets its standby config pointing at the current
    primary and ends streaming. A standby whose data is missing, foreign or
    diverged is rebuilt only when ``hamn:postgres:auto_rebuild`` is true. A node
    running as primary while its peer runs as primary too (split brain) fails,
    changing nothing, with a line naming the node to demote.

    .. code-block:: yaml

        hamn-replication:
          hamn.replica_configured
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        cfg = config.load(__pillar__.get("hamn"))  # pylint: disable=undefined-variable
        me = __opts__["id"]  # pylint: disable=undefined-variable
        config.peer_of(cfg, me)  # a clear error when this minion is not a node
        local = pg_cluster.from_config(cfg)
        role, why = replica.discover_role(local, cfg, me)
        planned = replica.converge(local, cfg, me, role, dry_run=True)
        if not planned:
            ret["comment"] = f"{role}: replication is configured ({why})"
            return ret
        if __opts__["test"]:  # pylint: disable=undefined-variable
            ret.update(result=None, changes={role: planned},
                       comment=f"would configure this node as {role} ({why})")
            return ret
        done = replica.converge(local, cfg, me, role, dry_run=False)
        ret["changes"] = {role: done}
        drift = replica.converge(local, cfg, me, role, dry_run=True)
        if drift:
            ret.update(result=False, comment=f"configured as {role}, but drift remains: {drift}")
        else:
            ret["comment"] = f"configured as {role} ({why})"
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=str(exc))
    return ret


def files_synced(name):
    """
    The standby's copies of the ``hamn:files`` paths identical to the primary's.

    The node's current role decides: the primary pushes its files to the master
    (``cp.push``), the standby applies the primary's copy from its ``hamn_files``
    pillar (or pulls with rsync), a stopped node does nothing. See docs/file-sync.md.

    .. code-block:: yaml

        hamn-files:
          hamn.files_synced
    """
    return filesync.files_synced(name, salt=__salt__, opts=__opts__, pillar=__pillar__,  # pylint: disable=undefined-variable
                                 test=__opts__["test"])  # pylint: disable=undefined-variable
