"""Conformance: every stream of the kg-rca-agent, through the real bridge and workers.

One test per row of ``AGENT_FORMATS.md`` (the shared list of what the agent puts on
Kafka), with records built by :mod:`kgcelery.demo.agent_wire` exactly as the chart's
jobs, the state-watcher, Vector, the event exporter and the alert-receiver build them.
Each test asserts what lands (registry, or graph labels and properties as
``docs/GRAPH.md`` names them) and what is dead-lettered with which reason.

One embedded stack, bridge and worker serve the module; every row has its own client
(so its own graph) and waits for an outcome, never for time: a test returns as soon as
its records landed, or fails as soon as one of them was dead-lettered instead.

Setup registrations (for the rows that test data, not registration) use the key form
``<client>::registry`` that every kgcelery version accepts; rows 1-4 test the agent's.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from kgcelery import latency
from kgcelery.client_topics import CHART_1_0_TOPICS
from kgcelery.clients import queue_for
from kgcelery.control.registry import DRAINING, Registry
from kgcelery.deadletter import headers_of
from kgcelery.demo import agent_wire as wire
from kgcelery.graph import GraphStore
from kgcelery.kafka import ensure_topics, producer_config
from kgcelery.model.timeparse import to_epoch
from kgcelery.settings import DEFAULT_TOPICS, Settings
from tests.graph_helpers import edges_of, mine, props_of
from tests.helpers import Processes, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.both_stacks]


T = 1_790_000_000.25  # 2026-09-21T14:13:20.25Z
ROWS = ("r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r12", "r13", "r14", "r15",
        "r15-b", "r15-c")
_modules = itertools.count(1)


@dataclass
class Letter:
    topic: str
    key: bytes | None
    headers: dict[str, str]


class DeadLetters:
    """Every dead letter of the module's two dead-letter topics, read as they come."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                                  "group.id": "kgcelery-conformance", "enable.auto.commit": False})
        partitions = []
        for topic in (settings.dlq_raw_topic, settings.dlq_normalized_topic):
            # Apache Kafka may list a topic just created without its partitions yet:
            # assigned none, this reader would never see a letter.
            listed = wait_for(lambda t=topic: self.consumer.list_topics(t, timeout=10)
                              .topics[t].partitions or None, timeout=30,
                              what=f"the partitions of {topic}")
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in listed]
        self.consumer.assign(partitions)
        self.seen: list[Letter] = []

    def all(self) -> list[Letter]:
        for message in self.consumer.consume(1000, 0.2):
            if message.error() is None:
                self.seen.append(Letter(message.topic(), message.key(), headers_of(message)))
        return self.seen

    def of(self, source_topic: str, key: bytes | None = None) -> list[Letter]:
        return [letter for letter in self.all() if letter.headers.get("kg-source-topic")
                == source_topic and (key is None or letter.key == key)]

    def about(self, client: str, keys: set[bytes | None]) -> list[Letter]:
        """Letters of these Kafka keys, or of this client (as the worker names it)."""
        return [letter for letter in self.all() if letter.key in keys
                or letter.headers.get("kg-client") == client]


@dataclass
class Rig:
    """The module's stack, bridge and worker, and what a row test needs from them."""

    settings: Settings
    prefix: str
    clients: dict[str, str]
    graph: GraphStore
    registry: Registry
    letters: DeadLetters
    #: (row, source topic, dead letter) of the unattributable records, once sent.
    unattributable: list[tuple[str, str, Letter]] | None = None

    def topic(self, agent_topic: str) -> str:
        """The module's (prefixed) name of one of the agent's topics."""
        topic = self.prefix + agent_topic
        assert topic in self.settings.topics, f"{agent_topic} is not among KGCELERY_TOPICS"
        return topic

    def send(self, records: list[wire.WireRecord]) -> None:
        """Records to the module's names of their agent topics."""
        self.send_raw([(self.topic(record.topic), record) for record in records])

    def send_raw(self, records: list[tuple[str, wire.WireRecord]]) -> None:
        """Records to the given (already mapped) topics."""
        producer = Producer(producer_config(self.settings))
        for topic, record in records:
            producer.produce(topic, key=record.key, value=record.value)
        assert producer.flush(30) == 0, "some records were not delivered to Kafka"

    def settle(self, client: str, records: list[wire.WireRecord], landed: Callable[[], bool],
               *, what: str, timeout: float = 60) -> None:
        """Wait until ``landed()``; fail at once if one of the records was dead-lettered."""
        keys = {record.key for record in records}

        def outcome() -> str | None:
            letters = self.letters.about(client, keys)
            if letters:
                reasons = sorted({(lt.headers.get("kg-reason", ""),
                                   lt.headers.get("kg-error", "")[:300]) for lt in letters})
                raise AssertionError(f"{what}: dead-lettered instead: {reasons}")
            return "landed" if landed() else None

        wait_for(outcome, timeout=timeout, what=what)

    def query(self, client: str, cypher: str, params: dict[str, Any] | None = None) -> list:
        try:
            return self.graph.run(client, cypher, {"client": client, **(params or {})})
        except Exception:  # noqa: BLE001 - the client's graph does not exist yet
            return []


