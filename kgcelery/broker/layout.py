"""What kgcelery knows of how kombu's Redis transport lays tasks out in Redis.

Only the modules of :mod:`kgcelery.broker` import this; ``tests/test_broker_contract.py``
checks every fact here against the kombu releases the pin admits.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

#: kombu's default ``unacked_key`` (transport option): delivered, unacknowledged
#: messages, delivery tag -> ``[message, exchange, routing_key]``. We never change it.
UNACKED_KEY = "unacked"
#: kombu's default ``unacked_index_key``: delivery tag -> delivery time (a sorted set).
UNACKED_INDEX_KEY = "unacked_index"
#: kgcelery's own index of the same tags: delivery tag -> routing key (the queue), so
#: that tasks in flight are counted without reading their bodies.
IN_FLIGHT_KEY = "kgcelery:unacked:queue"
#: kombu keeps priority levels in extra lists named ``<queue>\x06\x16<n>``.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


def priority_lists(queue: str) -> list[str]:
    """The Redis lists that hold a queue's messages, priority 0 first."""
    return [queue, *(f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)]


@cache
def load_script(name: str) -> str:
    """The Lua source of ``lua/<name>.lua``."""
    return resources.files("kgcelery.broker").joinpath("lua", f"{name}.lua").read_text()
