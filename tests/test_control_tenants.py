"""Many tenants on a small budget, end to end: real beat, control worker, reconciler
(local scaler), worker processes and Redis.

200 registered clients, none with work, hold no worker once their idle grace is over,
and never more than the global max meanwhile; when records arrive for some of them,
every one of those gets a worker in turn and its records reach its graph. The same on a
fleet, run by ``kgcelery reconcile`` as ``KGCELERY_WORKER_MODE`` says.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from kgcelery.control.observe import active_queues, consumers_per_client
from kgcelery.control.registry import Registry
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.control_support import control_settings, event_count, send_events, start_control_plane
from tests.helpers import Processes, wait_for

pytestmark = pytest.mark.integration

CLIENTS = 200
BUDGET = 3
WITH_WORK = 8


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
             ) -> Settings:
    # No expiry during the test (nobody beats for 200 clients); a short idle grace.
    return control_settings(stack_settings, tmp_path, heartbeat_ttl_s=3600.0,
                            scale_global_max_workers=BUDGET, scale_idle_grace_s=2.0,
                            **getattr(request, "param", {}))


class WorkerCount:
    """Samples the client workers that answer, all the while; keeps the largest count."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.most = 0
        self.last = -1
        self.names: set[str] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                per_client = consumers_per_client(active_queues(self.app, 1.0))
            except Exception:  # noqa: BLE001 - a sample missed; the next one counts
                continue
            workers = {w for names in per_client.values() for w in names}
            self.last = len(workers)
            self.names |= workers
            self.most = max(self.most, self.last)
            self.done.wait(0.3)

    def close(self) -> None:
        self.done.set()
        self.thread.join(10)


@pytest.fixture
def worker_count(app: Celery) -> Iterator[WorkerCount]:
    counter = WorkerCount(app)
    yield counter
    counter.close()


def test_200_idle_clients_hold_a_bounded_fleet_and_each_gets_its_work_done(
        settings: Settings, processes: Processes, app: Celery, graph: GraphStore,
        worker_count: WorkerCount, client_ids: list[str]) -> None:
    prefix = client_ids[0]
    clients = [f"{prefix}-{i:03}" for i in range(CLIENTS)]
    registry = Registry.from_url(settings.registry_url)
    try:
        for client in clients:
            registry.register(client, cluster_name=client)
        start_control_plane(processes, settings)
        # Beat decides for all 200; after the idle grace none holds a worker.
        wait_for(lambda: all(r.desired_workers == 0 and r.desired_reason == "idle"
                             for r in registry.all()), timeout=60,
                 what="all 200 idle clients at 0 desired workers")
        wait_for(lambda: worker_count.last == 0, timeout=60, what="no client worker left")

        busy = clients[::CLIENTS // WITH_WORK][:WITH_WORK]
        for client in busy:
            send_events(app, client, 50, per_task=50)
        for client in busy:
            wait_for(lambda c=client: event_count(graph, c) == 50, timeout=180,  # type: ignore[misc]
                     what=f"{client}'s records in its graph")
        # The others stayed idle; their graphs got nothing.
        assert all(event_count(graph, c) == 0 for c in clients[1:5] if c not in busy)
    finally:
        registry.close()
    assert 0 < worker_count.most <= BUDGET, f"{worker_count.most} workers at once"


FLEET = 2


@pytest.mark.parametrize("settings", [{"worker_mode": "fleet", "fleet_size": FLEET}],
                         indirect=True, ids=["fleet"])
def test_kgcelery_reconcile_runs_the_fleet_that_worker_mode_names(
        settings: Settings, processes: Processes, app: Celery, graph: GraphStore,
        worker_count: WorkerCount, client_ids: list[str]) -> None:
    clients = [f"{client_ids[0]}-{i:02}" for i in range(20)]
    registry = Registry.from_url(settings.registry_url)
    try:
        for client in clients:
            registry.register(client, cluster_name=client)
        start_control_plane(processes, settings)
        busy = clients[::5]
        for client in busy:
            send_events(app, client, 50, per_task=50)
        for client in busy:
            wait_for(lambda c=client: event_count(graph, c) == 50, timeout=180,  # type: ignore[misc]
                     what=f"{client}'s records in its graph")
    finally:
        registry.close()
    # The fleet's workers did it all: no worker of a client's own was started.
    started = sorted(log.stem for log in (Path(settings.state_dir) / "logs").glob("*.log"))
    assert started == [f"fleet-{n}" for n in range(1, FLEET + 1)]
    assert all(name.startswith("fleet-") for name in worker_count.names), worker_count.names