@pytest.fixture(scope="module")
def rig(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    prefix = f"conf{next(_modules)}-{os.getpid()}."
    clients = {row: f"k{os.getpid()}-{next(_modules)}-{row}" for row in ROWS}
    settings = stack_settings.model_copy(update={
        "topics": {prefix + topic: kind for topic, kind in DEFAULT_TOPICS.items()},
        # Row 15: chart 1.0.x's per-client topics, by KGCELERY_CLIENT_TOPICS=chart-1.0
        # (prefixed like every topic of the module).
        "client_topics": {prefix + template: kind
                          for template, kind in CHART_1_0_TOPICS.items()},
        "dlq_raw_topic": prefix + "dlq.raw", "dlq_normalized_topic": prefix + "dlq.normalized",
        "consumer_group": prefix + "bridge",
    })
    ensure_topics(settings)
    # The chart's producers create their topics; here they exist before the bridge
    # subscribes, or it would see them at its next metadata refresh (30 s).
    ensure_topics(settings.model_copy(update={"topics": {
        prefix + template.replace("{client}", client): kind
        for template, kind in CHART_1_0_TOPICS.items()
        for client in (clients["r15"], clients["r15-b"])}}))
    from kgcelery.graph import open_store

    graph, registry = open_store(settings), Registry.from_url(settings.registry_url)
    letters = DeadLetters(settings)
    processes = Processes(settings, tmp_path_factory.mktemp("conformance-logs"))
    try:
        # Setup, not under test: the data rows' clients, registered the long-accepted way.
        setup = [c for row, c in clients.items() if row not in ("r1", "r2")]
        produce(settings, prefix + "cluster.registry",
                [(f"{c}::registry", {"client_id": c, "cluster_name": f"{c}-cluster"})
                 for c in setup])
        processes.bridge()
        processes.worker(",".join(queue_for(c) for c in clients.values()), name="conformance")
        wait_for(lambda: set(setup) <= registry.registered_ids(), timeout=60,
                 what="the setup registrations")
        yield Rig(settings, prefix, clients, graph, registry, letters)
    finally:
        processes.stop_all()
        letters.consumer.close()
        registry.close()
        graph.close()


def _key(rig: Rig, id_expr: str) -> str:
    """The properties that find a node by id in the client's graph (its own graph, or its
    share of one database: tenancy ``property`` on Neo4j)."""
    return f"{{id: {id_expr}{', client: $client' if rig.graph.client_key else ''}}}"


CONTAINER = "'Container/shop/web-1/web'"


def _processed(rig: Rig, client: str) -> int:
    """Records of a client the workers have written (each adds its produce-to-graph age)."""
    with redis.Redis.from_url(rig.settings.registry_url) as client_redis:
        return sum(latency.histogram(client_redis, client).values())


# --- rows 1-5: registry and heartbeats ---------------------------------------------------

def test_row1_cluster_registry_job_registers_by_the_bare_client_id(rig: Rig) -> None:
    client = rig.clients["r1"]
    record = wire.registry_job_registration(client, "prod-eu", T, region="eu-west-1")
    rig.send([record])
    rig.settle(client, [record], lambda: rig.registry.get(client) is not None,
               what="the registration")
    registered = rig.registry.get(client)
    assert registered is not None and client in rig.registry.registered_ids()
    assert (registered.cluster_name, registered.version) == ("prod-eu", wire.CHART_VERSION)
    assert registered.region == "eu-west-1"
    assert registered.registered_at == to_epoch("2026-09-21T14:13:20Z")


def test_row2_register_cluster_job_split_by_kcat_registers(rig: Rig) -> None:
    client = rig.clients["r2"]
    record = wire.register_job_registration(client, "prod-us", T, namespace="observability",
                                            release="kg-rca-agent")
    assert record.key == b'{"client_id"'
    rig.send([record])
    rig.settle(client, [record], lambda: rig.registry.get(client) is not None,
               what="the kcat-split registration")
    registered = rig.registry.get(client)
    assert registered is not None and client in rig.registry.registered_ids()
    assert (registered.cluster_name, registered.version) == ("prod-us", wire.CHART_VERSION)
    assert registered.metadata == {"namespace": "observability",
                                   "release_name": "kg-rca-agent",
                                   "chart_version": wire.CHART_VERSION}


def test_row3_deregister_job_tombstone_deregisters(rig: Rig) -> None:
    client = rig.clients["r3"]
    record = wire.deregistration(client)
    rig.send([record])
    rig.settle(client, [record], lambda: client not in rig.registry.registered_ids(),
               what="the deregistration")
    registered = rig.registry.get(client)
    assert registered is not None and registered.state == DRAINING


def test_row4_heartbeat_cronjob_beats_by_the_bare_client_id(rig: Rig) -> None:
    client = rig.clients["r4"]
    record = wire.cronjob_heartbeat(client, T)
    rig.send([record])
    rig.settle(client, [record], lambda: getattr(rig.registry.get(client), "last_heartbeat",
                                                 None) is not None, what="the heartbeat")


def test_row5_state_watcher_heartbeat_keyed_client_twice(rig: Rig) -> None:
    client = rig.clients["r5"]
    record = wire.watcher_heartbeat(client, T, resources_sent=0, uptime_seconds=30)
    assert record.key == f"{client}::{client}".encode()
    rig.send([record])
    rig.settle(client, [record], lambda: getattr(rig.registry.get(client), "last_heartbeat",
                                                 None) is not None, what="the heartbeat")


# --- rows 6-8: the state-watcher ----------------------------------------------------------

def _meta(kind: str, name: str, namespace: str = "shop", **extra: Any) -> dict[str, Any]:
    return {"uid": f"uid-{kind.lower()}-{name}", "name": name,
            **({"namespace": namespace} if namespace else {}), **extra}


NODE = {"kind": "Node", "metadata": _meta("Node", "node-1", "", labels={"pool": "general"}),
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
POD = {"kind": "Pod", "metadata": _meta("Pod", "web-1", labels={"app": "web"},
                                        ownerReferences=[{"kind": "ReplicaSet",
                                                          "name": "web-5d8"}]),
       "spec": {"nodeName": "node-1"},
       "status": {"phase": "Running", "podIP": "10.1.0.7", "containerStatuses": [
           {"name": "web", "ready": True, "restartCount": 3},
           {"name": "side", "ready": False, "restartCount": 2}]}}
REPLICA_SET = {"kind": "ReplicaSet", "metadata": _meta("ReplicaSet", "web-5d8",
                                                       ownerReferences=[{"kind": "Deployment",
                                                                         "name": "web"}]),
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}}
SERVICE = {"kind": "Service", "metadata": _meta("Service", "web"),
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                    "selector": {"app": "web"},
                    "ports": [{"name": "http", "protocol": "TCP", "port": 80,
                               "targetPort": 8080, "nodePort": 30080}]}}
