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
