"""The broker contract: everything kgcelery knows of kombu's Redis layout
(:mod:`kgcelery.broker`), checked against a real Redis and the installed kombu.

``make test`` runs this file twice: in the project's venv (the newest kombu the pin
admits) and in ``.venv-kombu-oldest`` (the oldest: ``make broker-contract``). The pin in
pyproject.toml admits only kombu minors this suite passed on.

The transport's reason to exist: a message leaves its queue and enters kombu's
``unacked`` hash in one step, so nothing is only in a worker's socket buffer. The rest
must be kombu's behaviour unchanged: acks, restores, several queues.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from kgcelery.app import create_app
from kgcelery.bridge.batcher import Batch
from kgcelery.broker.base import QueueWork
from kgcelery.broker.envelope import task_body
from kgcelery.broker.kombu_broker import KombuBroker
from kgcelery.broker.layout import (
    IN_FLIGHT_KEY,
    PRIORITY_SEPARATOR,
    PRIORITY_STEPS,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    priority_lists,
)
from kgcelery.broker.merge import MERGED_ORIGIN, merge, split
from kgcelery.broker.redis_broker import RedisBroker, in_flight, records_per_task
from kgcelery.broker.transport import TAKE, Transport
from kgcelery.embedded.binaries import redis_server_binary
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port, port_in_use
from kgcelery.errors import BrokerUnavailableError
from kgcelery.kinds import MERGED_TASK, MULTI_CLIENT_TASK
from kgcelery.settings import Settings
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.broker_contract]


def _take(client: redis.Redis, *queues: str) -> list:
    return client.eval(TAKE, 3 + len(queues), UNACKED_KEY, UNACKED_INDEX_KEY, IN_FLIGHT_KEY,
                       *queues, *(["1"] * len(queues)))


def test_kombus_layout_is_what_kgcelery_assumes() -> None:
    channel = kombu_redis.Channel
    assert (channel.unacked_key, channel.unacked_index_key) == (UNACKED_KEY,
                                                                UNACKED_INDEX_KEY)
    assert channel.sep == PRIORITY_SEPARATOR
    assert tuple(channel.priority_steps[1:]) == PRIORITY_STEPS
    # The private methods the transport overrides are still there, with their shape.
    for name in ("_brpop_start", "_brpop_read", "_get", "_q_for_pri",
                 "_maybe_update_queues_expire", "_flush_brpop_reauth"):
        assert callable(getattr(channel, name, None)), name
    assert callable(kombu_redis.QoS._remove_from_indices)
    assert callable(kombu_redis.QoS.append)


@pytest.fixture
def broker_url(stack_settings: Settings) -> Iterator[str]:
    url = stack_settings.broker_url.rsplit("/", 1)[0] + "/15"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    yield url
    with redis.Redis.from_url(url) as client:
        client.flushdb()


def _publish(url: str, queue: str, bodies: list[dict[str, int]]) -> None:
    """Published by plain kombu (its own Redis transport), as Celery clients do."""
    with Connection(url) as conn:
        producer = conn.Producer()
        exchange = Exchange(queue, type="direct")
        for body in bodies:
            producer.publish(body, exchange=exchange, routing_key=queue,
                             declare=[Queue(queue, exchange, routing_key=queue)],
                             serializer="json")


def test_priority_lists_are_kombus(broker_url: str) -> None:
    with Connection(broker_url) as conn:
        channel = conn.default_channel
        assert [channel._q_for_pri("q", p) for p in channel.priority_steps] == \
            priority_lists("q")


def test_take_moves_a_message_from_its_queue_into_unacked_in_one_step(
        broker_url: str) -> None:
    # A task's size: the script finds the properties in the tail, after a large body.
    _publish(broker_url, "client.t1", [{"n": 1, "records": "x" * 300_000}])
    client = redis.Redis.from_url(broker_url)
    raw = client.lindex("client.t1", 0)
    assert raw is not None

    queue, message, tag, ready = _take(client, "client.t1")
    assert (queue, message) == (b"client.t1", raw)
    assert client.llen("client.t1") == 0 and ready == b""
    # Stored as kombu's QoS.append stores it, so kombu's ack and restore work unchanged.
    stored = json.loads(client.hget("unacked", tag))
    assert stored == [json.loads(raw), "client.t1", "client.t1"]
    assert client.zscore("unacked_index", tag) == pytest.approx(time.time(), abs=5)
    assert client.hget(IN_FLIGHT_KEY, tag) == b"client.t1"
    assert _take(client, "client.t1") is None


def test_consumed_message_is_unacked_until_acked_and_restored_if_never_acked(
        broker_url: str) -> None:
    _publish(broker_url, "client.t2", [{"n": 1}, {"n": 2}])
    client = redis.Redis.from_url(broker_url)
    seen: list[tuple[int, bool]] = []
    with Connection(broker_url, transport=Transport) as conn:
        def on_message(body: dict[str, int], message: object) -> None:
            tag = message.delivery_tag  # type: ignore[attr-defined]
            seen.append((body["n"], client.hexists("unacked", tag)))
            if body["n"] == 1:
                message.ack()  # type: ignore[attr-defined]

        with conn.Consumer(Queue("client.t2"), callbacks=[on_message],
                           accept=["json"]) as consumer:
            consumer.qos(prefetch_count=1)
            conn.drain_events(timeout=5)
            conn.drain_events(timeout=5)
            assert seen == [(1, True), (2, True)]
            assert client.hlen("unacked") == 1, "the acked message left unacked"
            assert client.hlen(IN_FLIGHT_KEY) == 1, "the ack left the in-flight index"
            # The second is never acked: kombu's restore puts it back in its queue.
            conn.default_channel.qos.restore_visible(start=0)
    # Closing the channel restores what it still held, as kombu's transport does.
    assert client.llen("client.t2") == 1
    assert client.hlen(IN_FLIGHT_KEY) == 0, "the restore left the in-flight index"
    assert json.loads(client.lindex("client.t2", 0))["body"]


def test_a_worker_of_several_queues_does_not_wait_on_the_empty_one(broker_url: str) -> None:
    # A fleet worker consumes fleet.idle (always empty) and its clients' queues. Waiting
    # the poll timeout (1 s) on the empty queue between two messages would take ~20 s.
    _publish(broker_url, "client.busy", [{"n": n} for n in range(20)])
    got: list[int] = []
    started = time.monotonic()
    with Connection(broker_url, transport=Transport) as conn:
        def on_message(body: dict[str, int], message: object) -> None:
            got.append(body["n"])
            message.ack()  # type: ignore[attr-defined]

        with conn.Consumer([Queue("fleet.idle"), Queue("client.busy")],
                           callbacks=[on_message], accept=["json"]) as consumer:
            consumer.qos(prefetch_count=1)
            while len(got) < 20 and time.monotonic() - started < 30:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=2)
    assert sorted(got) == list(range(20))
    assert time.monotonic() - started < 8, "waited on the empty queue between messages"


def test_a_task_published_with_a_priority_is_still_taken(broker_url: str) -> None:
    # Takes name the priority-0 lists only, and kombu's priority lists once a second: a
    # task someone published with a priority (kgcelery never does) is not left behind,
    # also when it comes while the worker is already taking.
    client = redis.Redis.from_url(broker_url)
    got: list[int] = []
    with Connection(broker_url, transport=Transport) as conn:
        def on_message(body: dict[str, int], message: object) -> None:
            got.append(body["n"])
            message.ack()  # type: ignore[attr-defined]

        queue = Queue("client.urgent", Exchange("client.urgent", type="direct"),
                      routing_key="client.urgent")
        with conn.Consumer([Queue("fleet.idle"), queue], callbacks=[on_message],
                           accept=["json"]) as consumer:
            consumer.qos(prefetch_count=1)
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=1)  # a few takes of nothing first
            with Connection(broker_url) as publisher:
                publisher.Producer().publish({"n": 9}, exchange=queue.exchange,
                                             routing_key="client.urgent", serializer="json",
                                             priority=9)  # into client.urgent\x06\x169
            deadline = time.monotonic() + 15
            while not got and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=2)
    assert got == [9]
    assert client.hlen("unacked") == 0


def test_messages_consumed_without_acks_are_not_recorded(broker_url: str) -> None:
    # Celery's reply queues (inspect, mingle) are consumed with no_ack: recording their
    # messages would restore them, as if never delivered, after the visibility timeout.
    _publish(broker_url, "replies", [{"n": 1}])
    client = redis.Redis.from_url(broker_url)
    got: list[int] = []
    with Connection(broker_url, transport=Transport) as conn, \
            conn.Consumer(Queue("replies"), callbacks=[lambda body, _m: got.append(body["n"])],
                          accept=["json"], no_ack=True):
        conn.drain_events(timeout=5)
    assert got == [1]
    assert client.hlen("unacked") == 0 and client.llen("replies") == 0


def test_the_app_selects_it_and_keeps_the_redis_url(stack_settings: Settings) -> None:
    from kgcelery.app import create_app

    app = create_app(stack_settings)
    with app.connection() as conn:
        assert isinstance(conn.transport, Transport)
        # Flower's Broker page and TLS for rediss:// read the scheme back.
        assert conn.as_uri().startswith("redis://")


def test_the_bridge_envelope_is_recorded_and_its_size_read_from_the_tail(
        broker_url: str) -> None:
    # A real-sized task as the bridge writes it: both scripts look only at its tail.
    record = b'{"reason":"BackOff","message":"' + b"m" * 1000 + b'"}'
    batch = Batch("t-five", "event", 0.0, [record] * 500,
                  [["raw.k8s.events", 0, n, f"event::{n}", 0] for n in range(500)])
    client = redis.Redis.from_url(broker_url)
    RedisBroker(create_app_for(broker_url), broker_url).publish([batch])
    assert records_per_task(client, "t-five", default=1) == 500
    _queue, _message, tag, _ready = _take(client, "client.t-five")
    assert tag and json.loads(client.hget("unacked", tag))[2] == "client.t-five"


#: Fields that differ by design between two publications of the same task.
_PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag"}


def _strip(envelope: dict) -> dict:
    envelope = json.loads(json.dumps(envelope))
    for part in (envelope["headers"], envelope["properties"]):
        for key in _PER_MESSAGE & set(part):
            part[key] = "*"
    return envelope


def test_redis_envelope_matches_kombus(stack_settings: Settings, broker_redis: redis.Redis,
                                       client_ids: list[str]) -> None:
    client = client_ids[0]
    records = [b'{"reason":"BackOff","n":1}', b'{"emoji":"\\u2603","nested":{"a":[1,2]}}']
    batch = Batch(client, "event", 0.0, records=records,
                  origins=[["raw.k8s.events", 0, 7, "event::a"], ["raw.k8s.events", 1, 9, "b"]])
    app = create_app(stack_settings)
    KombuBroker(app).publish([batch])
    fast = RedisBroker(app, stack_settings.broker_url)
    fast.publish([batch])
    fast.close()
    stored = broker_redis.lrange(f"client.{client}", 0, -1)
    kombus, ours = [json.loads(raw) for raw in reversed(stored)]
    assert _strip(ours) == _strip(kombus)
    body = json.loads(base64.b64decode(ours["body"]))
    assert body[0] == [client, [json.loads(r) for r in records], batch.origins]
    assert body[1] == {} and set(body[2]) == {"callbacks", "errbacks", "chain", "chord"}
    # The queue is bound, so Celery's own publishers (task retries) route to it.
    assert broker_redis.exists(f"_kombu.binding.client.{client}")


def test_task_body_splices_records_verbatim() -> None:
    body = task_body("af-9", [b'{"a":1}', b"null"], [["t", 0, 1, "e"], ["t", 0, 2, "f"]])
    assert json.loads(body) == [["af-9", [{"a": 1}, None], [["t", 0, 1, "e"], ["t", 0, 2, "f"]]],
                                {}, {"callbacks": None, "errbacks": None, "chain": None,
                                     "chord": None}]


def create_app_for(broker_url: str):  # type: ignore[no-untyped-def]
    return create_app(Settings(broker_url=broker_url))


def test_in_flight_is_counted_from_the_index_without_reading_bodies(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url)
    _publish(broker_url, "client.t-a", [{"n": n} for n in range(3)])
    _publish(broker_url, "client.t-b", [{"n": 1}])
    tags = [_take(client, "client.t-a")[2] for _ in range(2)] + [_take(client, "client.t-b")[2]]
    assert in_flight(client) == {"t-a": 2, "t-b": 1}
    # The index decides, not the stored message: a body the tail search could not read
    # is still counted under the queue it was taken from.
    client.hset(UNACKED_KEY, tags[0], b"x" * 1000)
    assert in_flight(client) == {"t-a": 2, "t-b": 1}
    # Something kombu recorded by itself (no index entry) is read the old way.
    client.hset(UNACKED_KEY, "kombus-own", json.dumps([{"n": 9}, "client.t-c", "client.t-c"]))
    assert in_flight(client) == {"t-a": 2, "t-b": 1, "t-c": 1}
    # Acked elsewhere (gone from unacked): counted no more, and pruned from the index.
    client.hdel(UNACKED_KEY, tags[2], "kombus-own")
    assert in_flight(client) == {"t-a": 2}
    assert client.hexists(IN_FLIGHT_KEY, tags[2]) == 0


@pytest.mark.parametrize("backend", ["redis", "kombu"])
def test_an_unreachable_broker_is_one_error_whatever_the_library_raised(backend: str) -> None:
    # A dead port, and a queue never declared: kombu raises its OperationalError from the
    # declaration, redis-py its ConnectionError from the write; callers see one error.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    app = create_app_for(url)
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_max_retries = 0
    broker = RedisBroker(app, url) if backend == "redis" else KombuBroker(app)
    batch = Batch("t-gone", "event", 0.0, [b"{}"], [["raw.k8s.events", 0, 0, "event::a"]])
    with pytest.raises(BrokerUnavailableError, match="cannot publish"):
        broker.publish([batch])


def test_a_full_redis_is_drained_by_the_workers_not_fatal_to_them(
        stack_settings: Settings, tmp_path: Path) -> None:
    # maxmemory reached under noeviction: the bridge's writes are refused (it pauses), and
    # so is the workers' BLMOVE wait. Taking must go on, or nothing ever makes room.
    port = free_port()
    server = ManagedProcess("full-redis", [
        str(redis_server_binary(stack_settings)), "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--dir", str(tmp_path)], run_dir=tmp_path / "run", log_dir=tmp_path)
    server.start()
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        wait_for(lambda: port_in_use(port), timeout=20, what="the test's Redis")
        _publish(url, "client.t-full", [{"n": n, "pad": "x" * 50_000} for n in range(30)])
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1mb")
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            client.lpush("client.t-full", "refused")  # full, as the bridge would find it
        got: list[int] = []
        with Connection(url, transport=Transport) as conn:
            def on_message(body: dict[str, int], message: object) -> None:
                got.append(body["n"])
                message.ack()  # type: ignore[attr-defined]

            with conn.Consumer([Queue("fleet.idle"), Queue("client.t-full")],
                               callbacks=[on_message], accept=["json"]) as consumer:
                consumer.qos(prefetch_count=1)
                deadline = time.monotonic() + 60
                while len(got) < 30 and time.monotonic() < deadline:
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=2)
        assert sorted(got) == list(range(30))
        assert client.hlen("unacked") == 0 and client.hlen(IN_FLIGHT_KEY) == 0
    finally:
        server.stop()


def test_work_of_many_clients_counts_each_ones_queue_flight_and_records(
        broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url)
    broker = RedisBroker(create_app_for(broker_url), broker_url)
    origins = [["raw.k8s.events", 0, n, f"event::{n}", 0] for n in range(500)]
    broker.publish([Batch("w-busy", "event", 0.0, [b"{}"] * 500, origins)] * 3)
    broker.publish([Batch("w-flying", "log", 0.0, [b"{}"] * 40, origins[:40])])
    _take(client, "client.w-flying")
    client.lpush(priority_lists("client.w-urgent")[2], "{}")  # a priority list, no header
    work = broker.work_of(["w-busy", "w-flying", "w-idle", "w-urgent"],
                          default_records_per_task=100)
    assert work["w-busy"] == QueueWork(queued=3, in_flight=0, records=1500)
    assert work["w-flying"] == QueueWork(queued=0, in_flight=1, records=100)
    assert work["w-idle"] == QueueWork(queued=0, in_flight=0, records=0)
    assert work["w-urgent"] == QueueWork(queued=1, in_flight=0, records=100)
    assert broker.work_of([], default_records_per_task=1) == {}
    # The bridge's view: what waits per client, all priorities, read in one round trip.
    assert broker.queue_depths(["w-busy", "w-flying", "w-idle", "w-urgent"]) == {
        "w-busy": 3, "w-flying": 0, "w-idle": 0, "w-urgent": 1}
    assert broker.queue_depths([]) == {}


#: Puts a taken message back at the head of its queue and forgets it was taken, in one
#: step (as kombu's restore does): the task is always somewhere, queued or in flight.
_PUT_BACK = """
redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1]); redis.call('RPUSH', KEYS[4], ARGV[2])
"""


def test_work_of_sees_a_task_moving_between_queue_and_flight(broker_url: str) -> None:
    # Beat retires a draining client when it sees no task: read apart, a task taken
    # between the reads of the queues and of the tasks in flight was in neither, and a
    # client was retired while its last task ran (seen in CI).
    client = redis.Redis.from_url(broker_url)
    broker = RedisBroker(create_app_for(broker_url), broker_url)
    broker.publish([Batch("w-moving", "event", 0.0, [b"{}"], [["t", 0, 0, "event::0", 0]])])
    stop = threading.Event()

    def move() -> None:
        mover = redis.Redis.from_url(broker_url)
        while not stop.is_set():
            _queue, message, tag, _ready = _take(mover, "client.w-moving")
            mover.eval(_PUT_BACK, 4, UNACKED_KEY, UNACKED_INDEX_KEY, IN_FLIGHT_KEY,
                       "client.w-moving", tag, message)

    thread = threading.Thread(target=move, daemon=True)
    thread.start()
    try:
        seen = [broker.work_of(["w-moving"], default_records_per_task=1)["w-moving"].backlog
                for _ in range(1500)]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert set(seen) == {1}, f"the moving task was missed {seen.count(0)} times"
    assert client.llen("client.w-moving") == 1


# -- merged takes (kgcelery.broker.merge) ------------------------------------------------
def _bridge_batches(broker_url: str, client_id: str, sizes: list[tuple[str, int]]) -> None:
    """One bridge task per (kind, size), records numbered in publication order."""
    broker = RedisBroker(create_app_for(broker_url), broker_url)
    n = 0
    for kind, size in sizes:
        records = [json.dumps({"n": n + i}).encode() for i in range(size)]
        origins = [[f"raw.{kind}", 0, n + i, f"{kind}::{n + i}", 0] for i in range(size)]
        broker.publish([Batch(client_id, kind, 0.0, records, origins)])
        n += size
    broker.close()


def _consume_all(broker_url: str, queue: str | list[str], *, max_records: int, expect: int,
                 ack: bool = True, max_clients: int = 1,
                 seen: Callable[[], object] | None = None) -> list[tuple[dict, list]]:
    """(headers, body) of what a worker's transport delivers from ``queue`` (or several),
    merging up to ``max_records`` of up to ``max_clients`` clients; never acked ones are
    restored to their queues at the end. ``seen`` is called with each message held."""
    got: list[tuple[dict, list]] = []
    options = {"merge_max_records": max_records, "merge_max_bytes": 1_000_000,
               "merge_max_clients": max_clients}
    queues = [queue] if isinstance(queue, str) else queue
    with Connection(broker_url, transport=Transport, transport_options=options) as conn:
        def on_message(body: list, message: object) -> None:
            got.append((message.headers, body))  # type: ignore[attr-defined]
            if seen is not None:
                got[-1][0]["seen"] = seen()
            if ack:
                message.ack()  # type: ignore[attr-defined]

        with conn.Consumer([Queue(q) for q in queues], callbacks=[on_message],
                           accept=["json"]) as consumer:
            consumer.qos(prefetch_count=1)
            deadline = time.monotonic() + 10
            while len(got) < expect and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=1)
            if not ack:
                conn.default_channel.qos.restore_visible(start=0)
    return got


def test_a_backlog_of_small_bridge_tasks_is_taken_as_one_merged_task(
        broker_url: str) -> None:
    _bridge_batches(broker_url, "m-one", [("log", 2), ("event", 1), ("log", 3),
                                          ("resource", 1), ("event", 2)])
    client = redis.Redis.from_url(broker_url)
    [(headers, body)] = _consume_all(broker_url, "client.m-one", max_records=500, expect=1)
    assert headers["task"] == MERGED_TASK and headers["origin"] == MERGED_ORIGIN
    assert headers["argsrepr"] == "('m-one', <9 merged records>)"
    (client_id, batches), kwargs, _embed = body
    assert client_id == "m-one" and kwargs == {}
    # One batch per kind, each kind's records in the order they were published.
    by_kind = {kind: ([r["n"] for r in records], [o[2] for o in origins])
               for kind, records, origins in batches}
    assert by_kind == {"log": ([0, 1, 3, 4, 5], [0, 1, 3, 4, 5]),
                       "event": ([2, 7, 8], [2, 7, 8]), "resource": ([6], [6])}
    assert [kind for kind, _r, _o in batches] == ["log", "event", "resource"]
    # Acked: nothing left anywhere (the merged tag replaced the five in unacked).
    assert client.llen("client.m-one") == 0
    assert client.hlen(UNACKED_KEY) == 0 and client.zcard(UNACKED_INDEX_KEY) == 0
    assert client.hlen(IN_FLIGHT_KEY) == 0


def test_a_merged_take_holds_at_most_the_records_given(broker_url: str) -> None:
    _bridge_batches(broker_url, "m-cap", [("log", 2)] * 6)
    got = _consume_all(broker_url, "client.m-cap", max_records=5, expect=3)
    sizes = [sum(len(records) for _k, records, _o in body[0][1]) for _h, body in got]
    assert sizes == [4, 4, 4]
    # 0 or 1: a message per take, as the bridge published them.
    _bridge_batches(broker_url, "m-off", [("log", 2)] * 3)
    got = _consume_all(broker_url, "client.m-off", max_records=0, expect=3)
    assert [h["task"] for h, _b in got] == ["kgcelery.ingest_logs"] * 3


def test_a_retried_or_foreign_task_is_never_merged(broker_url: str) -> None:
    _bridge_batches(broker_url, "m-mix", [("log", 1)])
    _publish(broker_url, "client.m-mix", [{"n": 99}])  # not the bridge's: kombu's own
    _bridge_batches(broker_url, "m-mix", [("log", 1), ("log", 1)])
    got = _consume_all(broker_url, "client.m-mix", max_records=500, expect=3)
    # The merge stops at the foreign message; it is delivered alone, in its turn.
    assert [h.get("task") if h else None for h, _b in got] == [
        "kgcelery.ingest_logs", None, MERGED_TASK]


def test_a_merged_task_never_acked_is_restored_whole_and_not_merged_again(
        broker_url: str) -> None:
    _bridge_batches(broker_url, "m-lost", [("log", 1)] * 3)
    [(headers, _body)] = _consume_all(broker_url, "client.m-lost", max_records=500,
                                      expect=1, ack=False)
    client = redis.Redis.from_url(broker_url)
    assert client.llen("client.m-lost") == 1, "restored as the one merged message"
    _bridge_batches(broker_url, "m-lost", [("log", 1)])
    got = _consume_all(broker_url, "client.m-lost", max_records=500, expect=2)
    assert [h["task"] for h, _b in got] == [MERGED_TASK, "kgcelery.ingest_logs"]
    assert got[0][0]["id"] == headers["id"], "the same task again: same batches, same ids"


def _message(task: str, client_id: str, n: int = 1) -> dict:
    body = task_body(client_id, [json.dumps({"n": n}).encode()], [["t", 0, n, "e", 0]])
    queue = f"client.{client_id}"
    return {"body": base64.b64encode(body).decode(), "headers": {"task": task},
            "properties": {"body_encoding": "base64", "delivery_tag": "x",
                           "delivery_info": {"exchange": queue, "routing_key": queue}}}


def test_merge_refuses_what_is_not_the_bridges_ingest_tasks() -> None:
    assert merge([_message("kgcelery.ingest_logs", "a"),
                  _message("kgcelery.ingest_events", "a")])["headers"]["task"] == MERGED_TASK
    assert merge([_message("kgcelery.ingest_logs", "a"), _message("other.task", "a")]) is None
    broken = _message("kgcelery.ingest_logs", "a") | {"body": "not base64 json"}
    assert merge([_message("kgcelery.ingest_logs", "a"), broken]) is None


def test_several_clients_merge_into_one_task_and_split_back_one_task_each() -> None:
    merged = merge([_message("kgcelery.ingest_logs", "m-a", 1),
                    _message("kgcelery.ingest_events", "m-b", 2),
                    _message("kgcelery.ingest_logs", "m-a", 3)])
    assert merged is not None and merged["headers"]["task"] == MULTI_CLIENT_TASK
    assert merged["headers"]["argsrepr"] == "(<2 clients>, <3 merged records>)"
    [parts], _kwargs, _embed = json.loads(base64.b64decode(merged["body"]))
    assert [(client, [(kind, [r["n"] for r in records]) for kind, records, _o in batches])
            for client, batches in parts] == [("m-a", [("log", [1, 3])]),
                                               ("m-b", [("event", [2])])]
    back = split(merged)
    assert back is not None and [queue for queue, _m in back] == ["client.m-a", "client.m-b"]
    for (queue, message), (client, batches) in zip(back, parts, strict=True):
        assert message["headers"]["task"] == MERGED_TASK
        assert message["properties"]["delivery_info"]["routing_key"] == queue
        assert json.loads(base64.b64decode(message["body"]))[0] == [client, batches]
    # A client id that is not valid keeps the task's own queue (the task dead-letters it).
    odd = merge([_message("kgcelery.ingest_logs", "m-a"), _message("kgcelery.ingest_logs", "B")])
    assert [queue for queue, _m in split(odd) or []] == ["client.m-a", "client.m-a"]
    # A task of one client is restored as it is.
    assert split(merge([_message("kgcelery.ingest_logs", "a")] * 2)) is None


# -- takes of several clients (a fleet worker's queues) ----------------------------------
def test_a_fleet_take_carries_the_heads_of_several_client_queues(broker_url: str) -> None:
    _bridge_batches(broker_url, "f-a", [("log", 2), ("event", 1)])
    _bridge_batches(broker_url, "f-b", [("event", 3)])
    _bridge_batches(broker_url, "f-c", [("resource", 1)])
    client = redis.Redis.from_url(broker_url)
    queues = ["client.f-a", "client.f-b", "client.f-c"]
    [(headers, body)] = _consume_all(broker_url, queues, max_records=500, expect=1,
                                     max_clients=16, seen=lambda: in_flight(client))
    assert headers["task"] == MULTI_CLIENT_TASK and headers["origin"] == MERGED_ORIGIN
    assert headers["argsrepr"] == "(<3 clients>, <7 merged records>)"
    # While it ran, it was in flight for each of its clients (the control plane's count).
    assert headers["seen"] == {"f-a": 1, "f-b": 1, "f-c": 1}
    [parts], _kwargs, _embed = body
    assert [(c, [(kind, len(records)) for kind, records, _o in batches])
            for c, batches in parts] == [("f-a", [("log", 2), ("event", 1)]),
                                         ("f-b", [("event", 3)]), ("f-c", [("resource", 1)])]
    assert all(client.llen(q) == 0 for q in queues)
    assert client.hlen(UNACKED_KEY) == 0 and client.hlen(IN_FLIGHT_KEY) == 0


def test_a_fleet_take_keeps_to_its_clients_and_records_and_skips_a_head_too_large(
        broker_url: str) -> None:
    _bridge_batches(broker_url, "g-a", [("log", 2)])
    _bridge_batches(broker_url, "g-b", [("log", 10)])  # larger than what is left
    _bridge_batches(broker_url, "g-c", [("log", 1)])
    _bridge_batches(broker_url, "g-d", [("log", 1)])
    got = _consume_all(broker_url, ["client.g-a", "client.g-b", "client.g-c", "client.g-d"],
                       max_records=5, expect=3, max_clients=2)
    carried = [[c for c, _b in body[0][0]] if h["task"] == MULTI_CLIENT_TASK
               else [body[0][0]] for h, body in got]
    # a and c (b's head does not fit), then b alone, then d: two clients at most.
    assert sorted(map(sorted, carried)) == [["g-a", "g-c"], ["g-b"], ["g-d"]]
    # With one client per take (the default of a per-client worker's single queue too).
    _bridge_batches(broker_url, "h-a", [("log", 1)])
    _bridge_batches(broker_url, "h-b", [("log", 1)])
    got = _consume_all(broker_url, ["client.h-a", "client.h-b"], max_records=500,
                       expect=2, max_clients=1)
    assert [h["task"] for h, _b in got] == ["kgcelery.ingest_logs"] * 2


def test_a_fleet_take_never_acked_goes_back_one_task_per_client_to_its_own_queue(
        broker_url: str) -> None:
    _bridge_batches(broker_url, "r-a", [("log", 1), ("log", 1)])
    _bridge_batches(broker_url, "r-b", [("event", 2)])
    queues = ["client.r-a", "client.r-b"]
    [(headers, _body)] = _consume_all(broker_url, queues, max_records=500, expect=1,
                                      max_clients=16, ack=False)
    assert headers["task"] == MULTI_CLIENT_TASK
    client = redis.Redis.from_url(broker_url)
    assert [client.llen(q) for q in queues] == [1, 1]
    assert client.hlen(UNACKED_KEY) == 0 and client.hlen(IN_FLIGHT_KEY) == 0
    for queue, client_id, records in (("client.r-a", "r-a", 2), ("client.r-b", "r-b", 2)):
        [(again, body)] = _consume_all(broker_url, queue, max_records=500, expect=1)
        assert again["task"] == MERGED_TASK and again["redelivered"] is True
        assert body[0][0] == client_id
        assert sum(len(records) for _k, records, _o in body[0][1]) == records