DEPLOYMENT = {"kind": "Deployment", "metadata": _meta("Deployment", "web"),
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "strategy": {"type": "RollingUpdate"}}}
DAEMON_SET = {"kind": "DaemonSet", "metadata": _meta("DaemonSet", "vector", "mon"),
              "spec": {"selector": {"matchLabels": {"app": "vector"}}},
              "status": {"desiredNumberScheduled": 3, "numberReady": 2, "numberAvailable": 2}}
JOB = {"kind": "Job", "metadata": _meta("Job", "ledger-1", "pay",
                                        ownerReferences=[{"kind": "CronJob", "name": "ledger"}]),
       "spec": {"parallelism": 1, "completions": 1},
       "status": {"failed": 4, "startTime": "2026-09-21T14:00:00Z"}}
CRON_JOB = {"kind": "CronJob", "metadata": _meta("CronJob", "ledger", "pay"),
            "spec": {"schedule": "*/2 * * * *", "suspend": True},
            "status": {"lastScheduleTime": "2026-09-21T14:10:00Z", "active": [{"name": "j"}]}}


def test_row6_state_watcher_resource_records_land_with_their_nested_fields(rig: Rig) -> None:
    client = rig.clients["r6"]
    objs = [NODE, POD, REPLICA_SET, SERVICE, DEPLOYMENT, DAEMON_SET, JOB, CRON_JOB]
    records = [wire.resource_record(client, client, obj, T) for obj in objs]
    rig.send(records)
    ids = ["Node/node-1", "Pod/shop/web-1", "ReplicaSet/shop/web-5d8", "Service/shop/web",
           "Deployment/shop/web", "DaemonSet/mon/vector", "Job/pay/ledger-1", "CronJob/pay/ledger"]
    rig.settle(client, records, lambda: all(props_of(rig.graph, client, i) for i in ids),
               what="every resource record in the graph")
    node, pod = props_of(rig.graph, client, "Node/node-1"), props_of(rig.graph, client,
                                                                    "Pod/shop/web-1")
    assert node["ready"] is True and node["status"] == "Ready"
    assert (pod["restart_count"], pod["ready"], pod["status"]) == (5, False, "Running")
    assert (pod["pod_ip"], pod["node_name"], pod["uid"]) == ("10.1.0.7", "node-1",
                                                             "uid-pod-web-1")
    assert pod["cluster"] == client
    service = props_of(rig.graph, client, "Service/shop/web")
    assert service["service_type"] == "NodePort" and "10.96.0.9" in service["service_ips"]
    assert service["ports"] == ["80/TCP"] and service["ip_family_policy"] == "SingleStack"
    assert service["selector"]
    deployment = props_of(rig.graph, client, "Deployment/shop/web")
    assert (deployment["replicas"], deployment["strategy"]) == (2, "RollingUpdate")
    daemon_set = props_of(rig.graph, client, "DaemonSet/mon/vector")
    assert (daemon_set["replicas"], daemon_set["ready_replicas"],
            daemon_set["available_replicas"]) == (3, 2, 2)
    job = props_of(rig.graph, client, "Job/pay/ledger-1")
    assert (job["failed"], job["succeeded"], job["active"]) == (4, 0, 0)
    assert (job["parallelism"], job["completions"]) == (1, 1)
    assert job["started_at"] == to_epoch("2026-09-21T14:00:00Z")
    cron_job = props_of(rig.graph, client, "CronJob/pay/ledger")
    assert (cron_job["schedule"], cron_job["suspend"], cron_job["active"]) == (
        "*/2 * * * *", True, 1)
    assert cron_job["last_schedule_at"] == to_epoch("2026-09-21T14:10:00Z")
    # Deletion: a null value under the same key marks the object gone.
    tombstone = wire.resource_tombstone(client, "Pod", "uid-pod-web-1")
    rig.send([tombstone])
    rig.settle(client, [tombstone],
               lambda: props_of(rig.graph, client, "Pod/shop/web-1").get("gone") is True,
               what="the deleted pod marked gone")


