"""A worker killed mid-batch: the task is redelivered and the graph ends complete.

Two ways to die, two mechanisms (both with late acks, so the message stays in kombu's
``unacked`` hash while a worker holds it, and counts as in flight):

- the pool child running the task is ``kill -9``ed: the worker's main process sees
  it and, with ``task_reject_on_worker_lost``, requeues the task at once;
- the whole worker (main process and child) is ``kill -9``ed: nobody requeues; the
  message is restored from ``unacked`` once the visibility timeout has passed, by the
  next worker that polls the broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from kgcelery.broker.redis_broker import in_flight, queue_depth
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.control_support import control_settings, event_count, plain_worker, send_events
from tests.fault_support import kill_mid_task
from tests.helpers import Processes, wait_for

pytestmark = pytest.mark.integration

EVENTS, PER_TASK = 24_000, 2000


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path) -> Settings:
    # A short visibility timeout, so that the restore after a lost worker comes soon.
    return control_settings(stack_settings, tmp_path, visibility_timeout_s=6,
                            task_time_limit_s=5)


@pytest.fixture
def broker(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.broker_url)
    yield client
    client.close()


@pytest.mark.parametrize("whole_worker", [False, True], ids=["pool-child", "whole-worker"])
def test_kill_9_mid_batch_redelivers_and_the_graph_ends_complete(
        whole_worker: bool, settings: Settings, processes: Processes, app: Celery,
        broker: redis.Redis, graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    worker = plain_worker(processes, settings, client, name=f"{client}-victim")
    # Each attempt queues the events (again: idempotent writes, and tasks to kill).
    lost = kill_mid_task(worker, broker, client, whole_worker=whole_worker,
                         feed=lambda: send_events(app, client, EVENTS, per_task=PER_TASK))
    killed_at = time.monotonic()

    if whole_worker:
        # The lost task is in flight and stays so: nobody acks it, nobody requeues it.
        assert in_flight(broker).get(client) == 1
        # A new worker (the reconciler would start one) restores it once the visibility
        # timeout has passed; it polls the unacked messages when it starts.
        wait_for(lambda: time.monotonic() - killed_at > settings.visibility_timeout_s + 1,
                 timeout=30, what="the visibility timeout")
        rescuer = plain_worker(processes, settings, client, name=f"{client}-rescuer")
        wait_for(lambda: f"[{lost}] received" in rescuer.tail(500), timeout=30,
                 what=f"the lost task {lost} delivered again")
    else:
        assert worker.alive(), "the main process survives a lost pool child"
        wait_for(lambda: worker.tail(2000).count(f"[{lost}] received") == 2, timeout=30,
                 what=f"the lost task {lost} delivered again")

    wait_for(lambda: event_count(graph, client) == EVENTS, timeout=60,
             what=f"all {EVENTS} events in the graph")
    wait_for(lambda: not in_flight(broker).get(client) and not queue_depth(broker, client),
             timeout=15, what="nothing queued or in flight")
    # The graph has every event exactly once, however often a batch ran.
    rows = graph.run(client, "MATCH (e:Event) RETURN count(DISTINCT e.id), count(e)")
    assert rows[0][0] == rows[0][1] == EVENTS
