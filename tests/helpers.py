"""Helpers the integration tests share: processes, producing, waiting."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, Producer

from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import port_in_use
from kgcelery.kafka import producer_config
from kgcelery.settings import Settings


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str,
             interval: float = 0.2) -> Any:
    """Poll until ``condition()`` is truthy; fail the test with ``what`` if it never is."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@contextmanager
def serving(name: str, argv: Sequence[Any], port: int, tmp_path: Path, *, what: str,
            timeout: float = 20.0, env: dict[str, str] | None = None) -> Iterator[None]:
    """A server of the test's own started, listening on ``port``; stopped afterwards,
    also when the test fails."""
    server = ManagedProcess(name, argv, run_dir=tmp_path / "run", log_dir=tmp_path, env=env)
    server.start()
    try:
        wait_for(lambda: port_in_use(port), timeout=timeout, what=what)
        yield
    finally:
        server.stop()


def redis_pings(client: redis.Redis) -> bool:
    """True when this Redis answers (False while it is down or starting)."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def produce(settings: Settings, topic: str, records: Iterable[tuple[Any, Any]]) -> int:
    """Produce (key, value) pairs; values that are not bytes/None are JSON-encoded."""
    producer = Producer(producer_config(settings))
    count = 0
    for key, value in records:
        if value is not None and not isinstance(value, bytes):
            value = json.dumps(value).encode()
        if isinstance(key, str):
            key = key.encode()
        producer.produce(topic, key=key, value=value)
        count += 1
        if count % 10_000 == 0:
            producer.flush()
    assert producer.flush(30) == 0, "some records were not delivered to Kafka"
    return count


def read_topic(settings: Settings, topic: str, *, expect: int, timeout: float = 30.0) -> list[Any]:
    """Read at least ``expect`` messages of a topic from the beginning.

    Partitions are assigned, not subscribed: no group join (seconds on Tansu), no commit.
    """
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": "kgcelery-test-reader", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expect and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    messages.append(message)
    finally:
        consumer.close()
    return messages


class Processes:
    """Starts kgcelery and Celery processes for a test and stops them all afterwards."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.started: list[ManagedProcess] = []

    def start(self, name: str, argv: list[str], settings: Settings | None = None,
              ready_log: str | None = None, timeout: float = 60.0) -> ManagedProcess:
        env = (settings or self.settings).child_env()
        process = ManagedProcess(name, argv, run_dir=self.log_dir / "run",
                                 log_dir=self.log_dir, env=env)
        process.start()
        self.started.append(process)
        if ready_log:
            process.wait_until(lambda: ready_log in process.tail(200), timeout=timeout,
                               what=f"ready (log line {ready_log!r})")
        return process

    def bridge(self, settings: Settings | None = None, name: str = "bridge") -> ManagedProcess:
        return self.start(name, [sys.executable, "-m", "kgcelery", "bridge"], settings,
                          ready_log="assigned")

    def worker(self, queues: str, settings: Settings | None = None,
               name: str | None = None, concurrency: int = 1) -> ManagedProcess:
        name = name or f"worker-{queues.replace(',', '+')}"
        argv = [sys.executable, "-m", "celery", "-A", "kgcelery.app", "worker", "-Q", queues,
                "-n", f"{name}@%h", "--concurrency", str(concurrency), "--loglevel", "INFO",
                "--without-mingle", "--without-gossip"]
        return self.start(name, argv, settings, ready_log="ready.")

    def stop_all(self) -> None:
        """SIGTERM everything at once (each shuts down in parallel), then wait for each."""
        import signal

        for process in self.started:
            process.send_signal(signal.SIGTERM)
        for process in reversed(self.started):
            process.stop(timeout=15)
        self.started.clear()


def queued_tasks(client: Any, queue: str) -> list[tuple[str, list[Any]]]:
    """(task name, args) of every task waiting in a Celery queue on Redis, oldest first."""
    import base64

    tasks = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        tasks.append((envelope["headers"]["task"], body[0]))
    return tasks


def queued_entities(client: Any, queue: str) -> list[str]:
    """The entity key of every record in every task of a queue (duplicates kept)."""
    return [origin[3] for _, args in queued_tasks(client, queue) for origin in args[2]]


def committed_count(settings: Settings, topic: str) -> int:
    """How many records of ``topic`` the bridge's group has committed (offsets summed).

    XXX: not the high watermark: Tansu 0.6 reports a partition's high watermark as the
    last record *batch*'s base offset + 1, so "committed >= watermark" passes too early.
    Test topics are fresh and written by idempotent producers: offsets are dense from 0.
    """
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": settings.consumer_group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p) for p in metadata.partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


def all_committed(settings: Settings, topic: str, produced: int) -> bool:
    """True when the group has committed every one of ``produced`` records of ``topic``."""
    committed = committed_count(settings, topic)
    assert committed <= produced, f"committed {committed} > produced {produced}"
    return committed == produced
