"""kgcelery's Redis transport (kgcelery.broker) against the session's real broker Redis.

The property it exists for: a message leaves its queue and enters kombu's ``unacked``
hash in one step, so nothing is only in a worker's socket buffer. The rest must be
kombu's behaviour unchanged: acks, restores, several queues.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Queue

from kgcelery.broker import _TAKE, Transport
from kgcelery.settings import Settings

pytestmark = pytest.mark.integration


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


def test_take_moves_a_message_from_its_queue_into_unacked_in_one_step(
        broker_url: str) -> None:
    # A task's size: the script finds the properties in the tail, after a large body.
    _publish(broker_url, "client.t1", [{"n": 1, "records": "x" * 300_000}])
    client = redis.Redis.from_url(broker_url)
    raw = client.lindex("client.t1", 0)
    assert raw is not None

    queue, message, tag, ready = client.eval(_TAKE, 3, "unacked", "unacked_index",
                                             "client.t1", "1")
    assert (queue, message) == (b"client.t1", raw)
    assert client.llen("client.t1") == 0 and ready == b""
    # Stored as kombu's QoS.append stores it, so kombu's ack and restore work unchanged.
    stored = json.loads(client.hget("unacked", tag))
    assert stored == [json.loads(raw), "client.t1", "client.t1"]
    assert client.zscore("unacked_index", tag) == pytest.approx(time.time(), abs=5)
    assert client.eval(_TAKE, 3, "unacked", "unacked_index", "client.t1", "1") is None


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
            # The second is never acked: kombu's restore puts it back in its queue.
            conn.default_channel.qos.restore_visible(start=0)
    # Closing the channel restores what it still held, as kombu's transport does.
    assert client.llen("client.t2") == 1
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
    from kgcelery.bridge.batcher import Batch
    from kgcelery.bridge.publisher import redis_envelope
    from kgcelery.control.queues import records_per_task

    record = b'{"reason":"BackOff","message":"' + b"m" * 1000 + b'"}'
    batch = Batch("t-five", "event", 0.0, [record] * 500,
                  [["raw.k8s.events", 0, n, f"event::{n}", 0] for n in range(500)])
    client = redis.Redis.from_url(broker_url)
    client.lpush("client.t-five", redis_envelope(batch, "client.t-five", "task-1"))
    assert records_per_task(client, "t-five", default=1) == 500
    _queue, _message, tag, _ready = client.eval(_TAKE, 3, "unacked", "unacked_index",
                                                "client.t-five", "1")
    assert tag and json.loads(client.hget("unacked", tag))[2] == "client.t-five"
