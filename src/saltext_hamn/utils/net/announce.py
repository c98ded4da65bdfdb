"""The later gratuitous ARP rounds of a VIP raise, from a detached process.

The first round goes out with the raise itself; caches that missed it (a lost
frame, Linux's 1 s neighbour locktime) are caught by the rounds after it, which
need not hold up the step that raised the VIP:

    python -m saltext_hamn.utils.net.announce ADDRESS INTERFACE COUNT INTERVAL [NETNS]
"""

import subprocess
import sys
import time


def detach(address, interface, count, interval, netns=None):
    """Start the remaining ``count`` rounds in a process of their own; returns ``count``."""
    argv = [sys.executable, "-m", __name__, str(address), str(interface), str(int(count)), str(float(interval))]
    if netns:
        argv.append(netns)
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    return int(count)


def main(argv=None):
    from saltext_hamn.utils.net import arp  # pylint: disable=import-outside-toplevel

    args = list(sys.argv[1:] if argv is None else argv)
    address, interface, count, interval = args[0], args[1], int(args[2]), float(args[3])
    netns = args[4] if len(args) > 4 else None
    time.sleep(interval)
    arp.send_gratuitous(address, interface, count=count, interval=interval, netns=netns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
