"""Run external commands: argument lists only, never a shell."""

import logging
import os
import pwd
import subprocess

from saltext_hamn.utils.errors import CommandFailed

log = logging.getLogger(__name__)


def run(argv, *, timeout=120, env=None, check=True, what=None, input_text=None):
    """Run ``argv`` and return the CompletedProcess (text mode).

    ``env`` entries are added to the current environment. Raises CommandFailed on a
    non-zero exit (when ``check``) or a timeout, naming ``what`` (default argv[0]).
    """
    argv = [str(a) for a in argv]
    full_env = dict(os.environ, **env) if env else None
    log.debug("hamn: running %s", argv)
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(argv, -1, f"timed out after {timeout}s", what) from exc
    except FileNotFoundError as exc:
        raise CommandFailed(argv, 127, f"command not found: {argv[0]}", what) from exc
    if check and result.returncode != 0:
        raise CommandFailed(argv, result.returncode, result.stderr or result.stdout, what)
    return result


def as_user(os_user, argv):
    """Prefix ``argv`` so it runs as ``os_user`` (no-op when we already are that user)."""
    if os.geteuid() == pwd.getpwnam(os_user).pw_uid:
        return list(argv)
    return ["runuser", "-u", os_user, "--", *argv]


def alive(pid):
    """True for a live process; a zombie counts as dead (``kill -0`` would say alive)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False
