"""When a client counts as gone: pure functions, table-tested."""

from __future__ import annotations


def is_expired(now: float, last_seen: float | None, ttl: float) -> bool:
    """True when nothing was heard of a client for longer than ``ttl`` seconds.

    A client never seen is not expired (it has not started yet); a time in the future
    (clock skew between hosts) counts as just seen.
    """
    if last_seen is None:
        return False
    return now - last_seen > ttl
