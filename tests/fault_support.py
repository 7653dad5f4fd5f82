"""What the fault-injection tests and the soak share: services they may stop, the records
they produce, the faults they inject and the count of what reached the graphs.

Every check is by id: a fault test produces Kubernetes events with known uids, and at
the end every uid must be an Event node of its client's graph exactly once. Writes are
idempotent (MERGE on the id), so a redelivered batch is harmless; a missing id is a loss.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Producer

from kgcelery.broker.layout import UNACKED_KEY
from kgcelery.broker.redis_broker import in_flight, work_of
from kgcelery.clients import queue_for
from kgcelery.dlq import read_letters
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import EmbeddedStack, Service, free_port
from kgcelery.graph import GraphStore
from kgcelery.kafka import producer_config
from kgcelery.settings import Settings
from tests.control_support import events
from tests.helpers import produce, wait_for

#: Settings every fault run uses. A short visibility timeout brings back the task of a
#: killed worker soon (it must stay above the task time limit); retries and backoff are
#: sized so that a 10 s graph outage never exhausts them (30 retries of at least 1 s).
FAULT_SETTINGS: dict[str, Any] = {
    "visibility_timeout_s": 6, "task_time_limit_s": 5,
    "task_max_retries": 30, "task_retry_backoff_s": 0.5, "task_retry_backoff_max_s": 2.0,
}


# -- services a fault may stop ------------------------------------------------------------
class DedicatedServices:
    """A broker Redis and a FalkorDB of their own (append-only on, in ``state_dir``).

    The session's stack serves every other test: a fault that stops a service stops
    one of these. They are the embedded stack's own :class:`Service` objects, started
    without its Tansu. Each test gets its own database of the broker (beat acts on every
    client of a registry; a short visibility timeout restores every late message of a
    database), and its own graphs by its own client ids.
    """

    def __init__(self, base: Settings, state_dir: Path) -> None:
        own = base.model_copy(update={"state_dir": state_dir,
                                      "embedded_broker_port": free_port(),
                                      "embedded_graph_port": free_port()})
        stack = EmbeddedStack(own, create_topics=False)
        self.broker: Service = stack.broker
        self.graph: Service = stack.graph
        self._databases = itertools.cycle(range(16))

    def start(self) -> None:
        """Start whichever is not running (a failed test may have left one down)."""
        for service in (self.broker, self.graph):
            if not service.process.alive():
                service.start()

    def stop(self) -> None:
        for service in (self.broker, self.graph):
            service.stop()

    def settings_for(self, base: Settings, **overrides: Any) -> Settings:
        """``base`` pointed at these services, on a fresh broker database."""
        url = f"redis://127.0.0.1:{self.broker.port}/{next(self._databases)}"
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        return base.model_copy(update={
            "broker_url": url, "registry_url": url,
            "graph_uri": f"redis://127.0.0.1:{self.graph.port}", **overrides})


def restart(service: Service, *, down_for: float = 0.0) -> None:
    """Stop a service (SIGTERM: Redis writes its append-only file), wait, start it again."""
    service.stop()
    time.sleep(down_for)
    service.start()


# -- what is produced ---------------------------------------------------------------------
@dataclass
class Ledger:
    """What a run produced: event uids per client, and the dead letters it expects."""

    events: dict[str, set[str]] = field(default_factory=dict)
    rejects: Counter[str] = field(default_factory=Counter)
    _waves: itertools.count[int] = field(default_factory=itertools.count)

    def event_records(self, client: str, count: int) -> list[tuple[str, Any]]:
        """``count`` new events of a client as (key, value), noted as expected."""
        batch = events(f"{client}-w{next(self._waves)}", count)
        self.events.setdefault(client, set()).update(e["metadata"]["uid"] for e in batch)
        return [(f"{client}::event::{e['metadata']['uid']}", e) for e in batch]

    def produce_events(self, settings: Settings, client: str, count: int) -> int:
        return produce(settings, settings.topics_of("event")[0],
                       self.event_records(client, count))

    @property
    def produced(self) -> int:
        return sum(len(ids) for ids in self.events.values())


class Feeder:
    """Produces events for some clients at a steady rate in a thread, as agents would.

    :param weights: client -> share of the traffic (``{"a": 10, "b": 1}``: a is ten
        times louder).
    :param rate: events per second, in waves of ``wave`` events.
    :param total: stop after this many events (None: until :meth:`stop`).
    """

    def __init__(self, settings: Settings, ledger: Ledger, weights: dict[str, int], *,
                 rate: float, total: int | None = None, wave: int = 500) -> None:
        self.settings = settings
        self.ledger = ledger
        self.order = [c for c, weight in weights.items() for _ in range(weight)]
        self.rate = rate
        self.total = total
        self.wave = wave
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = Producer(producer_config(self.settings))
        topic = self.settings.topics_of("event")[0]
        started = time.monotonic()
        turn = itertools.cycle(self.order)
        try:
            while not self._stop.is_set() and (self.total is None or self.sent < self.total):
                size = self.wave if self.total is None else min(self.wave,
                                                                self.total - self.sent)
                with self._lock:
                    records = self.ledger.event_records(next(turn), size)
                for key, value in records:
                    producer.produce(topic, key=key.encode(), value=json.dumps(value).encode())
                if producer.flush(30):
                    raise RuntimeError("some records were not delivered to Kafka")
                self.sent += size
                # Steady rate: sleep until this wave's time has come.
                self._stop.wait(max(0.0, started + self.sent / self.rate - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the feeder did not finish"
        if self.error is not None:
            raise AssertionError(f"the feeder failed: {self.error!r}") from self.error


class Heartbeats:
    """A client's agent beating on ``cluster.heartbeat`` every ``every`` s, until stopped."""

    def __init__(self, settings: Settings, client: str, *, every: float = 0.5) -> None:
        self.settings = settings
        self.client = client
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)

    def start(self) -> Heartbeats:
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = Producer(producer_config(self.settings))
        topic = self.settings.topics_of("heartbeat")[0]
        while not self._stop.is_set():
            now = time.time()
            producer.produce(topic, key=f"{self.client}::heartbeat::{now:.3f}".encode(),
                             value=json.dumps({"timestamp": now}).encode())
            producer.flush(5)
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def backlog_of(broker: redis.Redis, client: str) -> int:
    """Tasks of a client queued or in flight (delivered, not acknowledged), read at once."""
    return work_of(broker, [client], default_records_per_task=1)[client].backlog