def test_row7_topology_edges_land_on_the_objects_they_name(rig: Rig) -> None:
    client = rig.clients["r7"]
    pod, stale = wire.object_ref("Pod", "shop", "web-1"), wire.object_ref("Pod", "shop", "web-2")
    node = wire.object_ref("Node", "", "node-1")
    replica_set = wire.object_ref("ReplicaSet", "shop", "web-5d8")
    service = wire.object_ref("Service", "shop", "web")
    edges = [wire.edge_record(client, client, "RUNS_ON", pod, node, T),
             wire.edge_record(client, client, "CONTROLS", replica_set, pod, T),
             wire.edge_record(client, client, "SELECTS", service, pod, T),
             wire.edge_record(client, client, "SELECTS", service, stale, T)]
    stale_pod = {**POD, "metadata": _meta("Pod", "web-2", labels={"app": "old"})}
    objects = [wire.resource_record(client, client, obj, T + 1)
               for obj in (POD, stale_pod, NODE, REPLICA_SET, SERVICE)]
    rig.send(edges)  # the edges first: whichever arrives first, they meet the objects
    rig.send(objects)
    expected_ids = {"Pod/shop/web-1", "Pod/shop/web-2", "Node/node-1",
                    "ReplicaSet/shop/web-5d8", "Service/shop/web"}
    rig.settle(client, edges + objects,
               lambda: _processed(rig, client) >= len(edges) + len(objects),
               what="objects and edges written")
    assert edges_of(rig.graph, client, "SCHEDULED_ON") == {("Pod/shop/web-1", "Node/node-1"),
                                                           ("Pod/shop/web-2", "Node/node-1")}
    assert ("ReplicaSet/shop/web-5d8", "Pod/shop/web-1") in edges_of(rig.graph, client, "OWNS")
    assert edges_of(rig.graph, client, "SELECTS") == {("Service/shop/web", "Pod/shop/web-1"),
                                                       ("Service/shop/web", "Pod/shop/web-2")}
    # No orphan placeholders: every Resource is one of the objects (or their namespace,
    # cluster and containers, which the model derives).
    rows = rig.query(client, f"MATCH (n:Resource{mine(rig.graph)}) "
                             "RETURN n.id, coalesce(n.placeholder, false)")
    assert not [i for i, placeholder in rows if placeholder]
    # (the ReplicaSet's ownerRef names Deployment web: a node by name, not a placeholder).
    assert {i for i, _ in rows if i.split("/")[0] not in ("Namespace", "Cluster", "Container")
            } == expected_ids | {"Deployment/shop/web"}
    # The agent tombstones an edge it no longer sees: it is gone.
    removal = wire.edge_tombstone(client, service, stale)
    rig.send([removal])
    rig.settle(client, [removal], lambda: edges_of(rig.graph, client, "SELECTS") == {
        ("Service/shop/web", "Pod/shop/web-1")}, what="the removed edge gone")


