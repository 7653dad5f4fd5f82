"""The kafka-neo4j stack: Apache Kafka (KRaft), a broker redis-server and Neo4j Community.

What production runs, started from Maven Central jars (kgcelery/embedded/maven.py) by
the same code and with the same guarantees as the pip-only stack (stack.py): pid files,
logs under ``<state>/logs/``, a stale process or a taken port stops the start, readiness
checked by protocol (Kafka metadata through librdkafka, a Bolt query through the neo4j
driver), everything stopped in reverse order.

Kafka runs one combined broker/controller node; its storage is formatted on first start
(``kafka-storage format``, kept across restarts). Neo4j runs embedded in KgNeo4j.java
with Bolt on ``KGCELERY_EMBEDDED_NEO4J_PORT`` and authentication off (127.0.0.1 only).
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

import neo4j
from confluent_kafka.admin import AdminClient

from kgcelery.embedded import maven
from kgcelery.embedded.stack import EmbeddedStack, Service, free_port, port_in_use
from kgcelery.errors import StackError
from kgcelery.kafka import common_config
from kgcelery.settings import Settings

#: A JVM's first start on a loaded 2-core machine can take a while.
JVM_READY_TIMEOUT_S = 180.0

_LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def kafka_server_properties(*, port: int, controller_port: int, log_dir: Path,
                            partitions: int) -> str:
    """One node that is broker and controller (KRaft), PLAINTEXT on 127.0.0.1."""
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={log_dir}",
        f"num.partitions={partitions}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # One node: a joining consumer need not wait for others to join.
        "group.initial.rebalance.delay.ms=0",
        "",
    ])


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _stored_cluster_id(data_dir: Path) -> str | None:
    """The cluster id Kafka's storage in ``data_dir`` was formatted with, if it was: a
    start on that storage must format with the same (``--ignore-formatted`` or not,
    Kafka refuses another: ``Invalid cluster.id``)."""
    try:
        text = (data_dir / "meta.properties").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id" and value.strip():
            return value.strip()
    return None


class JvmStack(EmbeddedStack):
    """Apache Kafka + broker Redis + Neo4j; starts, checks and stops like EmbeddedStack.

    :param settings: ports (Kafka: ``embedded_kafka_port``, Neo4j Bolt:
        ``embedded_neo4j_port``), state directory, JVM cache and heap.
    :param create_topics: create every topic kgcelery uses once Kafka is up.
    """

    def __init__(self, settings: Settings, *, create_topics: bool = True) -> None:
        self.java = str(maven.java_binary())
        super().__init__(settings, create_topics=create_topics)

    def _kafka_service(self) -> Service:
        return self._apache_kafka()

    def _graph_service(self) -> Service:
        return self._neo4j()

    def _jvm(self, classpath: list[Path], main: str, *args: str) -> list[str]:
        heap = f"-Xmx{self.settings.jvm_heap_mb}m"
        # The classpath (200 jars for Neo4j) goes in an argument file: logs stay readable.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argfile = self.state_dir / f"{main.rsplit('.', 1)[-1]}.classpath"
        argfile.write_text(f"-cp\n\"{os.pathsep.join(map(str, classpath))}\"\n")
        return [self.java, heap, "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true", f"@{argfile}", main, *args]

    def _apache_kafka(self) -> Service:
        port = self.settings.embedded_kafka_port
        home = self.state_dir / "kafka"
        jars = maven.classpath(self.settings, maven.KAFKA)
        config = home / "server.properties"
        log4j = home / "log4j2.properties"
        log_file = self.log_dir / "kafka.log"

        def prepare() -> None:
            # A new controller port each start: nothing outside the node uses it.
            home.mkdir(parents=True, exist_ok=True)
            config.write_text(kafka_server_properties(
                port=port, controller_port=free_port(), log_dir=home / "data",
                partitions=self.settings.topic_partitions))
            log4j.write_text(_LOG4J2)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            cluster_id = _stored_cluster_id(home / "data") or _cluster_id()
            with open(log_file, "ab") as out:
                done = subprocess.run(
                    self._jvm(jars, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                              # One argument: an id may begin with '-' (1 in 64).
                              f"--cluster-id={cluster_id}", "-c", str(config)),
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    timeout=JVM_READY_TIMEOUT_S, check=False)
            if done.returncode != 0:
                raise StackError(f"formatting Kafka's storage in {home} failed (exit "
                                 f"{done.returncode}); see {log_file}")

        argv = self._jvm(jars, "kafka.Kafka", str(config))
        argv.insert(1, f"-Dlog4j2.configurationFile={log4j}")

        def ready() -> bool:
            if not port_in_use(port):
                return False
            admin = AdminClient({**common_config(self.settings), "socket.timeout.ms": 1000})
            metadata = admin.list_topics(timeout=2)
            return bool(metadata.brokers)

        return Service("kafka", port, self._process("kafka", argv), ready,
                       ready_timeout_s=JVM_READY_TIMEOUT_S, prepare=prepare)

    def _neo4j(self) -> Service:
        port = self.settings.embedded_neo4j_port
        home = self.state_dir / "neo4j"
        home.mkdir(parents=True, exist_ok=True)
        classes = maven.neo4j_main_class_dir(self.settings)
        jars = maven.classpath(self.settings, maven.NEO4J)
        # A quarter of the heap for the page cache: plenty for a demo or a test.
        page_cache_mb = str(max(self.settings.jvm_heap_mb // 4, 64))
        argv = self._jvm([classes, *jars], "KgNeo4j", str(home), str(port), page_cache_mb)

        def ready() -> bool:
            if not port_in_use(port):
                return False
            with neo4j.GraphDatabase.driver(f"bolt://127.0.0.1:{port}", auth=None,
                                            connection_timeout=2) as driver:
                records, _, _ = driver.execute_query("RETURN 1 AS one")
                return bool(records and records[0]["one"] == 1)

        return Service("neo4j", port, self._process("neo4j", argv), ready,
                       ready_timeout_s=JVM_READY_TIMEOUT_S,
                       port_setting="KGCELERY_EMBEDDED_NEO4J_PORT")

    @property
    def bolt_uri(self) -> str:
        return f"bolt://127.0.0.1:{self.settings.embedded_neo4j_port}"
