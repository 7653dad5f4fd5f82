"""Per-client ingest tasks: normalize a batch, write it to the client's graph.

Each task takes one batch of one client (the client id once, not per record) and runs
on that client's queue. Transient graph errors are retried with exponential backoff
and jitter; records that cannot be normalized go to ``dlq.normalized`` while the rest
of the batch is still written.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Task

from kgcelery.app import app, settings
from kgcelery.clients import validate_client_id
from kgcelery.deadletter import DeadLetter, DeadLetterWriter
from kgcelery.errors import GraphUnavailableError, RejectedRecordError
from kgcelery.graph import GraphStore, open_store
from kgcelery.graph.writer import write_events
from kgcelery.normalize.events import EventRecord, normalize_event

log = logging.getLogger(__name__)

#: Origin of a record: [topic, partition, offset, entity key].
Origin = list[Any]

_store: GraphStore | None = None
_dead_letters: DeadLetterWriter | None = None


def store() -> GraphStore:
    """This worker process's graph connection."""
    global _store
    if _store is None:
        _store = open_store(settings)
    return _store


def dead_letters() -> DeadLetterWriter:
    global _dead_letters
    if _dead_letters is None:
        _dead_letters = DeadLetterWriter(settings, settings.dlq_normalized_topic)
    return _dead_letters


def _reject(client_id: str, record: Any, origin: Origin | None, error: RejectedRecordError) -> None:
    key = f"{client_id}::{origin[3]}".encode() if origin and len(origin) > 3 else None
    where = (str(origin[0]), int(origin[1]), int(origin[2])) if origin else None
    dead_letters().send(DeadLetter(reason=error.reason, error=error.detail, key=key,
                                   value=json.dumps(record).encode(), origin=where,
                                   client_id=client_id))


@app.task(name="kgcelery.ingest_events", bind=True, acks_late=True,
          autoretry_for=(GraphUnavailableError,), retry_backoff=1, retry_backoff_max=60,
          retry_jitter=True, max_retries=20)
def ingest_events(self: Task, client_id: str, records: list[Any],
                  origins: list[Origin] | None = None) -> dict[str, int]:
    """Normalize a batch of Kubernetes events and MERGE them into the client's graph."""
    validate_client_id(client_id)
    events: list[EventRecord] = []
    rejected = 0
    for index, record in enumerate(records):
        try:
            events.extend(normalize_event(record))
        except RejectedRecordError as error:
            rejected += 1
            _reject(client_id, record, origins[index] if origins else None, error)
    if rejected:
        dead_letters().flush()
    written = write_events(store(), client_id, events)
    return {"written": written, "rejected": rejected}