def test_row8_prometheus_targets_become_prom_target_nodes(rig: Rig) -> None:
    client = rig.clients["r8"]
    labels = {"container": "web", "endpoint": "http", "instance": "10.1.0.7:8080",
              "job": "web", "namespace": "shop", "pod": "web-1", "service": "web"}
    target = {"labels": labels, "scrapeUrl": "http://10.1.0.7:8080/metrics", "health": "down",
              "lastScrape": "2026-09-21T14:13:12.5Z",
              "lastError": 'Get "http://10.1.0.7:8080/metrics": connection refused'}
    objects = [wire.resource_record(client, client, obj, T) for obj in (POD, SERVICE)]
    record = wire.prom_target(client, client, target, T)
    rig.send([*objects, record])
    target_id = f"PromTarget/{client}|web|shop|web|10.1.0.7:8080"

    def target_props() -> dict[str, Any]:
        rows = rig.query(client, f"MATCH (t:PromTarget {_key(rig, '$id')}) RETURN properties(t)",
                         {"id": target_id})
        return dict(rows[0][0]) if rows else {}

    rig.settle(client, [*objects, record], lambda: bool(target_props()),
               what="the PromTarget node")
    props = target_props()
    assert (props["health"], props["scrape_url"], props["job"], props["instance"]) == (
        "down", "http://10.1.0.7:8080/metrics", "web", "10.1.0.7:8080")
    assert props["last_error"] == target["lastError"]
    assert props["last_scrape"] == to_epoch("2026-09-21T14:13:12.5Z")
    scraped = {row[0] for row in rig.query(
        client, f"MATCH (:PromTarget {_key(rig, '$id')})-[:SCRAPES]->(o) RETURN o.id",
        {"id": target_id})}
    assert scraped == {"Pod/shop/web-1", "Service/shop/web"}
    gone = wire.prom_target_tombstone(client, client, labels)
    rig.send([gone])
    rig.settle(client, [gone], lambda: target_props().get("gone") is True,
               what="the vanished target gone")


