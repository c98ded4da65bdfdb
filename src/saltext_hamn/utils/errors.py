"""Exceptions raised by the hamn library.

They subclass Salt's exceptions so that an execution module can let them propagate:
Salt turns a ``CommandExecutionError`` into a non-zero retcode, which is what makes an
orchestrate ``salt.function`` step (and its ``onfail``/``failhard``) see the failure.
"""

from salt.exceptions import CommandExecutionError


class HamnError(CommandExecutionError):
    """A runtime step failed."""


class CommandFailed(HamnError):
    """An external command exited non-zero (or timed out)."""

    def __init__(self, argv, returncode, stderr, what=None):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = (stderr or "").strip()
        label = what or self.argv[0]
        detail = self.stderr.splitlines()[-1] if self.stderr else "no error output"
        super().__init__(f"{label} failed (exit {returncode}): {detail}")
