"""Queue depths as the Redis broker holds them."""

from __future__ import annotations

import redis

from kgcelery.clients import queue_for

#: kombu's Redis transport keeps priority levels in extra lists named ``<queue>\x06\x16<n>``.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def queue_depth(client: redis.Redis, client_id: str) -> int:
    """Tasks waiting in a client's queue (not counting ones a worker holds)."""
    queue = queue_for(client_id)
    pipe = client.pipeline()
    pipe.llen(queue)
    for step in _PRIORITY_STEPS:
        pipe.llen(f"{queue}{_PRIORITY_SEPARATOR}{step}")
    return int(sum(pipe.execute()))


def queue_depths(client: redis.Redis, client_ids: list[str]) -> dict[str, int]:
    return {client_id: queue_depth(client, client_id) for client_id in client_ids}