def records_written(*workers: ManagedProcess) -> int:
    """Records that the workers' tasks wrote, redeliveries included (from their logs)."""
    total = 0
    for worker in workers:
        try:
            text = worker.log_path.read_text(errors="replace")
        except OSError:
            continue
        total += sum(int(n) for n in _WRITTEN.findall(text))
    return total


_WRITTEN = re.compile(r"succeeded in [0-9.e-]+s: \{'written': (\d+)")


def malformed_records(client: str, stranger: str, count: int) -> list[tuple[Any, Any]]:
    """``count`` bad records in turn, each with the reason it must be dead-lettered for."""
    shapes: list[tuple[Any, Any]] = [
        (b"no-separator-at-all", {"reason": "BackOff"}),                    # bad-key
        (b"Not_A_Client!::event::x", {"reason": "BackOff"}),                # invalid-client-id
        (f"{stranger}::event::x".encode(), {"reason": "BackOff"}),          # unregistered
        (f"{client}::event::x".encode(), b"{not json"),                     # undecodable
        (f"{client}::event::x".encode(), {"client_id": stranger, "reason": "x"}),  # mismatch
        (f"{client}::event::x".encode(), b"x" * (MAX_VALUE_BYTES + 1)),     # oversized
    ]
    return [shapes[i % len(shapes)] for i in range(count)]


MALFORMED_REASONS = ("raw:bad-key", "raw:invalid-client-id", "raw:unregistered-client",
                     "raw:undecodable-json", "raw:client-id-mismatch", "raw:oversized")
MAX_VALUE_BYTES = 4096


