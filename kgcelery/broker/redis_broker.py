"""The Redis backend: tasks written in kombu's Redis layout, work counted in Redis.

Publishing: kombu's own publish path spends ~10 ms per 500-record task in stdlib JSON
and per-call overhead; here a whole round of tasks goes out in one pipeline of LPUSHes
of :func:`~kgcelery.broker.envelope.redis_envelope`.

Counting: with late acks a task leaves its list when a worker takes it and is
acknowledged only when done, so ``LLEN`` alone reads low (a worker busy with a batch,
or one killed mid-task, holds work not yet in the graph). Tasks in flight are the tags
of kombu's ``unacked`` hash; kgcelery's transport records each one's queue in a small
index when it takes the task (``lua/take.lua``), so ``lua/in_flight.lua`` counts them
per queue without reading a task body: its cost depends on the number of tasks in
flight, not on their size (``bench/broker.py``).

Durability (:meth:`RedisBroker.make_durable`): Redis acknowledges a write before it is
on disk (``appendfsync everysec``: up to a second later). With ``aof`` the bridge, before
it commits offsets, writes a fence key and waits with ``WAITAOF 1 0`` on that same
connection: ``WAITAOF`` waits for the client's own last write, and the fence comes after
every task published so far (on any connection), so once it is fsynced they all are.
``replicas`` does the same with ``WAIT n`` for replicas.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import redis
from celery import Celery
from kombu import Queue

from kgcelery.broker.base import UNREACHABLE, Durability, QueueWork, TaskBatch, TaskBroker
from kgcelery.broker.envelope import argsrepr, redis_envelope, task_body, task_headers
from kgcelery.broker.layout import IN_FLIGHT_KEY, UNACKED_KEY, load_script, priority_lists
from kgcelery.clients import client_of_queue, queue_for
from kgcelery.errors import BrokerUnavailableError
from kgcelery.kinds import TASK_FOR_KIND

log = logging.getLogger(__name__)

#: Written before each durability wait (see the module doc).
FENCE_KEY = "kgcelery:durable-fence"
COMPLAIN_EVERY_S = 60.0
_IN_FLIGHT = load_script("in_flight")
_RECORDS_PER_TASK = load_script("records_per_task")
_QUEUED = load_script("queued")


def queue_depth(client: redis.Redis, client_id: str) -> int:
    """Tasks waiting in a client's queue, all priority levels."""
    return queue_depths(client, [client_id])[client_id]


def queue_depths(client: redis.Redis, client_ids: list[str]) -> dict[str, int]:
    """Tasks waiting in each client's queue, all priority levels, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for client_id in client_ids:
        for name in priority_lists(queue_for(client_id)):
            pipe.llen(name)
    lengths = pipe.execute()
    steps = len(lengths) // len(client_ids) if client_ids else 0
    return {client_id: int(sum(lengths[i * steps:(i + 1) * steps]))
            for i, client_id in enumerate(client_ids)}


def in_flight(client: redis.Redis) -> dict[str, int]:
    """Tasks delivered to a worker and not yet acknowledged, per client."""
    return _in_flight_per_client(client.eval(_IN_FLIGHT, 2, UNACKED_KEY, IN_FLIGHT_KEY))


def _in_flight_per_client(flat: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for routing_key, count in zip(flat[::2], flat[1::2], strict=True):
        key = routing_key.decode() if isinstance(routing_key, bytes) else str(routing_key)
        client_id = client_of_queue(key)
        if client_id is not None:
            counts[client_id] = counts.get(client_id, 0) + int(count)
    return counts


def records_per_task(client: redis.Redis, client_id: str, default: int) -> float:
    """Records in one of the client's tasks, sampled from the ends of its queue."""
    return _mean_sample(client.eval(_RECORDS_PER_TASK, 1, queue_for(client_id)), default)


