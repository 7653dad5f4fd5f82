"""The control plane end to end: real beat, control worker, reconciler, workers, Redis.

Intervals are short (see ``tests/control_support.py``): a heartbeat ttl of 3 s, expiry
every 0.5 s, scaling every 1 s with a 2 s cooldown, 2500 records per worker, at most 3.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from celery import Celery

from kgcelery.broker.redis_broker import work_of
from kgcelery.control.registry import ACTIVE, DRAINING, RETIRED, STALE, Registry
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.control_support import (
    cli,
    consumers,
    event_count,
    send_events,
    start_control_plane,
)
from tests.helpers import Processes, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def reg(settings: Settings) -> Iterator[Registry]:
    registry = Registry.from_url(settings.registry_url)
    yield registry
    registry.close()


class Heartbeats:
    """Beats for some clients every 0.5 s, as their agents would, until told to stop."""

    def __init__(self, registry: Registry, *clients: str) -> None:
        self.registry = registry
        self.clients = set(clients)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.5):
            for client in list(self.clients):
                self.registry.heartbeat(client, time.time())

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)


def _state(reg: Registry, client: str) -> str:
    record = reg.get(client)
    assert record is not None
    return record.state


def _backlog(reg: Registry, client: str) -> int:
    return work_of(reg.redis, [client], default_records_per_task=1)[client].backlog


@pytest.mark.both_stacks
def test_lifecycle_stale_drains_then_retires_and_comes_back(
        settings: Settings, processes: Processes, app: Celery, reg: Registry,
        graph: GraphStore, client_ids: list[str]) -> None:
    silent, leaving = client_ids[:2]
    for client in (silent, leaving):
        reg.register(client, cluster_name=f"{client}-cluster")
    beats = Heartbeats(reg, silent, leaving)
    try:
        start_control_plane(processes, settings)
        # Registered -> beat wants one worker each -> the reconciler starts them.
        for client in (silent, leaving):
            wait_for(lambda c=client: consumers(app, c), timeout=30,
                     what=f"a worker consuming client.{client}")
        # Ops pause both pools, so that a backlog builds up that only a drain can clear.
        for client in (silent, leaving):
            assert cli(settings, "scale", client, "0").exit_code == 0
        for client in (silent, leaving):
            wait_for(lambda c=client: not consumers(app, c), timeout=30,
                     what=f"the worker of {client} stopped")
        sent = {client: send_events(app, client, 3000) for client in (silent, leaving)}
        assert _backlog(reg, silent) == sent[silent] == 6
    finally:
        beats.close()

    # The silent client's heartbeats stopped; the other one is drained by ops (as a
    # registry tombstone would).
    assert cli(settings, "drain", leaving).exit_code == 0
    assert _state(reg, leaving) == DRAINING
    wait_for(lambda: _state(reg, silent) == STALE, timeout=10, what=f"{silent} stale")
    assert _backlog(reg, silent) > 0, "the backlog must still be there when it goes stale"

    # Drain first: the pin of 0 does not stop a drain; the backlog reaches the graph...
    for client in (silent, leaving):
        wait_for(lambda c=client: _state(reg, c) == RETIRED, timeout=45,
                 what=f"{client} retired")
        # ...before retirement: once retired, everything was written.
        assert event_count(graph, client) == 3000
        assert _backlog(reg, client) == 0
    for client in (silent, leaving):
        wait_for(lambda c=client: not consumers(app, c), timeout=30,
                 what=f"the workers of retired {client} gone")
        assert reg.get(client).desired_workers == 0  # type: ignore[union-attr]
    steps = [(t["from"], t["to"]) for t in reversed(reg.transitions(100))
             if t["client_id"] == silent]
    assert steps == [(None, ACTIVE), (ACTIVE, STALE), (STALE, RETIRED)]
    assert [(t["from"], t["to"]) for t in reversed(reg.transitions(100))
            if t["client_id"] == leaving] == [(None, ACTIVE), (ACTIVE, DRAINING),
                                               (DRAINING, RETIRED)]

    # The silent one heartbeats again: active at once; its graph was kept. The
    # deregistered one is not brought back by a heartbeat, only by registering again.
    assert reg.heartbeat(silent, time.time())
    assert _state(reg, silent) == ACTIVE
    assert not reg.heartbeat(leaving, time.time())
    assert _state(reg, leaving) == RETIRED
    assert event_count(graph, silent) == 3000
    assert cli(settings, "scale", silent, "auto").exit_code == 0
    beats = Heartbeats(reg, silent)
    try:
        wait_for(lambda: consumers(app, silent), timeout=30,
                 what=f"a worker for {silent} again")
        assert _state(reg, silent) == ACTIVE
    finally:
        beats.close()
    listing = json.loads(cli(settings, "clients", "--json").output)
    rows = {row["client"]: row for row in listing}
    assert rows[silent]["state"] == ACTIVE and rows[silent]["workers_actual"] == 1
    assert rows[leaving]["state"] == RETIRED and rows[leaving]["workers_actual"] == 0


def test_burst_scales_up_and_back_and_a_pin_holds(
        settings: Settings, processes: Processes, app: Celery, reg: Registry,
        graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    reg.register(client, cluster_name="burst")
    beats = Heartbeats(reg, client)
    try:
        # Ops pin the pool at 0 before anything runs; then 10k records arrive.
        assert cli(settings, "scale", client, "0").exit_code == 0
        start_control_plane(processes, settings)
        assert send_events(app, client, 10_000) == 20
        # The policy wants 3 (10k records / 2500, max 3); the pin holds it at 0
        # through three scaling passes that saw the queue.
        queued_at = time.time()
        wait_for(lambda: len([p for p in reg.passes("scale") if p >= queued_at]) >= 3,
                 timeout=30, what="three scaling passes")
        row = json.loads(cli(settings, "clients", "--json").output)[0]
        assert (row["pin"], row["workers_desired"], row["workers_actual"]) == (0, 0, 0)
        assert row["queue_depth"] == 20 and row["records"] == 10_000
        assert row["reason"] == "pinned"

        released = time.time()
        assert cli(settings, "scale", client, "auto").exit_code == 0
        wait_for(lambda: reg.get(client).desired_workers == 3,  # type: ignore[union-attr]
                 timeout=10, what="desired workers up to 3")
        rise = next(d for d in reg.decisions(50) if d.get("to") == 3)
        wait_for(lambda: rise["at"] in reg.passes("scale"), timeout=10,
                 what="the scaling pass that raised the pool to complete")
        before_rise = [p for p in reg.passes("scale") if released <= p < rise["at"]]
        assert len(before_rise) <= 1, \
            "desired workers must rise in one of the two scaling passes after the release"
        wait_for(lambda: len(consumers(app, client)) == 3, timeout=40,
                 what="three workers consuming the burst")
        wait_for(lambda: event_count(graph, client) == 10_000, timeout=60,
                 what="the whole burst in the graph")
        # Queue empty: back to the minimum after the cooldown, and the workers follow.
        wait_for(lambda: reg.get(client).desired_workers == 1,  # type: ignore[union-attr]
                 timeout=15, what="desired workers back to 1")
        wait_for(lambda: len(consumers(app, client)) == 1, timeout=40,
                 what="back to one worker")
        shown = cli(settings, "clients").output
        assert client in shown and " 1/1 " in shown, shown
    finally:
        beats.close()
