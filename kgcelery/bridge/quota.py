"""Per-client queue ceilings: report a client whose queue grows too deep, and, when
ops set a hard limit, refuse its records (to ``dlq.raw``, reason ``client-over-quota``).
Queue depths are read from Redis at most once a second per client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

REFRESH_S = 1.0


class QueueQuota:
    """:param depths_of: reads clients' queue depths (tasks waiting) from the broker, in
        one round trip: :meth:`refresh` reads all a delivery needs at once, so that a
        bridge publishing for 1,000 clients does not make 1,000 round trips a second.
    :param ceiling: depth above which a client is reported (log + metric).
    :param hard_limit: depth above which records are refused; 0 means never.
    """

    def __init__(self, depths_of: Callable[[list[str]], dict[str, int]], *, ceiling: int,
                 hard_limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.depths_of = depths_of
        self.ceiling = ceiling
        self.hard_limit = hard_limit
        self.clock = clock
        self._depths: dict[str, tuple[float, int]] = {}
        self._published: dict[str, int] = {}
        self.over_ceiling: set[str] = set()

    def published(self, client_id: str, tasks: int = 1) -> None:
        """Count tasks this bridge published since the depth was last read."""
        self._published[client_id] = self._published.get(client_id, 0) + tasks

    def depth(self, client_id: str) -> int:
        """The last depth read from Redis, plus what this bridge published since."""
        now = self.clock()
        cached = self._depths.get(client_id)
        if cached is not None and now - cached[0] < REFRESH_S:
            return cached[1] + self._published.get(client_id, 0)
        try:
            depth = self.depths_of([client_id])[client_id]
        except (redis.RedisError, OSError) as exc:
            return self._unknown(client_id, now, exc)
        self._read(client_id, now, depth)
        return depth

    def refresh(self, client_ids: set[str]) -> None:
        """Read the depths of these clients that are older than a second, together."""
        now = self.clock()
        stale = sorted(c for c in client_ids
                       if (cached := self._depths.get(c)) is None or now - cached[0] >= REFRESH_S)
        if not stale:
            return
        try:
            depths = self.depths_of(stale)
        except (redis.RedisError, OSError) as exc:
            for client_id in stale:
                self._unknown(client_id, now, exc)
            return
        for client_id in stale:
            self._read(client_id, now, depths.get(client_id, 0))

    def _unknown(self, client_id: str, now: float, exc: Exception) -> int:
        # The broker is away (publishing holds and retries meanwhile): the last depth
        # known stands, read again in a second.
        log.debug("queue depth of %s unknown: %s", client_id, exc)
        cached = self._depths.get(client_id)
        last = cached[1] if cached is not None else 0
        self._depths[client_id] = (now, last)
        return last + self._published.get(client_id, 0)

    def _read(self, client_id: str, now: float, depth: int) -> None:
        self._depths[client_id] = (now, depth)
        self._published[client_id] = 0
        if depth > self.ceiling and client_id not in self.over_ceiling:
            self.over_ceiling.add(client_id)
            log.warning("client %s has %d tasks queued (ceiling %d): its workers fall "
                        "behind; scale them (kgcelery scale %s N)", client_id, depth,
                        self.ceiling, client_id)
        elif depth <= self.ceiling and client_id in self.over_ceiling:
            self.over_ceiling.discard(client_id)
            log.info("client %s is back under its queue ceiling (%d tasks)", client_id, depth)

    def backlogged(self, client_id: str) -> bool:
        """True when the client's queue held tasks at the last read (at most a second
        ago, or as old as its last publication): its workers are behind."""
        cached = self._depths.get(client_id)
        return cached is not None and cached[1] > 0

    def refuses(self, client_id: str) -> bool:
        """True when the client is over its hard limit (records go to the DLQ)."""
        return bool(self.hard_limit) and self.depth(client_id) > self.hard_limit