# --- rows 9-10: Vector's logs ------------------------------------------------------------

LOG = {"file": "/var/log/pods/shop_web-1_uid-pod-web-1/web/0.log",
       "message": "ERROR: could not connect to postgres:5433: connection refused",
       "source_type": "kubernetes_logs", "stream": "stderr",
       "timestamp": "2026-09-21T14:13:20.100000Z",
       "kubernetes": {"pod_uid": "uid-pod-web-1", "pod_namespace": "shop", "pod_name": "web-1",
                      "container_name": "web", "container_image": "web:1",
                      "pod_node_name": "node-1", "pod_labels": {"app": "web"}}}


def test_row9_vector_logs_normalized_fold_into_the_pods_container(rig: Rig) -> None:
    client = rig.clients["r9"]
    records = [wire.vector_log(client, LOG, T), wire.vector_log(client, LOG, T + 1)]
    rig.send(records)
    query = (f"MATCH (c:Container {_key(rig, CONTAINER)})-[e:EMITTED]->(p:LogPattern)"
             " RETURN e.count, p.severity")
    rig.settle(client, records, lambda: bool(rig.query(client, query)),
               what="the log pattern of the pod's container")
    assert rig.query(client, query) == [[2, "error"]]
    assert props_of(rig.graph, client, "Pod/shop/web-1")


# --- the unattributable rows (10, 11): dead-lettered bad-key ------------------------------

EVENT = {"metadata": {"uid": "ev-web-1-backoff", "namespace": "shop", "name": "web-1.17f"},
         "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1"},
         "reason": "BackOff", "message": "Back-off restarting failed container",
         "type": "Warning", "count": 1, "firstTimestamp": "2026-09-21T14:13:00Z",
         "lastTimestamp": "2026-09-21T14:13:20Z"}


def _unattributable(rig: Rig) -> list[tuple[str, str, wire.WireRecord]]:
    """(row, source topic, record) of every record the agent sends that names no client."""
    records = [("10", wire.raw_log_mirror(LOG)),
               ("11", wire.exported_event(EVENT, involved_labels={"app": "web"})),
               ("11", wire.exported_event(EVENT, topic=wire.RAW_EVENTS))]
    return [(row, rig.topic(record.topic), record) for row, record in records]


def _letters_of_row(rig: Rig, row: str) -> list[tuple[str, Letter]]:
    """Sends every unattributable record once per module; the dead letters of one row."""
    if rig.unattributable is None:
        records = _unattributable(rig)
        rig.send_raw([(topic, record) for _, topic, record in records])

        def letters() -> list[tuple[str, str, Letter]] | None:
            found = [(r, topic, got[0]) for r, topic, record in records
                     if (got := rig.letters.of(topic, record.key))]
            return found if len(found) == len(records) else None

        rig.unattributable = wait_for(letters, timeout=60,
                                      what="a dead letter for every unattributable record")
    return [(topic, letter) for r, topic, letter in rig.unattributable if r == row]


@pytest.mark.parametrize("row", ["10", "11"])
def test_rows10_11_unattributable_records_are_dead_lettered_bad_key(rig: Rig,
                                                                    row: str) -> None:
    """Row 10: Vector's unkeyed raw mirror; row 11: the event exporter's uid keys (both
    of its topics)."""
    letters = _letters_of_row(rig, row)
    assert len(letters) == (1 if row == "10" else 2)
    for topic, letter in letters:
        assert letter.topic == rig.settings.dlq_raw_topic
        assert letter.headers["kg-reason"] == "bad-key", (topic, letter.headers)
        assert "kg-client" not in letter.headers


@pytest.mark.parametrize("row", ["10", "11"])
def test_rows10_11_dead_letters_name_the_fix_on_the_producer_side(rig: Rig,
                                                                  row: str) -> None:
    for topic, letter in _letters_of_row(rig, row):
        error = letter.headers["kg-error"]
        assert "producer" in error and "<client>::" in error, (topic, error)


# --- row 15: chart 1.0.x, the topic names the client --------------------------------------

