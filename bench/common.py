"""Pieces the benchmarks share: a stack on free ports, realistic records, probes."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kgcelery.demo.warmup import MIX, simulated_records
from kgcelery.embedded.binaries import falkordb_module, redis_server_binary
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port
from kgcelery.kafka import producer_config
from kgcelery.settings import Settings

KINDS = tuple(MIX)


def exit_on_sigterm() -> None:
    """SIGTERM ends a benchmark as Ctrl-C does: its ``finally`` blocks stop what it
    started, in order (workers before the broker they shut down through). Without it
    Python dies at once, and its children get SIGTERM (PDEATHSIG) with the broker gone:
    Celery workers then wait in their warm shutdown for a broker that never returns."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def bench_settings(state: Path, **overrides: object) -> Settings:
    return Settings(state_dir=state, embedded_kafka_port=free_port(),
                    embedded_broker_port=free_port(), embedded_graph_port=free_port(),
                    embedded_neo4j_port=free_port(), dlq_guard_ratio=1.0, **overrides)  # type: ignore[arg-type]


@contextmanager
def falkordb() -> Iterator[tuple[str, int]]:
    """A FalkorDB of our own on a free port; yields its URL and its server's pid."""
    settings = Settings()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kgcelery-bench-") as state:
        process = ManagedProcess(
            "bench-falkordb",
            [str(redis_server_binary(settings)), "--port", str(port), "--bind", "127.0.0.1",
             "--dir", state, "--save", "", "--appendonly", "no",
             "--loadmodule", str(falkordb_module(settings))],
            run_dir=Path(state) / "run", log_dir=Path(state) / "logs")
        process.start()
        try:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
            process.wait_until(lambda: bool(client.ping()), timeout=30, what="answering")
            client.close()
            yield f"redis://127.0.0.1:{port}", process.pid or 0
        finally:
            process.stop()


@contextmanager
def neo4j() -> Iterator[tuple[str, int]]:
    """A Neo4j Community of our own (the kafka-neo4j stack's) on a free port; its URI and
    its JVM's pid."""
    from kgcelery.embedded.jvm_stack import JvmStack

    with tempfile.TemporaryDirectory(prefix="kgcelery-bench-neo4j-") as state:
        settings = Settings(stack="kafka-neo4j", state_dir=Path(state),
                            embedded_neo4j_port=free_port(), jvm_heap_mb=1024)
        service = JvmStack(settings, create_topics=False).graph
        service.start()
        try:
            yield settings.graph_uri, service.process.pid or 0
        finally:
            service.stop()


def cpu_s(pid: int) -> float:
    """CPU seconds a process has used so far (user and system, from /proc; 0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_records(count: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """(kind, JSON) records from the demo simulator, mixed as in :data:`MIX`."""
    return [(kind, orjson.dumps(value)) for kind, value in simulated_records(count, seed=seed)]


def new_producer(settings: Settings) -> Producer:
    return Producer({**producer_config(settings), "linger.ms": 20,
                     "queue.buffering.max.messages": 500_000})


def produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)


_COORDINATOR_MOVING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                       KafkaError.COORDINATOR_NOT_AVAILABLE}


def committed_offsets(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    """The bridge group's committed offset of every partition of ``topics`` (0 where none)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": settings.consumer_group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)]
        return [TopicPartition(tp.topic, tp.partition, max(tp.offset, 0))
                for tp in consumer.committed(parts, timeout=10)]
    finally:
        consumer.close()


def committed(settings: Settings, topics: list[str]) -> int:
    """Records of ``topics`` the bridge group has committed (dense offsets from 0).

    Not the high watermark: Tansu 0.6 reports it as the last batch's base offset + 1.
    """
    try:
        return sum(tp.offset for tp in committed_offsets(settings, topics))
    except KafkaException as exc:
        # Apache Kafka answers NOT_COORDINATOR while the group's coordinator loads.
        error = exc.args[0] if exc.args else None
        if error is not None and (error.retriable() or error.code() in _COORDINATOR_MOVING):
            return 0
        raise


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's resident memory (VmRSS) or its peak (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (the ``children`` file of each of its threads, and
    of theirs)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for listing in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                kids = {int(kid) for kid in listing.read_text().split()} - found
            except OSError:  # gone meanwhile
                continue
            found |= kids
            todo += kids
    return found


def tree_peak_mb(pid: int) -> float:
    """Peak RSS of a process plus its descendants (a Celery worker and its pool)."""
    return rss_mb(pid) + sum(rss_mb(kid) for kid in descendants(pid))
