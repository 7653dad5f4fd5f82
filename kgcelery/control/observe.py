"""What the control plane sees: registry, queues and the workers consuming them.

Workers are counted by asking every worker which queues it consumes (Celery remote
control, ``inspect active_queues``). That sees any worker on the broker, including a
plain ``celery -A kgcelery.app worker -Q client.af-9`` started by hand on another
machine, and queues added at runtime with ``add_consumer``; a worker that does not
answer within ``INSPECT_TIMEOUT_S`` is not counted for that round.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from celery import Celery

from kgcelery.broker import QueueWork, TaskBroker
from kgcelery.clients import client_of_queue
from kgcelery.control.registry import ClientRecord, Registry

log = logging.getLogger(__name__)


def active_queues(app: Celery, timeout: float) -> dict[str, set[str]]:
    """The queues each worker that answered consumes: ``{worker name: {queue, ...}}``."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return {worker: {str(queue.get("name")) for queue in queues or []}
            for worker, queues in replies.items()}


def consumers_per_client(queues_of: dict[str, set[str]]) -> dict[str, list[str]]:
    """The workers consuming each client's queue, by name."""
    consumers: dict[str, list[str]] = {}
    for worker, queues in sorted(queues_of.items()):
        for queue in queues:
            client_id = client_of_queue(queue)
            if client_id is not None:
                consumers.setdefault(client_id, []).append(worker)
    return consumers


@dataclass(frozen=True)
class ClientView:
    """One row of ``kgcelery clients``: the registry record and what is live now."""

    client: str
    cluster: str
    state: str
    state_since: float | None
    last_heartbeat_age_s: float | None
    queue_depth: int
    in_flight: int
    records: int
    workers_desired: int | None
    workers_actual: int
    workers: list[str]
    pin: int | None
    reason: str
    region: str = ""
    version: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def view(record: ClientRecord, work: QueueWork, workers: list[str] | None,
         now: float) -> ClientView:
    """A row; ``workers`` None means "not asked": the count beat recorded is shown."""
    seen = record.last_seen
    actual = len(workers) if workers is not None else record.actual_workers or 0
    return ClientView(
        client=record.client_id, cluster=record.cluster_name, state=record.state,
        state_since=record.state_since,
        last_heartbeat_age_s=round(now - seen, 1) if seen is not None else None,
        queue_depth=work.queued, in_flight=work.in_flight, records=work.records,
        workers_desired=record.desired_workers, workers_actual=actual,
        workers=workers or [], pin=record.pinned_workers, reason=record.desired_reason,
        region=record.region, version=record.version)


def observe(registry: Registry, broker: TaskBroker, app: Celery | None, *,
            inspect_timeout: float, records_per_task: int) -> list[ClientView]:
    """Every registered client as it is now.

    :param app: used to ask the workers; None reads the actual workers that beat last
        recorded instead (fast, but up to one scaling period old).
    """
    records = registry.all()
    work = broker.work_of([r.client_id for r in records],
                          default_records_per_task=records_per_task)
    consumers: dict[str, list[str]] | None = None
    if app is not None:
        try:
            consumers = consumers_per_client(active_queues(app, inspect_timeout))
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must not hide the table
            log.warning("could not ask the workers (%s); showing recorded counts", exc)
    now = time.time()
    return [view(record, work[record.client_id],
                 None if consumers is None else consumers.get(record.client_id, []), now)
            for record in records]