# -- what reached the graphs ----------------------------------------------------------------
def event_ids(graph: GraphStore, client: str) -> list[str]:
    """The id of every Event node of a client's graph (repeats kept)."""
    try:
        return [row[0] for row in graph.run(client, "MATCH (e:Event) RETURN e.id")]
    except Exception:  # noqa: BLE001 - the graph does not exist yet
        return []


def _distinct_events(graph: GraphStore, client: str) -> int:
    try:
        return int(graph.run(client, "MATCH (e:Event) RETURN count(DISTINCT e.id)")[0][0])
    except Exception:  # noqa: BLE001 - the graph does not exist yet, or is down
        return 0


@dataclass(frozen=True)
class Tally:
    """What the graphs hold against what was produced, and what was dead-lettered."""

    produced: int
    found: int
    missing: int
    duplicates: int
    foreign: int
    dead_lettered: dict[str, int]
    #: A few of the missing ids, to start looking from.
    missing_sample: tuple[str, ...] = ()

    def line(self, injected: str) -> str:
        letters = sum(self.dead_lettered.values())
        reasons = f" {dict(sorted(self.dead_lettered.items()))}" if letters else ""
        return (f"injected: {injected}; produced {self.produced} events; found {self.found}, "
                f"missing {self.missing}, duplicates {self.duplicates}, "
                f"foreign {self.foreign}, dead-lettered {letters}{reasons}")


def dead_letters(settings: Settings) -> Counter[str]:
    """Dead letters of both topics by reason (``raw:<reason>`` / ``normalized:<reason>``)."""
    found: Counter[str] = Counter()
    for stage, topic in (("raw", settings.dlq_raw_topic),
                         ("normalized", settings.dlq_normalized_topic)):
        for letter in read_letters(settings, topic, timeout=30, idle=0.5):
            found[f"{stage}:{letter.reason}"] += 1
    return found


def settle(graph: GraphStore, ledger: Ledger, settings: Settings, *,
           timeout: float, dead_letters_expected: int = 0) -> Tally:
    """Wait (up to ``timeout``) until every produced event is in its graph and at least
    ``dead_letters_expected`` records are dead-lettered; count by id.

    A timeout is not raised here: the tally says what is missing, and the caller fails
    with it in the message.
    """
    def complete() -> bool:
        return all(_distinct_events(graph, client) >= len(ids)
                   for client, ids in ledger.events.items()) and (
            not dead_letters_expected
            or sum(dead_letters(settings).values()) >= dead_letters_expected)

    deadline = time.monotonic() + timeout
    while not complete() and time.monotonic() < deadline:
        time.sleep(0.25)
    return tally(graph, ledger, settings)


def tally(graph: GraphStore, ledger: Ledger, settings: Settings) -> Tally:
    found = missing = duplicates = foreign = 0
    sample: list[str] = []
    for client, expected in ledger.events.items():
        ids = event_ids(graph, client)
        distinct = set(ids)
        found += len(distinct & expected)
        missing += len(expected - distinct)
        sample += sorted(expected - distinct)[:5]
        duplicates += len(ids) - len(distinct)
        foreign += len(distinct - expected)
    return Tally(ledger.produced, found, missing, duplicates, foreign,
                 dict(dead_letters(settings)), tuple(sample))


def assert_exactly_once(result: Tally, *, dead_lettered: dict[str, int] | None = None) -> None:
    """Every record once in its graph, nothing else there, only the expected dead letters."""
    assert result.missing == 0, f"{result.missing} records lost: {result}"
    assert result.duplicates == 0 and result.foreign == 0, f"not exactly once: {result}"
    assert result.dead_lettered == (dead_lettered or {}), \
        f"dead letters {result.dead_lettered}, expected {dead_lettered or {}}"


# -- killing workers ------------------------------------------------------------------------
#: How long after a task shows in flight its pool child is killed, attempt by attempt:
#: a 2000-record batch runs ~150 ms, and the child starts it some milliseconds after
#: the worker took it (more on a busy machine, hence the later tries).
MID_TASK_DELAYS_S = (0.03, 0.06, 0.1, 0.02, 0.15, 0.05, 0.2, 0.08)

def pool_children(worker: ManagedProcess) -> list[int]:
    """The pids of a Celery worker's pool processes."""
    assert worker.pid is not None
    text = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text()
    return [int(pid) for pid in text.split()]