def work_of(client: redis.Redis, client_ids: Iterable[str], *,
            default_records_per_task: int) -> dict[str, QueueWork]:
    """See :meth:`TaskBroker.work_of`. One round trip, whatever the number of clients
    (beat's passes run it over every client): a script for the tasks in flight and one
    for the queues (``lua/queued.lua``; a pipeline of four ``LLEN`` per client cost
    more in redis-py's command packing than in Redis: bench/tenants.py), in one
    MULTI/EXEC. Read apart, a task taken between the two reads was in neither: beat saw
    a draining client's last task nowhere and retired it while it ran."""
    ids = tuple(client_ids)
    if not ids:
        return {}
    keys = _queue_lists(ids)
    pipe = client.pipeline(transaction=True)
    pipe.eval(_IN_FLIGHT, 2, UNACKED_KEY, IN_FLIGHT_KEY)
    pipe.eval(_QUEUED, len(keys), *keys, len(keys) // len(ids))
    flying_flat, flat = pipe.execute()
    flying = _in_flight_per_client(flying_flat)
    work = {}
    for i, client_id in enumerate(ids):
        queued, newest, oldest = (int(n) for n in flat[3 * i:3 * i + 3])
        tasks = queued + flying.get(client_id, 0)
        per_task = (_mean_sample([newest, oldest], default_records_per_task) if queued
                    else float(default_records_per_task))
        work[client_id] = QueueWork(queued, flying.get(client_id, 0), round(tasks * per_task))
    return work


@lru_cache(maxsize=8)
def _queue_lists(ids: tuple[str, ...]) -> tuple[bytes, ...]:
    """Every list of these clients' queues, encoded: beat names the same clients pass
    after pass, and building and encoding 4,000 names was a third of a pass at 1,000
    clients (bench/tenants.py)."""
    return tuple(name.encode() for client_id in ids
                 for name in priority_lists(queue_for(client_id)))


def _mean_sample(samples: list[int], default: int) -> float:
    known = [int(n) for n in samples if n >= 0]
    return sum(known) / len(known) if known else float(default)


class RedisBroker(TaskBroker):
    """A Redis broker, read and written in kombu's layout."""

    def __init__(self, app: Celery | None, broker_url: str,
                 durability: Durability | None = None) -> None:
        self.app = app
        self.redis = redis.Redis.from_url(broker_url, socket_timeout=10,
                                          socket_connect_timeout=5)
        self._declared: set[str] = set()
        self.durability = durability or Durability()
        self._unsynced = False
        self._complained_at = float("-inf")

    def _declare(self, queue_name: str) -> None:
        # The queue's binding lets Celery's own publishers (task retries) route to it.
        if self.app is None:
            raise TypeError("publishing needs the Celery app (open_broker(app, url))")
        queue: Queue = self.app.amqp.queues[queue_name]
        with self.app.connection_for_write() as connection:
            queue.declare(channel=connection.default_channel)
        self._declared.add(queue_name)

    def publish(self, batches: Sequence[TaskBatch]) -> None:
        """LPUSH every batch's task; :class:`BrokerUnavailableError` if Redis is away."""
        try:
            self._publish(batches)
        except UNREACHABLE as exc:
            raise BrokerUnavailableError(f"cannot publish to Redis: {exc}") from exc

    def _publish(self, batches: Sequence[TaskBatch]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for batch in batches:
            queue = queue_for(batch.client_id)
            if queue not in self._declared:
                self._declare(queue)
            headers = task_headers(TASK_FOR_KIND[batch.kind], str(uuid.uuid4()),
                                   argsrepr(batch.client_id, len(batch.records), batch.kind))
            body = task_body(batch.client_id, batch.records, batch.origins)
            pipe.lpush(queue, redis_envelope(body, headers, queue))
        pipe.execute()
        self._unsynced = True

    def make_durable(self) -> bool:
        """See :meth:`TaskBroker.make_durable` and the module doc."""
        mode = self.durability.mode
        if mode == "off" or not self._unsynced:
            return True
        timeout = self.durability.timeout_ms
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(FENCE_KEY)
        if mode == "aof":
            pipe.execute_command("WAITAOF", 1, 0, timeout)
        else:
            pipe.execute_command("WAIT", self.durability.replicas, timeout)
        try:
            _, acknowledged = pipe.execute()
        except redis.RedisError as exc:
            hint = (" (WAITAOF needs Redis 7.2 or newer with appendonly yes)"
                    if mode == "aof" else "")
            self._complain("could not wait for %s durability: %s%s; offsets wait", mode,
                           exc, hint)
            return False
        done = (int(acknowledged[0]) >= 1 if mode == "aof"
                else int(acknowledged) >= self.durability.replicas)
        if not done:
            self._complain("tasks not %s within %d ms; offsets wait",
                           "fsynced" if mode == "aof" else "replicated", timeout)
            return False
        self._unsynced = False
        return True

    def _complain(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._complained_at >= COMPLAIN_EVERY_S:
            self._complained_at = now
            log.warning(message, *args)

    def queue_depth(self, client_id: str) -> int:
        return queue_depth(self.redis, client_id)

    def queue_depths(self, client_ids: list[str]) -> dict[str, int]:
        return queue_depths(self.redis, client_ids)

    def work_of(self, client_ids: Iterable[str], *,
                default_records_per_task: int) -> dict[str, QueueWork]:
        return work_of(self.redis, client_ids,
                       default_records_per_task=default_records_per_task)

    def close(self) -> None:
        self.redis.close()
