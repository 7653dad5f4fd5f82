"""Publish batches as Celery tasks on their clients' queues.

Each batch becomes one task ``(client_id, records, origins)`` in Celery's message
protocol 2. The body is assembled here, with each record's JSON spliced in as the
producer wrote it: decoding and re-encoding every record was most of the bridge's time.

Two ways to hand the message to the broker:
- :class:`RedisTaskPublisher` (Redis brokers, the default): writes kombu's Redis
  envelope itself and LPUSHes a whole round of batches in one pipeline. kombu's own
  publish path spends ~10 ms per 500-record task in stdlib JSON and per-call overhead.
  ``tests/test_publisher.py`` checks the envelope against kombu's for the same message.
- :class:`KombuTaskPublisher`: through Celery's producer, for any broker.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis
from celery import Celery
from kombu import Queue

from kgcelery.bridge.batcher import Batch
from kgcelery.clients import queue_for

log = logging.getLogger(__name__)

#: The task that ingests each kind of record.
TASK_FOR_KIND: dict[str, str] = {
    "event": "kgcelery.ingest_events",
    "log": "kgcelery.ingest_logs",
    "resource": "kgcelery.ingest_resources",
    "topology": "kgcelery.ingest_topology",
    "alert": "kgcelery.ingest_alerts",
}
_EMBED = b'{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'
ORIGIN = "kgcelery-bridge"


def task_body(client_id: str, records: Sequence[bytes], origins: list[list[Any]]) -> bytes:
    """``[[client_id, [records...], origins], {}, embed]`` with records spliced in as is."""
    return b"".join((b"[[", orjson.dumps(client_id), b",[", b",".join(records), b"],",
                     orjson.dumps(origins), b"],{},", _EMBED, b"]"))


def task_headers(batch: Batch, task_id: str) -> dict[str, Any]:
    """Celery protocol 2 headers; ``argsrepr`` is what Flower shows for the task."""
    return {
        "lang": "py", "task": TASK_FOR_KIND[batch.kind], "id": task_id, "shadow": None,
        "eta": None, "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": f"({batch.client_id!r}, <{len(batch.records)} {batch.kind} records>)",
        "kwargsrepr": "{}", "origin": ORIGIN, "ignore_result": True,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }


def redis_envelope(batch: Batch, queue: str, task_id: str) -> bytes:
    """The JSON that kombu's Redis transport LPUSHes for this task."""
    body = task_body(batch.client_id, batch.records, batch.origins)
    return orjson.dumps({
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": task_headers(batch, task_id),
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": queue, "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })


class KombuTaskPublisher:
    """Publishes through Celery's producer pool: works with any Celery broker."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._declared: set[str] = set()

    def publish(self, batches: Sequence[Batch]) -> None:
        """Publish batches in order; raises the broker's error if it is unreachable."""
        with self.app.producer_or_acquire() as producer:
            for batch in batches:
                queue: Queue = self.app.amqp.queues[queue_for(batch.client_id)]
                task_id = str(uuid.uuid4())
                producer.publish(
                    task_body(batch.client_id, batch.records, batch.origins),
                    exchange=queue.exchange, routing_key=queue.routing_key,
                    declare=None if queue.name in self._declared else [queue],
                    headers=task_headers(batch, task_id), content_type="application/json",
                    content_encoding="utf-8", correlation_id=task_id, delivery_mode=2)
                self._declared.add(queue.name)


class RedisTaskPublisher:
    """Publishes a round of batches to a Redis broker in one pipeline."""

    def __init__(self, app: Celery, broker_url: str) -> None:
        self.app = app
        self.redis = redis.Redis.from_url(broker_url, socket_timeout=10,
                                          socket_connect_timeout=5)
        self._declared: set[str] = set()

    def _declare(self, queue_name: str) -> None:
        # The queue's binding lets Celery's own publishers (task retries) route to it.
        queue: Queue = self.app.amqp.queues[queue_name]
        with self.app.connection_for_write() as connection:
            queue.declare(channel=connection.default_channel)
        self._declared.add(queue_name)

    def publish(self, batches: Sequence[Batch]) -> None:
        """LPUSH every batch's task; raises ``redis.RedisError`` if Redis is unreachable."""
        pipe = self.redis.pipeline(transaction=False)
        for batch in batches:
            queue = queue_for(batch.client_id)
            if queue not in self._declared:
                self._declare(queue)
            pipe.lpush(queue, redis_envelope(batch, queue, str(uuid.uuid4())))
        pipe.execute()

    def close(self) -> None:
        self.redis.close()


def make_publisher(app: Celery, broker_url: str) -> KombuTaskPublisher | RedisTaskPublisher:
    """The fast Redis publisher for ``redis://`` brokers, kombu's for any other."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisTaskPublisher(app, broker_url)
    return KombuTaskPublisher(app)