def tasks_in_flight(broker: redis.Redis, client: str) -> set[str]:
    """The ids of a client's tasks that workers hold unacknowledged (a dead worker's too,
    until the visibility timeout)."""
    held = set()
    for raw in broker.hvals(UNACKED_KEY):
        message, _exchange, routing_key = json.loads(raw)
        if routing_key == queue_for(client):
            held.add(str(message["headers"]["id"]))
    return held


def lost_reports(worker: ManagedProcess) -> int:
    """How often the worker said that a task's pool process died under it."""
    try:
        return worker.log_path.read_text(errors="replace").count("WorkerLostError")
    except OSError:
        return 0


def _reported_lost(worker: ManagedProcess, before: int) -> bool:
    # The main process may notice a child killed mid-task only seconds later (4 s seen).
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        if lost_reports(worker) > before:
            return True
        time.sleep(0.1)
    return False


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def running_task(children: list[int], *, ticks: int = 2, timeout: float = 2.0) -> bool:
    """Wait until one of a worker's pool children burns CPU (``ticks`` of 10 ms): it runs
    a task. An idle child blocks on its pipe and burns none; a task takes ~150 ms."""
    start = {pid: _cpu_ticks(pid) for pid in children}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(_cpu_ticks(pid) - base >= ticks for pid, base in start.items()):
            return True
        time.sleep(0.005)
    return False


def kill_running_child(worker: ManagedProcess, broker: redis.Redis, client: str, *,
                       delay: float, previous: set[str]) -> str:
    """``kill -9`` a worker's pool children while one runs a task; that task's id.

    With prefetch 1 and late acks the worker takes a task only once the one before is
    acknowledged: so once a *new* task is in flight, the CPU its child burns from then
    on is that task's (:func:`running_task`), and the kill comes ``delay / 2`` after.

    :param previous: the tasks held before more work was queued (read before queueing
        it, so that the task to wait for is sure to come).
    """
    taken = wait_for(lambda: tasks_in_flight(broker, client) - previous, timeout=30,
                     interval=0.005, what="the next task taken")
    task_id = min(taken)
    children = pool_children(worker)
    running_task(children)
    time.sleep(delay / 2)
    # The one held now: the task seen first may have finished meanwhile (it may have run
    # for a while before it was seen, while more work was being queued).
    task_id = min(tasks_in_flight(broker, client) - previous or {task_id})
    for child in children:
        with contextlib.suppress(ProcessLookupError):  # gone since it was listed
            os.kill(child, signal.SIGKILL)
    return task_id


def kill_mid_task(worker: ManagedProcess, broker: redis.Redis, client: str, *,
                  whole_worker: bool, feed: Callable[[], object] | None = None) -> str:
    """``kill -9`` a worker's pool child while it runs a task (or the whole worker, main
    process and child); the id of the task that was in flight.

    The main process takes a message a few milliseconds before its child starts it; a
    child killed in between loses nothing and proves nothing. So the kill comes once the
    child burns CPU (:func:`running_task`), and a child kill is tried again (``feed``
    queues more work first) until the worker reports a ``WorkerLostError``.
    """
    for delay in MID_TASK_DELAYS_S:
        previous = tasks_in_flight(broker, client)
        if feed is not None:
            feed()
        if whole_worker:
            # In the unacked hash, the task is lost with the main process wherever it was.
            wait_for(lambda: in_flight(broker).get(client, 0) >= 1, timeout=30,
                     interval=0.01, what="a task in flight")
            assert worker.pid is not None
            os.killpg(worker.pid, signal.SIGKILL)  # the main process and its pool child
            worker.kill()
            held = tasks_in_flight(broker, client)  # what it held when it died
            assert held, "the dead worker held no task"
            return min(held - previous or held)
        before = lost_reports(worker)
        task_id = kill_running_child(worker, broker, client, delay=delay, previous=previous)
        if _reported_lost(worker, before):
            return task_id
    raise AssertionError(f"no kill landed on a running task in {len(MID_TASK_DELAYS_S)} "
                         "attempts")