def _client_topic(rig: Rig, record: wire.WireRecord) -> tuple[str, wire.WireRecord]:
    """A chart 1.0.x record (on ``<client>.<topic>``) to the module's name of its topic."""
    return rig.prefix + record.topic, record


def test_row15_chart_1_0_records_land_in_the_graph_their_topic_names(rig: Rig) -> None:
    """Chart 1.0.x: the event exporter keys by uid, Vector not at all, the state-watcher
    and alert-receiver by ``<client>::``; only the topic names the client for all."""
    client = rig.clients["r15"]
    records = [wire.on_client_topic(client, wire.resource_record(client, client, POD, T)),
               wire.per_client_topic_event(
                   client, {**EVENT, "metadata": {**EVENT["metadata"], "uid": "ev-r15"}}),
               wire.per_client_topic_log(client, LOG, T),
               *(wire.on_client_topic(client, signal) for signal in
                 wire.alert_receiver_events(client, WEBHOOK, T, ["s15-1", "s15-2"]))]
    rig.send_raw([_client_topic(rig, record) for record in records])
    logged = (f"MATCH (c:Container {_key(rig, CONTAINER)})-[e:EMITTED]->"
              "(:LogPattern) RETURN e.count")
    about = f"MATCH (e:Event{mine(rig.graph)})-[:ABOUT]->(o) RETURN e.reason, o.id"

    def landed() -> bool:
        return bool(rig.query(client, logged) and rig.query(client, about)
                    and _alerts(rig, client))

    # Keyless records are told apart by the client their dead letters would name.
    rig.settle(client, [r for r in records if r.key is not None], landed,
               what="chart 1.0.x's records in the client's graph")
    assert props_of(rig.graph, client, "Pod/shop/web-1")["node_name"] == "node-1"
    assert rig.query(client, about) == [["BackOff", "Pod/shop/web-1"]]
    assert rig.query(client, logged) == [[1]]
    assert {a["source"] for a in _alerts(rig, client).values()} == {"alert-receiver"}


def test_row15_a_key_or_payload_naming_another_client_is_refused(rig: Rig) -> None:
    """On client A's own topic, a record that says it is B's is dead-lettered, and B's
    graph gets nothing: the topic is the client, whatever the key or payload claims."""
    owner, other = rig.clients["r15-b"], rig.clients["r15-c"]
    keyed = wire.on_client_topic(owner, wire.resource_record(other, other, NODE, T))
    claimed = wire.WireRecord(f"{owner}.{wire.LOGS}", b"claims-other",
                              wire.vector_json({**LOG, "client_id": other}))
    rig.send_raw([_client_topic(rig, keyed), _client_topic(rig, claimed)])

    def refused() -> list[Letter] | None:
        letters = [letter for letter in rig.letters.all() if letter.key in
                   (keyed.key, claimed.key)]
        return letters if len(letters) == 2 else None

    letters = wait_for(refused, timeout=60, what="both records dead-lettered")
    assert {letter.headers["kg-reason"] for letter in letters} == {"client-id-mismatch"}
    assert {letter.headers.get("kg-client") for letter in letters} == {owner}
    for client in (owner, other):
        assert rig.query(client, f"MATCH (n{mine(rig.graph)}) RETURN count(n)") in ([], [[0]])


# --- rows 12-14: alerts ------------------------------------------------------------------

WEBHOOK = {
    "version": "4", "groupKey": '{}:{alertname="KubePodCrashLooping"}', "status": "firing",
    "receiver": "kg-webhook", "groupLabels": {"alertname": "KubePodCrashLooping"},
    "commonLabels": {"alertname": "KubePodCrashLooping", "severity": "critical"},
    "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
    "alerts": [
        {"status": "firing", "labels": {"alertname": "KubePodCrashLooping",
                                        "severity": "critical", "namespace": "shop",
                                        "pod": "web-1"},
         "annotations": {"summary": "Pod is crash looping.",
                         "description": "Pod shop/web-1 restarted 5 times."},
         "startsAt": "2026-09-21T14:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph", "fingerprint": "aa11aa11aa11aa11"},
        {"status": "firing", "labels": {"alertname": "KubePodCrashLooping",
                                        "severity": "critical", "node": "node-1"},
         "annotations": {"summary": "Node pods crash looping."},
         "startsAt": "2026-09-21T14:01:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph", "fingerprint": "bb22bb22bb22bb22"}]}


