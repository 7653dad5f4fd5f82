"""Any broker Celery supports, through kombu's public API: the fallback backend.

Publishing goes through Celery's producer pool (slower than the Redis backend's
pipeline, but it needs nothing of the broker's layout). Depths come from a passive
queue declaration; tasks in flight are not known here (AMQP brokers keep them per
consumer), so they count as 0 and pools are sized from queued tasks alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from celery import Celery
from kombu import Queue

from kgcelery.broker.base import UNREACHABLE, QueueWork, TaskBatch, TaskBroker
from kgcelery.broker.envelope import argsrepr, task_body, task_headers
from kgcelery.clients import queue_for
from kgcelery.errors import BrokerUnavailableError
from kgcelery.kinds import TASK_FOR_KIND


class KombuBroker(TaskBroker):
    """Celery's own producer and kombu's queue declarations."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._declared: set[str] = set()

    def publish(self, batches: Sequence[TaskBatch]) -> None:
        try:
            self._publish(batches)
        except UNREACHABLE as exc:
            raise BrokerUnavailableError(f"cannot publish: {exc}") from exc

    def _publish(self, batches: Sequence[TaskBatch]) -> None:
        with self.app.producer_or_acquire() as producer:
            for batch in batches:
                queue: Queue = self.app.amqp.queues[queue_for(batch.client_id)]
                task_id = str(uuid.uuid4())
                producer.publish(
                    task_body(batch.client_id, batch.records, batch.origins),
                    exchange=queue.exchange, routing_key=queue.routing_key,
                    declare=None if queue.name in self._declared else [queue],
                    headers=task_headers(TASK_FOR_KIND[batch.kind], task_id, argsrepr(
                        batch.client_id, len(batch.records), batch.kind)),
                    content_type="application/json", content_encoding="utf-8",
                    correlation_id=task_id, delivery_mode=2)
                self._declared.add(queue.name)

    def queue_depth(self, client_id: str) -> int:
        queue: Queue = self.app.amqp.queues[queue_for(client_id)]
        with self.app.connection_for_read() as connection:
            declared = queue.bind(connection.default_channel).queue_declare(passive=True)
        return int(declared.message_count)

    def work_of(self, client_ids: Iterable[str], *,
                default_records_per_task: int) -> dict[str, QueueWork]:
        work = {}
        for client_id in client_ids:
            try:
                queued = self.queue_depth(client_id)
            except Exception:  # noqa: BLE001 - a queue never declared holds nothing
                queued = 0
            work[client_id] = QueueWork(queued, 0, queued * default_records_per_task)
        return work
