"""The self-fencing lease watchdog ``hamn-leased`` (docs/auto-failover.md).

Plain Python, no Salt loader: it runs as its own daemon beside the salt-minion.
"""
