"""Publish a batch as one Celery task on its client's queue."""

from __future__ import annotations

import logging

from celery import Celery

from kgcelery.bridge.batcher import Batch
from kgcelery.clients import queue_for

log = logging.getLogger(__name__)

#: The task that ingests each kind of record.
TASK_FOR_KIND: dict[str, str] = {
    "event": "kgcelery.ingest_events",
}


class TaskPublisher:
    """Sends batches to Redis through Celery's producer pool."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish(self, batch: Batch) -> None:
        """Publish one batch; raises the broker's connection error if Redis is down."""
        task = TASK_FOR_KIND[batch.kind]
        with self.app.producer_or_acquire() as producer:
            self.app.send_task(
                task, args=(batch.client_id, batch.records, batch.origins),
                queue=queue_for(batch.client_id), producer=producer,
                retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2,
                                          "interval_step": 0.5, "interval_max": 2},
            )