def _alerts(rig: Rig, client: str) -> dict[str, dict[str, Any]]:
    rows = rig.query(client, f"MATCH (a:Alert{mine(rig.graph)}) RETURN a.id, properties(a)")
    return {row[0]: dict(row[1]) for row in rows}


def _about(rig: Rig, client: str) -> set[tuple[str, str]]:
    rows = rig.query(client, f"MATCH (a:Alert{mine(rig.graph)})-[:ABOUT]->(o) "
                             "RETURN a.name, o.id")
    return {(row[0], row[1]) for row in rows}


def _check_webhook_alerts(rig: Rig, client: str) -> None:
    alerts = {props["fingerprint"]: props for props in _alerts(rig, client).values()}
    assert set(alerts) == {"aa11aa11aa11aa11", "bb22bb22bb22bb22"}  # one Alert per alert
    first = alerts["aa11aa11aa11aa11"]
    assert (first["name"], first["status"], first["severity"], first["receiver"]) == (
        "KubePodCrashLooping", "firing", "critical", "kg-webhook")
    assert first["starts_at"] == to_epoch("2026-09-21T14:00:00Z")
    assert first["source"] == "alertmanager"
    assert _about(rig, client) >= {("KubePodCrashLooping", "Pod/shop/web-1"),
                                   ("KubePodCrashLooping", "Node/node-1")}


def test_row12_vector_alert_twin_with_one_alert_object_is_an_alert(rig: Rig) -> None:
    client = rig.clients["r12"]
    objects = [wire.resource_record(client, client, obj, T) for obj in (POD, NODE)]
    twins = wire.vector_alert_twins(client, WEBHOOK, T, ["ev-1", "ev-2"])
    rig.send(objects + twins)
    rig.settle(client, objects + twins, lambda: len(_alerts(rig, client)) >= 2,
               what="the twins' alerts in the graph")
    _check_webhook_alerts(rig, client)


def test_row13_raw_webhook_alerts_and_their_twins_are_one_alert_each(rig: Rig) -> None:
    client = rig.clients["r13"]
    objects = [wire.resource_record(client, client, obj, T) for obj in (POD, NODE)]
    rig.send(objects)
    rig.settle(client, objects, lambda: _processed(rig, client) >= 2, what="the objects")
    raw = wire.vector_raw_alert(client, WEBHOOK, T)
    rig.send([raw])
    # The webhook's alerts are written in one batch, so its count arrives at once.
    rig.settle(client, [raw], lambda: len(_alerts(rig, client)) >= 2
               and _processed(rig, client) >= 3, what="the webhook's alerts in the graph")
    _check_webhook_alerts(rig, client)
    # Vector's twins of the same notification: the same two Alerts, no more.
    written = _processed(rig, client)
    twins = wire.vector_alert_twins(client, WEBHOOK, T, ["ev-1", "ev-2"])
    rig.send(twins)
    rig.settle(client, twins, lambda: _processed(rig, client) >= written + 2,
               what="the twins written")
    _check_webhook_alerts(rig, client)


def test_row14_alert_receiver_signals_become_alerts_about_their_subject(rig: Rig) -> None:
    client = rig.clients["r14"]
    objects = [wire.resource_record(client, client, obj, T) for obj in (POD, NODE)]
    signals = wire.alert_receiver_events(client, WEBHOOK, T, ["sig-1", "sig-2"])
    rig.send(objects + signals)
    rig.settle(client, objects + signals, lambda: len(_alerts(rig, client)) >= 2,
               what="the alert-receiver's alerts in the graph")
    alerts = list(_alerts(rig, client).values())
    assert len(alerts) == 2
    assert {(a["name"], a["severity"], a["source"]) for a in alerts} == {
        ("KubePodCrashLooping", "critical", "alert-receiver")}
    assert _about(rig, client) == {("KubePodCrashLooping", "Pod/shop/web-1"),
                                   ("KubePodCrashLooping", "Node/node-1")}
