"""PostgreSQL LSNs ('16/B374D848') as integers, and byte lag between them."""

import re

from salt.exceptions import SaltInvocationError

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse(text):
    """'0/3000060' -> 50331744; None stays None."""
    if text is None:
        return None
    match = _LSN.match(str(text).strip())
    if not match:
        raise SaltInvocationError(f"lsn: expected an LSN like '0/3000060', got {text!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def _as_int(value):
    return parse(value) if isinstance(value, str) else value


def lag(ahead, behind):
    """Bytes that ``behind`` misses of ``ahead`` (LSN strings or ints; None if unknown)."""
    a, b = _as_int(ahead), _as_int(behind)
    return None if a is None or b is None else max(0, a - b)


def at_least(value, target):
    """True when LSN ``value`` has reached ``target``."""
    a, b = _as_int(value), _as_int(target)
    return a is not None and b is not None and a >= b
