"""What the control-plane tests share: isolated settings, the processes, events, the CLI.

Every control-plane test gets its own Redis database on the session's broker: beat's
expiry and scaling act on every client in the registry, so a test must not see the
clients that other tests registered. Celery's broadcasts are per database too
(``fanout_prefix``), so workers of one test never answer another's inspect.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from click.testing import CliRunner, Result

from kgcelery.cli import main
from kgcelery.clients import CONTROL_QUEUE, queue_for
from kgcelery.control.observe import active_queues, consumers_per_client
from kgcelery.embedded.process import ManagedProcess
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.helpers import Processes

#: Databases 8-15 of the session's broker, used in turn (0 is the shared one).
_databases = itertools.cycle(range(8, 16))

#: Short intervals: each lifecycle step takes a second or two. A scaling run waits
#: INSPECT_TIMEOUT_S for the workers' answers, so its interval is longer than that (a run
#: still queued after one interval expires); 1 s is what a loaded 2-core machine needs.
FAST = {
    "heartbeat_ttl_s": 3.0, "expiry_interval_s": 0.5, "scale_interval_s": 1.5,
    "drain_grace_s": 1.0, "scale_cooldown_s": 2.0, "scale_target_records_per_worker": 2500,
    "scale_min_workers": 1, "scale_max_workers": 3, "scale_global_max_workers": 8,
    "scale_hysteresis": 0.2, "reconcile_interval_s": 0.5, "inspect_timeout_s": 1.0,
}

EVENT = {"kind": "Event", "apiVersion": "v1", "reason": "BackOff", "type": "Warning",
         "message": "Back-off restarting failed container api in pod api-0",
         "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "api-0", "uid": "u"},
         "metadata": {"namespace": "shop", "name": "api-0.1"}, "count": 3,
         "firstTimestamp": "2026-11-27T10:00:00Z", "lastTimestamp": "2026-11-27T10:05:00Z"}


def control_settings(stack_settings: Settings, tmp_path: Path, **overrides: Any) -> Settings:
    """The session's stack, a fresh Redis database, short intervals, state under tmp_path."""
    db = next(_databases)
    url = f"redis://127.0.0.1:{stack_settings.embedded_broker_port}/{db}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    values = {"broker_url": url, "registry_url": url, "state_dir": tmp_path / "state",
              **FAST, **overrides}
    return stack_settings.model_copy(update=values)


def start_control_plane(processes: Processes, settings: Settings, *,
                        reconciler: bool = True) -> None:
    """A control worker, beat and (unless told not to) ``kgcelery reconcile``."""
    # Two processes: expiry (every 0.5 s) does not queue behind a scaling run.
    processes.worker(CONTROL_QUEUE, settings, name="control", concurrency=2)
    schedule = Path(settings.state_dir) / "beat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    processes.start("beat", [sys.executable, "-m", "celery", "-A", "kgcelery.app", "beat",
                             "-s", str(schedule), "--loglevel", "INFO"], settings,
                    ready_log="beat: Starting")
    if reconciler:
        processes.start("reconciler", [sys.executable, "-m", "kgcelery", "reconcile"],
                        settings, ready_log="reconciler running")


def events(prefix: str, count: int) -> list[dict[str, Any]]:
    """``count`` distinct Kubernetes events (distinct uids, so distinct Event nodes)."""
    return [{**EVENT, "metadata": {**EVENT["metadata"], "uid": f"{prefix}-{i}"}}
            for i in range(count)]


def send_events(app: Celery, client_id: str, count: int, per_task: int = 500) -> int:
    """Queue ``count`` events for a client in tasks of ``per_task``, as the bridge would."""
    batch = events(client_id, count)
    tasks = 0
    for start in range(0, count, per_task):
        records = batch[start:start + per_task]
        origins = [["test", 0, start + i, f"event::{r['metadata']['uid']}"]
                   for i, r in enumerate(records)]
        app.send_task("kgcelery.ingest_events", args=[client_id, records, origins],
                      argsrepr=f"({client_id!r}, <{len(records)} event records>)")
        tasks += 1
    return tasks


def consumers(app: Celery, client_id: str, timeout: float = 1.0) -> list[str]:
    """The workers that answer consuming the client's queue."""
    return consumers_per_client(active_queues(app, timeout)).get(client_id, [])


def event_count(graph: GraphStore, client_id: str) -> int:
    try:
        own = " {client: $client}" if graph.client_key else ""
        return int(graph.run(client_id, f"MATCH (e:Event{own}) RETURN count(e)")[0][0])
    except Exception:  # noqa: BLE001 - the graph does not exist yet
        return 0


def cli(settings: Settings, *args: str) -> Result:
    """Run ``kgcelery <args>`` in this process with these settings as its environment."""
    return CliRunner().invoke(main, list(args), env=settings.to_env(), catch_exceptions=False)


def plain_worker(processes: Processes, settings: Settings, client_id: str,
                 name: str) -> ManagedProcess:
    """``celery -A kgcelery.app worker -Q client.<id>``, as ops would start one by hand."""
    return processes.worker(queue_for(client_id), settings, name=name)
