"""Enter a named network namespace for a block (the calling thread only).

On a real node the minion already runs in the right namespace and ``name`` is None;
the lab and the tests pass the node's namespace name.
"""

import contextlib
import ctypes
import os

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def entered(name):
    """Run the calling thread inside namespace ``name`` (no-op for None).

    Sockets opened inside keep living in that namespace afterwards.
    """
    if not name:
        yield
        return
    with open("/proc/thread-self/ns/net", "rb") as home:
        with open(f"/run/netns/{name}", "rb") as target:
            setns(target.fileno())
        try:
            yield
        finally:
            setns(home.fileno())
