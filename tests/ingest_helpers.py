"""Helpers for tests that drive the ingest tasks through real Celery workers.

The bridge routes only events so far, so other kinds are sent the way it will send
them: ``app.send_task(name, args=(client, records, origins), queue=queue_for(client))``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery

from kgcelery.app import create_app
from kgcelery.clients import queue_for
from kgcelery.graph import GraphStore
from kgcelery.kafka import ensure_topics
from kgcelery.kinds import TASK_FOR_KIND
from kgcelery.settings import Settings
from tests.helpers import Processes, wait_for

TASKS = TASK_FOR_KIND
_workers = itertools.count(1)


@contextmanager
def ingest_worker(base: Settings, log_dir: Path, clients: list[str],
                  **overrides: Any) -> Iterator[tuple[Settings, Celery]]:
    """A real worker on these clients' queues (stopped at exit, even on failure), the
    settings it runs with (its own ``dlq.normalized``), and an app to send tasks."""
    prefix = f"w{next(_workers)}-{os.getpid()}."
    settings = base.model_copy(update={"dlq_normalized_topic": prefix + "dlq.normalized",
                                       **overrides})
    ensure_topics(settings, [settings.dlq_normalized_topic])
    processes = Processes(settings, log_dir)
    app = create_app(settings)
    try:
        processes.worker(",".join(queue_for(client) for client in clients),
                         name=f"worker-{prefix.rstrip('.')}")
        yield settings, app
    finally:
        processes.stop_all()
        app.close()


def send(app: Celery, kind: str, client: str, records: list[Any],
         origins: list[list[Any]] | None = None, *, batch: int = 500) -> int:
    """Send records as tasks of at most ``batch`` records, as the bridge would."""
    sent = 0
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        where = origins[start:start + batch] if origins else None
        app.send_task(TASKS[kind], args=(client, chunk, where), queue=queue_for(client))
        sent += 1
    return sent


def wait_stable(graph: GraphStore, client: str, query: str, check: Callable[[Any], bool], *,
                timeout: float = 60, what: str) -> Any:
    """Wait until ``query``'s first value satisfies ``check``."""
    last: list[Any] = [None]

    def value() -> list[Any] | None:
        try:
            rows = graph.run(client, query)
        except Exception:  # noqa: BLE001 - the graph may not exist yet
            return None
        last[0] = rows[0][0] if rows else None
        return [last[0]] if check(last[0]) else None

    try:
        return wait_for(value, timeout=timeout, what=what)[0]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last value {last[0]!r}") from None
