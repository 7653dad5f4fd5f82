"""The kinds of records and the task that ingests each kind.

The one contract between the bridge, which names a task for every batch, and the
workers, which register the tasks (:mod:`kgcelery.tasks`): a bridge newer than its
workers must not name a task they do not know (Celery would reject it for good).
"""

from __future__ import annotations

#: Record kind -> the Celery task that ingests a batch of it.
TASK_FOR_KIND: dict[str, str] = {
    "event": "kgcelery.ingest_events",
    "log": "kgcelery.ingest_logs",
    "resource": "kgcelery.ingest_resources",
    "topology": "kgcelery.ingest_topology",
    "alert": "kgcelery.ingest_alerts",
    "target": "kgcelery.ingest_targets",
}

#: The task of several batches of one client (of one kind or several), which a worker
#: builds from the small tasks of a backlog that it takes at once
#: (:mod:`kgcelery.broker.merge`); the bridge never names it.
MERGED_TASK = "kgcelery.ingest_batches"

#: The task of several clients' batches, which a fleet worker builds when it takes the
#: heads of several client queues at once (:mod:`kgcelery.broker.merge`); each client
#: is run as :data:`MERGED_TASK` would run it.
MULTI_CLIENT_TASK = "kgcelery.ingest_clients"

#: The control task the bridge sends when records come for a client that may hold no
#: worker (:mod:`kgcelery.bridge.wake`): a scaling run out of turn, on the control queue.
WAKE_TASK = "kgcelery.wake_worker_pools"

#: The Celery task -> the kind of record it ingests.
KIND_OF_TASK: dict[str, str] = {task: kind for kind, task in TASK_FOR_KIND.items()}
