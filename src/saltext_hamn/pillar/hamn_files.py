"""External pillar ``hamn_files``: the peer's pushed files for ``hamn.files_synced``.

Master configuration (see docs/file-sync.md)::

    file_recv: True              # let the primary cp.push its manifest and files
    ext_pillar:
      - hamn_files: {}           # optional: {max_bytes: 16777216}

For a minion whose pillar has a valid ``hamn`` tree, it returns ``hamn_files``
with the peer's pushed manifest and the verified content of its regular files
(and what the master holds of the minion's own pushes). Pillar data is encrypted
for the one minion it is compiled for, so root's keys never go through the shared
file server. Thin loader layer: the logic is ``saltext_hamn.utils.filesync.store``.
"""

import logging

from saltext_hamn.utils.filesync import store

log = logging.getLogger(__name__)

__virtualname__ = "hamn_files"


def __virtual__():
    return __virtualname__


def ext_pillar(minion_id, pillar, max_bytes=store.DEFAULT_MAX_BYTES, **_kwargs):  # pylint: disable=unused-argument
    """The ``hamn_files`` pillar of ``minion_id`` ({} for minions that are not hamn nodes)."""
    return store.pillar_for(minion_id, pillar, __opts__["cachedir"], max_bytes=max_bytes)  # pylint: disable=undefined-variable
