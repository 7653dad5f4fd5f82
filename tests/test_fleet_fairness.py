"""A loud client cannot starve quiet ones on a shared fleet worker: real Redis, a real
Celery fleet worker, queues handed to it by the fleet scaler (Celery remote control).

The loud client's backlog is queued first and its queue is the first the worker gets;
the quiet clients' few tasks come after. Order, not time, is asserted: every quiet task
is in its graph while most of the loud backlog is still queued. What makes it so is the
worker taking from its queues in turn (kombu moves the queue it took from to the end of
its cycle; kgcelery's take follows that order): without it the take would find the loud
queue first every time and the quiet tasks would wait for the whole backlog.
"""

from __future__ import annotations

import pytest
import redis
from celery import Celery

from kgcelery.clients import queue_for
from kgcelery.control.scalers.fleet import FLEET_IDLE_QUEUE, FleetScaler
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.control_support import event_count, send_events
from tests.helpers import Processes, wait_for

pytestmark = pytest.mark.integration

LOUD_TASKS = 80
LOUD_PER_TASK = 200
QUIET_TASKS = 2
QUIET_PER_TASK = 20


def test_quiet_clients_are_served_while_a_loud_backlog_waits(
        settings: Settings, processes: Processes, app: Celery, graph: GraphStore,
        client_ids: list[str]) -> None:
    loud, *quiet = client_ids[:4]
    broker = redis.Redis.from_url(settings.broker_url)
    # Everything queued before the worker has any client queue: the loud backlog first,
    # then the quiet tasks. How fast the worker writes does not matter then.
    send_events(app, loud, LOUD_TASKS * LOUD_PER_TASK, per_task=LOUD_PER_TASK)
    for client in quiet:
        send_events(app, client, QUIET_TASKS * QUIET_PER_TASK, per_task=QUIET_PER_TASK)
    processes.worker(FLEET_IDLE_QUEUE, settings, name="fleet-1")
    scaler = FleetScaler(app, pattern="fleet-*@*", timeout=settings.inspect_timeout_s)
    # One pass assigns them all, the loud queue first (client ids in order): the worker's
    # cycle starts with it.
    everyone = {loud: 1, **{client: 1 for client in quiet}}
    assert sorted(everyone)[0] == loud
    wait_for(lambda: scaler.apply(everyone) == everyone, timeout=30,
             what="every queue on the one fleet worker")

    wait_for(lambda: all(event_count(graph, c) == QUIET_TASKS * QUIET_PER_TASK
                         for c in quiet), timeout=120, what="the quiet clients' events")
    # Read after the quiet ones were done: the loud backlog was at least this then.
    left = broker.llen(queue_for(loud))
    broker.close()
    assert left >= LOUD_TASKS // 2, (
        f"the quiet clients waited for the loud backlog: {left} of {LOUD_TASKS} loud "
        "tasks left when they were done")
