"""Fault injection end to end: real Kafka → bridge → Celery workers → FalkorDB, one fault
per test, and at the end every produced record in its graph exactly once, by id.

Each test prints what it injected and what it found (run with ``-s`` to see the lines;
docs/RELIABILITY.md quotes them). Faults that stop a service stop the module's own
broker Redis or FalkorDB (:class:`~tests.fault_support.DedicatedServices`), never the
session's. ``make soak`` runs a random mix of the same faults for longer (tests/soak.py).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kgcelery.broker.redis_broker import in_flight
from kgcelery.clients import queue_for
from kgcelery.control.registry import RETIRED, STALE, Registry
from kgcelery.graph import GraphStore, open_store
from kgcelery.settings import Settings
from tests.control_support import FAST as CONTROL_INTERVALS
from tests.control_support import start_control_plane
from tests.fault_support import (
    FAULT_SETTINGS,
    MALFORMED_REASONS,
    MAX_VALUE_BYTES,
    DedicatedServices,
    Feeder,
    Heartbeats,
    Ledger,
    assert_exactly_once,
    backlog_of,
    event_ids,
    kill_mid_task,
    malformed_records,
    records_written,
    restart,
    settle,
    tally,
)
from tests.helpers import Processes, committed_count, produce, wait_for

pytestmark = pytest.mark.integration

GRAPH_OUTAGE_S = 10.0


@pytest.fixture(scope="module")
def services(stack_settings: Settings,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[DedicatedServices]:
    own = DedicatedServices(stack_settings, tmp_path_factory.mktemp("fault-services"))
    try:
        own.start()
        yield own
    finally:
        own.stop()


@pytest.fixture
def settings(test_settings: Settings, services: DedicatedServices) -> Settings:
    """The test's topics and group on the session's Tansu; broker and graph of our own."""
    services.start()
    # The dedicated graph is a FalkorDB on either stack; Kafka is the stack's.
    return services.settings_for(test_settings, graph_backend="falkordb", **FAULT_SETTINGS)


@pytest.fixture
def graph(settings: Settings) -> Iterator[GraphStore]:
    store = open_store(settings)
    yield store
    store.close()


@pytest.fixture
def broker(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.broker_url)
    yield client
    client.close()


def _register(broker: redis.Redis, *clients: str) -> None:
    registry = Registry(broker)
    for client in clients:
        registry.register(client, cluster_name=f"{client}-cluster")


def _events_in(graph: GraphStore, client: str) -> int:
    return len(event_ids(graph, client))


def _injected(kills: Counter[str]) -> str:
    return ", ".join(f"{n} {what}" for what, n in kills.items())


def test_worker_kill_9_mid_batch_repeatedly(
        settings: Settings, processes: Processes, broker: redis.Redis, graph: GraphStore,
        client_ids: list[str]) -> None:
    # Batches of 2000: a task runs long enough for a kill to land inside it.
    settings = settings.model_copy(update={"batch_max_records": 2000})
    client = client_ids[0]
    _register(broker, client)
    processes.bridge(settings)
    workers = iter(range(1, 100))
    worker = processes.worker(queue_for(client), settings, name=f"{client}-{next(workers)}")
    ledger = Ledger()
    kills: Counter[str] = Counter()
    for fault in ("pool child kill -9", "pool child kill -9", "worker kill -9 (main + pool)",
                  "pool child kill -9", "worker kill -9 (main + pool)"):
        whole = fault.startswith("worker")
        kill_mid_task(worker, broker, client, whole_worker=whole,
                      feed=lambda: ledger.produce_events(settings, client, 4000))
        kills[fault] += 1
        if not whole:
            # The main process saw its child die and requeued the task (reject on
            # worker lost): it runs again on the same worker.
            assert worker.alive(), "the main process survives a lost pool child"
            continue
        # Nobody requeues the task of a dead worker: it stays in kombu's unacked hash
        # until the visibility timeout, when a live worker's sweep restores it. Started
        # again at once, as the local scaler would.
        worker = processes.worker(queue_for(client), settings,
                                  name=f"{client}-{next(workers)}")
    result = settle(graph, ledger, settings, timeout=90)
    print("\n" + result.line(_injected(kills)))
    assert_exactly_once(result)


def test_fleet_worker_kill_9_holding_several_clients_tasks(
        settings: Settings, processes: Processes, broker: redis.Redis, graph: GraphStore,
        client_ids: list[str]) -> None:
    # Small tasks queued for three clients before the fleet worker starts: its first
    # take carries all nine as one ingest_clients task (room enough in records and bytes).
    settings = settings.model_copy(update={
        "batch_max_records": 100, "worker_merge_max_records": 1000,
        "worker_merge_max_bytes": 10_000_000, "worker_merge_max_clients": 16})
    clients = client_ids[:3]
    _register(broker, *clients)
    processes.bridge(settings)
    ledger = Ledger()
    for client in clients:
        ledger.produce_events(settings, client, 300)
    queued: list[list[int]] = [[]]

    def all_queued() -> bool:  # every client's tasks queued, and no more coming
        now = [backlog_of(broker, c) for c in clients]
        settled, queued[0] = now == queued[0] and min(now) >= 3, now
        return settled

    wait_for(all_queued, timeout=60, interval=1.0, what="every client's tasks queued")
    queues = ",".join(queue_for(client) for client in clients)
    worker = processes.worker(queues, settings, name="fleet-kill-1")
    wait_for(lambda: len(in_flight(broker)) == len(clients), timeout=30, interval=0.005,
             what="one task in flight for every client")
    assert worker.pid is not None
    os.killpg(worker.pid, signal.SIGKILL)
    worker.kill()
    # After the visibility timeout a live worker's sweep puts each client's part back on
    # its own queue; a per-client worker of one of them takes only its own.
    alone = processes.worker(queue_for(clients[0]), settings, name="fleet-kill-alone")
    wait_for(lambda: _events_in(graph, clients[0]) >= 300, timeout=60,
             what="the first client's events, restored to its queue")
    # (The killed worker may have written some of theirs before it died: no count here.)
    assert all(backlog_of(broker, c) >= 1 for c in clients[1:]), \
        "the others' parts wait on their own queues"
    processes.worker(queues, settings, name="fleet-kill-2")
    result = settle(graph, ledger, settings, timeout=90)
    print("\n" + result.line("fleet worker kill -9 holding three clients' tasks"))
    assert_exactly_once(result)
    assert "kgcelery.ingest_batches[" in alone.log_path.read_text(errors="replace")


@pytest.mark.both_stacks  # the bridge's consumer group on Tansu and on Apache Kafka
def test_bridge_kill_9_midstream_then_restart(
        settings: Settings, processes: Processes, broker: redis.Redis, graph: GraphStore,
        client_ids: list[str]) -> None:
    loud, quiet = client_ids[:2]
    _register(broker, loud, quiet)
    worker = processes.worker(f"{queue_for(loud)},{queue_for(quiet)}", settings,
                              name="worker")
    first = processes.bridge(settings, name="bridge-1")
    ledger = Ledger()
    feeder = Feeder(settings, ledger, {loud: 10, quiet: 1}, rate=4000, total=24_000).start()
    topic = settings.topics_of("event")[0]
    wait_for(lambda: committed_count(settings, topic) >= 4000, timeout=30, interval=0.05,
             what="the bridge to commit its first records")
    first.kill()
    at_kill = committed_count(settings, topic)
    assert feeder.running, "the stream ended before the kill; the test proves nothing"
    processes.bridge(settings, name="bridge-2")
    feeder.join()
    result = settle(graph, ledger, settings, timeout=90)
    written = records_written(worker)
    print("\n" + result.line(f"bridge kill -9 after {at_kill} records committed, restarted")
          + f"; written {written} (re-read after the crash: {written - result.produced})")
    assert_exactly_once(result)


def test_broker_restart_midrun_keeps_queued_tasks(
        settings: Settings, services: DedicatedServices, processes: Processes,
        broker: redis.Redis, graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    _register(broker, client)
    processes.bridge(settings)
    worker = processes.worker(queue_for(client), settings, name="worker")
    ledger = Ledger()
    # The worker paused (still connected) until the broker is back: tasks queue up in the
    # broker whatever the machine's pace (a running worker's merged takes could keep the
    # queue below 5 for good on a loaded CI machine).
    worker.send_signal(signal.SIGSTOP)
    try:
        feeder = Feeder(settings, ledger, {client: 1}, rate=6000, total=30_000).start()
        wait_for(lambda: broker.llen(queue_for(client)) >= 5, timeout=60, interval=0.05,
                 what="tasks queued in the broker")
        queued = broker.llen(queue_for(client))
        restart(services.broker)
    finally:
        worker.send_signal(signal.SIGCONT)  # it reconnects to the restarted broker
    after = broker.llen(queue_for(client))
    print(f"\nbroker restarted with {queued} tasks queued; {after} queued after the restart")
    assert feeder.running, "the stream ended before the restart; the test proves nothing"
    feeder.join()
    result = settle(graph, ledger, settings, timeout=90)
    written = records_written(worker)
    print(result.line(f"broker Redis restart (SIGTERM, append-only) with {queued} tasks "
                      f"queued") + f"; written {written}")
    assert_exactly_once(result)


def test_graph_store_down_10s_midrun_retries_without_dead_letters(
        settings: Settings, services: DedicatedServices, processes: Processes,
        broker: redis.Redis, graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    _register(broker, client)
    processes.bridge(settings)
    worker = processes.worker(queue_for(client), settings, name="worker")
    ledger = Ledger()
    feeder = Feeder(settings, ledger, {client: 1}, rate=1000, total=14_000).start()
    wait_for(lambda: _events_in(graph, client) >= 1000, timeout=30,
             what="the first events in the graph")
    services.graph.stop()
    stopped = time.monotonic()
    wait_for(lambda: "graph unavailable" in worker.tail(50), timeout=15,
             what="the worker to notice the graph is gone")
    wait_for(lambda: time.monotonic() - stopped >= GRAPH_OUTAGE_S, timeout=GRAPH_OUTAGE_S + 1,
             what="the outage to last its time")
    services.graph.start()
    retries = worker.tail(100_000).count("graph unavailable")
    assert feeder.running, "the stream ended during the outage; the test proves nothing"
    feeder.join()
    result = settle(graph, ledger, settings, timeout=90)
    print("\n" + result.line(f"FalkorDB stopped for {GRAPH_OUTAGE_S:.0f} s "
                             f"({retries} task retries)"))
    assert_exactly_once(result)


def test_malformed_flood_all_dead_lettered_valid_ones_all_written(
        settings: Settings, processes: Processes, broker: redis.Redis, graph: GraphStore,
        client_ids: list[str]) -> None:
    client, stranger = client_ids[:2]
    # The flood is a third of the stream; its unkeyed part may be reported as a flooding
    # source by the guard, which never stops the bridge.
    settings = settings.model_copy(update={"max_value_bytes": MAX_VALUE_BYTES})
    _register(broker, client)
    processes.bridge(settings)
    processes.worker(queue_for(client), settings, name="worker")
    ledger = Ledger()
    topic = settings.topics_of("event")[0]
    bad = 0
    for _ in range(5):
        valid = ledger.event_records(client, 2000)
        malformed = malformed_records(client, stranger, 1200)
        # Interleaved: the bad ones sit between good ones in every partition.
        mixed = [record for pair in itertools.zip_longest(valid, malformed) for record in pair
                 if record is not None]
        produce(settings, topic, mixed)
        bad += len(malformed)
    # Records of the unregistered stranger are held for its registration
    # (KGCELERY_UNREGISTERED_GRACE_S), then dead-lettered: wait for all the dead letters.
    result = settle(graph, ledger, settings, timeout=90, dead_letters_expected=bad)
    per_reason = bad // len(MALFORMED_REASONS)
    print("\n" + result.line(f"{bad} malformed records of {len(MALFORMED_REASONS)} kinds "
                             f"among {ledger.produced} valid ones"))
    assert_exactly_once(result, dead_lettered=dict.fromkeys(MALFORMED_REASONS, per_reason))
    assert _events_in(graph, stranger) == 0, "nothing reaches an unregistered client's graph"


def test_heartbeat_stops_with_a_large_backlog_drained_before_retirement(
        settings: Settings, processes: Processes, broker: redis.Redis, graph: GraphStore,
        client_ids: list[str], tmp_path: Path) -> None:
    client = client_ids[0]
    settings = settings.model_copy(update={**CONTROL_INTERVALS,
                                           "state_dir": tmp_path / "state"})
    _register(broker, client)
    registry = Registry(broker)
    processes.bridge(settings)
    start_control_plane(processes, settings, reconciler=False)
    heartbeats = Heartbeats(settings, client).start()  # through Kafka, as agents send them
    try:
        # No worker for the client yet: everything it sends waits in its queue.
        ledger = Ledger()
        ledger.produce_events(settings, client, 20_000)
        wait_for(lambda: backlog_of(broker, client) >= 40, timeout=60, interval=0.1,
                 what="the client's backlog queued (40 tasks of 500)")
    finally:
        heartbeats.stop()
    wait_for(lambda: registry.require(client).state == STALE, timeout=30,
             what="the silent client marked stale")
    stale_backlog = backlog_of(broker, client)
    # Stale, well past ttl + drain grace, yet not retired: its backlog is not written.
    due = (time.time() + CONTROL_INTERVALS["heartbeat_ttl_s"]
           + 2 * CONTROL_INTERVALS["drain_grace_s"])
    wait_for(lambda: any(p >= due for p in registry.passes("expire")), timeout=60,
             what="an expiry pass after the time it would retire the client")
    record = registry.require(client)
    assert record.state == STALE, f"retired with {stale_backlog} tasks unwritten"
    # The scaling policy keeps a worker for a stale client with work (the reconciler
    # would start it); started here, it drains the backlog and then retirement comes.
    wait_for(lambda: (registry.require(client).desired_workers or 0) >= 1, timeout=30,
             what="beat asking for a worker to drain the stale client")
    processes.worker(queue_for(client), settings, name="drainer")
    wait_for(lambda: registry.require(client).state == RETIRED, timeout=90,
             what="the drained client retired")
    result = tally(graph, ledger, settings)  # at retirement, not after waiting
    print("\n" + result.line(f"heartbeats stopped with {stale_backlog} tasks queued; "
                             f"retired after the drain"))
    assert_exactly_once(result)
    assert backlog_of(broker, client) == 0
