"""State module ``hamn``: desired state of an xCAT HA management node.

Thin loader layer over the ``hamn`` execution module and ``saltext_hamn.utils``.
"""

from salt.exceptions import SaltInvocationError

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
