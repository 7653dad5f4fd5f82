"""The Celery app: ``celery -A kgcelery.app worker -Q client.af-9`` works as written.

Reliability defaults for this workload: a Redis transport that records a message as
unacknowledged in the same step that takes it (:mod:`kgcelery.broker.transport`), late acks and
reject-on-worker-lost (a worker killed mid-task leaves its task to be redelivered), no
prefetch (a busy worker does not sit on tasks another could run), a visibility timeout
longer than any task and a restore sweep that follows it closely, JSON only. A task for
client ``af-9`` is routed to ``client.af-9``; control tasks go to ``control``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, bootsteps
from celery.beat import PersistentScheduler

from kgcelery import fastjson
from kgcelery.broker import transport
from kgcelery.clients import CONTROL_QUEUE, queue_for
from kgcelery.liveness import Heartbeat
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

#: Tasks whose first argument is a client id; they run on that client's queue.
CLIENT_TASK_PREFIX = "kgcelery.ingest_"
#: The app's setting that carries KGCELERY_LIVENESS_DIR to the worker and beat hooks.
LIVENESS_DIR = "kgcelery_liveness_dir"
#: The app's setting that carries KGCELERY_CONTROL_METRICS_PORT to the control worker.
CONTROL_METRICS_PORT = "kgcelery_control_metrics_port"


def route_task(name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: dict[str, Any], task: Any = None, **_: Any) -> dict[str, str] | None:
    """Celery router: ``kgcelery.ingest_*`` to its client's queue, the rest to control."""
    if name.startswith(CLIENT_TASK_PREFIX):
        client_id = args[0] if args else kwargs.get("client_id", "")
        return {"queue": queue_for(str(client_id))}
    if name.startswith("kgcelery."):
        return {"queue": CONTROL_QUEUE}
    return None


def restore_interval(visibility_timeout_s: int) -> int:
    """Seconds between a worker's sweeps for messages whose visibility timeout passed.

    A task held by a worker that died (``kill -9``, a lost host, a broker connection
    lost mid-task) sits in kombu's ``unacked`` hash until some worker sweeps it back to
    its queue. kombu sweeps every 10 s but scans only on every 10th sweep (~100 s
    between scans), so with its defaults a lost task comes back up to ~100 s after its
    timeout; sweeping every fifth of the timeout (1 to 10 s) and scanning on each
    sweep brings it back soon after.
    """
    return max(1, min(10, visibility_timeout_s // 5))


class WorkerAlive(bootsteps.StartStopStep):
    """Touches the worker's liveness file from the worker's own timer (its event loop),
    which keeps turning while Redis refuses writes: the probe restarts a stuck worker,
    never one that waits for room in Redis."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.heartbeat = Heartbeat(worker.app.conf.get(LIVENESS_DIR), "worker", interval=0)
        self.entry: Any = None

    def start(self, worker: Any) -> None:
        if self.heartbeat.path is not None:
            self.heartbeat.beat()
            self.entry = worker.timer.call_repeatedly(5.0, self.heartbeat.beat)

    def stop(self, worker: Any) -> None:
        if self.entry is not None:
            self.entry.cancel()


class AliveScheduler(PersistentScheduler):
    """Beat's default scheduler, touching beat's liveness file on every tick."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat = Heartbeat(self.app.conf.get(LIVENESS_DIR), "beat")

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self.heartbeat.beat()
        # Wake at least every 5 s, so a long interval between jobs is no silence.
        return min(super().tick(*args, **kwargs), 5.0)


def create_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``."""
    transport.install()  # redis:// takes messages with kgcelery's transport
    fastjson.install()  # and decodes them with orjson
    celery_app = Celery("kgcelery", include=["kgcelery.tasks", "kgcelery.control.tasks"])
    celery_app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": restore_interval(settings.visibility_timeout_s),
            "unacked_restore_throttle": 1,
            "fanout_prefix": True,
            "fanout_patterns": True,
            # kgcelery.broker.transport: the small tasks of a backlog taken as one
            "merge_max_records": settings.worker_merge_max_records,
            "merge_max_bytes": settings.worker_merge_max_bytes,
            "merge_max_clients": settings.worker_merge_max_clients,
        },
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=settings.task_time_limit_s,
        task_default_queue=CONTROL_QUEUE,
        task_routes=(route_task,),
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        enable_utc=True,
        timezone="UTC",
        beat_scheduler=f"{__name__}:AliveScheduler",
        **{LIVENESS_DIR: settings.liveness_dir,
           CONTROL_METRICS_PORT: settings.control_metrics_port},
    )
    celery_app.steps["worker"].add(WorkerAlive)
    from beat_schedule import build_schedule

    celery_app.conf.beat_schedule = build_schedule(settings)
    return celery_app


settings = Settings()
app = create_app(settings)
