"""Records for a client that holds no worker get one without waiting for beat's run.

Real bridge, control worker, beat, reconciler (local scaler) and worker processes, or a
fleet worker given the client's queue by the celery scaler; Tansu and Redis. Beat's
scaling run is an hour away here, and clients want no worker without work (min 0, idle
grace 0): only the bridge's wake (kgcelery.bridge.wake) can give the client a worker,
first when it is new, then when it has gone idle.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from kgcelery.clients import CONTROL_QUEUE
from kgcelery.control.registry import Registry
from kgcelery.control.scalers.fleet import FLEET_IDLE_QUEUE
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.conftest import topic_of
from tests.control_support import (
    EVENT,
    consumers,
    control_settings,
    event_count,
    start_control_plane,
)
from tests.helpers import Processes, produce, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "celery"])
def settings(test_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
             ) -> Settings:
    # Nobody beats here: no expiry during the test.
    return control_settings(test_settings, tmp_path, heartbeat_ttl_s=3600.0,
                            scale_interval_s=3600.0, scaler_backend=request.param,
                            scale_min_workers=0, scale_idle_grace_s=0.0, scale_wake_s=0.5)


@pytest.fixture
def reg(settings: Settings) -> Iterator[Registry]:
    registry = Registry.from_url(settings.registry_url)
    yield registry
    registry.close()


def _event(client: str, uid: str) -> tuple[str, dict]:
    return (f"{client}::event::{uid}",
            {**EVENT, "metadata": {**EVENT["metadata"], "name": f"api-0.{uid}", "uid": uid}})


def test_records_of_a_client_without_a_worker_wake_the_scaling_at_once(
        settings: Settings, processes: Processes, app: Celery, reg: Registry,
        graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    reg.register(client, cluster_name=client)
    fleet = settings.scaler_backend == "celery"
    if fleet:  # beat reconciles, by the fleet scaler (add_consumer)
        processes.worker(FLEET_IDLE_QUEUE, settings, name="fleet-1")
    start_control_plane(processes, settings, reconciler=not fleet)
    processes.bridge(settings)
    topic = topic_of(settings, "event")

    # New: no scaling run has sized it; its first record asks for one.
    produce(settings, topic, [_event(client, "first")])
    wait_for(lambda: event_count(graph, client) == 1, timeout=90,
             what="the new client's first record in its graph")
    assert reg.get(client).desired_reason != "idle"  # type: ignore[union-attr]

    # Idle: a run (beat's, sent by hand here) takes its worker away...
    app.send_task("kgcelery.scale_worker_pools", queue=CONTROL_QUEUE)
    wait_for(lambda: reg.get(client).desired_reason == "idle",  # type: ignore[union-attr]
             timeout=30, what="the client idle at 0 workers")
    wait_for(lambda: not consumers(app, client), timeout=30,
             what="its worker stopped (or its queue cancelled on the fleet)")
    # ...and its next record brings one back.
    produce(settings, topic, [_event(client, "second")])
    wait_for(lambda: event_count(graph, client) == 2, timeout=90,
             what="the idle client's next record in its graph")
