"""The kafka-neo4j stack: Apache Kafka and Neo4j from Maven Central, started, checked
and stopped by kgcelery like the pip-only stack; and what is deployed names the same
versions as what is tested."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, Producer

from kgcelery.embedded import open_stack
from kgcelery.embedded.jvm_stack import JvmStack
from kgcelery.embedded.maven import KAFKA_VERSION, NEO4J_VERSION
from kgcelery.embedded.process import pid_alive, read_pid
from kgcelery.embedded.stack import free_port, port_in_use
from kgcelery.errors import StaleProcessError
from kgcelery.graph import open_store
from kgcelery.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.jvm]

ROOT = Path(__file__).parents[1]


def test_deployed_versions_are_the_tested_ones() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert compose["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert compose["neo4j"]["image"] == f"neo4j:{NEO4J_VERSION}-community"
    enterprise = yaml.safe_load((ROOT / "docker-compose.enterprise.yml").read_text())
    assert enterprise["services"]["neo4j"]["image"] == f"neo4j:{NEO4J_VERSION}-enterprise"
    named = re.findall(r"(?:Apache Kafka|Neo4j) \d+\.\d+(?:\.\d+)?",
                       (ROOT / "docs" / "DEPLOYMENT.md").read_text())
    assert set(named) <= {f"Apache Kafka {KAFKA_VERSION}", f"Neo4j {NEO4J_VERSION}"}, named


def test_the_stack_setting_picks_the_stack_and_the_neo4j_backend(tmp_path: Path) -> None:
    settings = Settings(stack="kafka-neo4j", state_dir=tmp_path, embedded_neo4j_port=17999)
    assert (settings.graph_backend, settings.graph_tenancy, settings.graph_uri) == (
        "neo4j", "property", "bolt://127.0.0.1:17999")
    assert Settings(state_dir=tmp_path).graph_backend == "falkordb"


def test_up_serves_kafka_and_neo4j_by_protocol_and_down_leaves_nothing_running(
        tmp_path: Path, jvm_stack: Settings) -> None:
    """A second kafka-neo4j stack of its own (the session's, jvm_stack, is left alone)."""
    settings = Settings(stack="kafka-neo4j", state_dir=tmp_path / "state",
                        embedded_kafka_port=free_port(), embedded_broker_port=free_port(),
                        embedded_neo4j_port=free_port(), topic_partitions=1)
    stack = open_stack(settings)
    assert isinstance(stack, JvmStack)
    with stack:
        pids = {s.name: s.process.pid for s in stack.services}
        assert all(pid and pid_alive(pid) for pid in pids.values())
        # Kafka: a record goes through the broker and comes back.
        topic = next(iter(settings.topics))
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
        producer.produce(topic, key=b"c1::x", value=b'{"hello": 1}')
        assert producer.flush(30) == 0
        del producer  # before Kafka stops: its librdkafka threads would log the outage
        consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                             "group.id": "jvm-stack-test", "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        try:
            message = None
            for _ in range(60):
                message = consumer.poll(1.0)
                if message is not None and not message.error():
                    break
            assert message is not None and message.value() == b'{"hello": 1}'
        finally:
            consumer.close()
        # Neo4j: the store writes and reads over Bolt.
        store = open_store(settings)
        try:
            store.ensure_schema("jvm-c1")
            assert store.run("jvm-c1", "MERGE (n:Event {client: $client, id: 'e'}) "
                                   "RETURN n.id") == [["e"]]
        finally:
            store.close()
        # A second start while the first runs is refused, naming what holds the slot.
        with pytest.raises(StaleProcessError, match="still running"):
            open_stack(settings).start()
        logs = {p.name for p in (tmp_path / "state" / "logs").iterdir()}
        assert {"kafka.log", "neo4j.log", "broker.log"} <= logs
    for name, pid in pids.items():
        assert pid is not None and not pid_alive(pid), f"{name} (pid {pid}) outlived the stack"
        assert read_pid(tmp_path / "state" / "run" / f"{name}.pid") is None
    for port in (settings.embedded_kafka_port, settings.embedded_neo4j_port,
                 settings.embedded_broker_port):
        assert not port_in_use(port)


def test_a_taken_port_stops_the_start_with_the_setting_to_change(tmp_path: Path,
                                                                  jvm_ready: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(stack="kafka-neo4j", state_dir=tmp_path,
                            embedded_kafka_port=free_port(), embedded_broker_port=free_port(),
                            embedded_neo4j_port=port)
        stack = open_stack(settings)
        with pytest.raises(StaleProcessError, match="KGCELERY_EMBEDDED_NEO4J_PORT"):
            stack.start()
    for service in stack.services:
        assert not service.process.alive()


def test_a_cluster_id_beginning_with_a_dash_still_formats_kafkas_storage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Random ids are base64url: 1 in 64 begins with '-', which Kafka's StorageTool took
    # for an option when given as a separate argument (CI saw it once).
    from kgcelery.embedded import jvm_stack

    monkeypatch.setattr(jvm_stack, "_cluster_id", lambda: "-AbCdEfGhIjKlMnOpQrStU")
    settings = Settings(state_dir=tmp_path, embedded_kafka_port=free_port(),
                        embedded_broker_port=free_port(), embedded_neo4j_port=free_port())
    kafka = JvmStack(settings)._apache_kafka()
    assert kafka.prepare is not None
    kafka.prepare()
    meta = (tmp_path / "kafka" / "data" / "meta.properties").read_text()
    assert "cluster.id=-AbCdEfGhIjKlMnOpQrStU" in meta


def test_kafkas_storage_formats_again_with_the_cluster_id_it_has(tmp_path: Path,
                                                                   jvm_ready: None) -> None:
    # A second start on the same state directory (kgcelery up run again, or a Kafka that
    # died started again by its supervision) formats the storage once more: with a new
    # id Kafka refused it ("Invalid cluster.id"), and Kafka could not start.
    settings = Settings(state_dir=tmp_path, embedded_kafka_port=free_port(),
                        embedded_broker_port=free_port(), embedded_neo4j_port=free_port())
    kafka = JvmStack(settings)._apache_kafka()
    assert kafka.prepare is not None
    kafka.prepare()
    meta = tmp_path / "kafka" / "data" / "meta.properties"
    first = meta.read_text()
    kafka.prepare()
    cluster = [line for line in first.splitlines() if line.startswith("cluster.id=")]
    assert cluster and cluster[0] in meta.read_text().splitlines()
