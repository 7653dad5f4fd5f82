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

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from kgcelery.app import create_app
from kgcelery.clients import queue_for
from kgcelery.control.queues import UNACKED_KEY, in_flight, queue_depth
from kgcelery.embedded.process import ManagedProcess
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.control_support import control_settings, event_count, plain_worker, send_events
from tests.fault_support import kill_running_child
from tests.helpers import Processes, wait_for

pytestmark = pytest.mark.integration

EVENTS, PER_TASK = 24_000, 2000
#: After a task shows in flight (taken by the main process), when its pool child is
#: killed, attempt by attempt: the child starts it some 30 ms later and runs ~150 ms.
KILL_DELAYS_S = (0.08, 0.05, 0.12, 0.03, 0.1)


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path) -> Settings:
    # A short visibility timeout, so that the restore after a lost worker comes soon.
    return control_settings(stack_settings, tmp_path, visibility_timeout_s=6,
                            task_time_limit_s=5)


@pytest.fixture
def app(settings: Settings) -> Iterator[Celery]:
    celery_app = create_app(settings)
    yield celery_app
    celery_app.close()


@pytest.fixture
def broker(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.broker_url)
    yield client
    client.close()


def _task_in_flight(broker: redis.Redis, client: str) -> str | None:
    """The id of the client's task that a worker holds unacknowledged, if any."""
    for raw in broker.hvals(UNACKED_KEY):
        message, _exchange, routing_key = json.loads(raw)
        if routing_key == queue_for(client):
            return str(message["headers"]["id"])
    return None


def _reported_lost(worker: ManagedProcess) -> bool:
    """True once the worker says a task's pool process died under it."""
    # The main process may notice a child killed mid-task only seconds later (4 s seen);
    # a child killed between tasks is replaced at once and the stream goes on.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        if "WorkerLostError" in worker.tail(500):
            return True
        time.sleep(0.1)
    return False


def _kill_mid_task(worker: ManagedProcess, broker: redis.Redis, client: str,
                   whole_worker: bool, delay: float = 0.0) -> str:
    """Wait until a task is in flight, kill -9 its process (or the whole worker); its id.

    A task is in flight from the moment the main process takes it; its pool child starts
    it a little later: see :func:`~tests.fault_support.kill_running_child`.
    """
    wait_for(lambda: in_flight(broker).get(client) == 1, timeout=30, interval=0.02,
             what="a task in flight")
    task_id = _task_in_flight(broker, client)
    assert task_id is not None
    if whole_worker:
        assert worker.pid is not None
        os.killpg(worker.pid, signal.SIGKILL)  # the main process and its pool child
        worker.kill()
        # What it held when it died (the task read above may have been acked since).
        task_id = _task_in_flight(broker, client) or task_id
    else:
        task_id = kill_running_child(worker, broker, client, delay=delay)
    return task_id


@pytest.mark.parametrize("whole_worker", [False, True], ids=["pool-child", "whole-worker"])
def test_kill_9_mid_batch_redelivers_and_the_graph_ends_complete(
        whole_worker: bool, settings: Settings, processes: Processes, app: Celery,
        broker: redis.Redis, graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    worker = plain_worker(processes, settings, client, name=f"{client}-victim")
    tasks = send_events(app, client, EVENTS, per_task=PER_TASK)
    # Let the first task start, so the kill lands on a worker mid-stream.
    wait_for(lambda: queue_depth(broker, client) <= tasks - 1, timeout=30,
             what="the first tasks taken")
    lost = _kill_mid_task(worker, broker, client, whole_worker, KILL_DELAYS_S[0])
    killed_at = time.monotonic()
    for delay in KILL_DELAYS_S[1:]:
        # A kill that lands while the main process still holds the next message (before
        # its pool child has it) loses nothing, and proves nothing: kill again.
        if whole_worker or _reported_lost(worker):
            break
        # The same events again: idempotent writes, and tasks to kill.
        send_events(app, client, EVENTS, per_task=PER_TASK)
        lost = _kill_mid_task(worker, broker, client, whole_worker, delay)

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
        assert _reported_lost(worker), "no kill landed on a running task"
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
