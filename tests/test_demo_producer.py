"""The demo producer against a real Tansu: what a client cluster's agent would send."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from kgcelery.clients import queue_for
from kgcelery.control.registry import Registry
from kgcelery.deadletter import headers_of
from kgcelery.demo import producer
from kgcelery.demo.agent_wire import WATCHED_KINDS
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.helpers import Processes, read_topic, wait_for

pytestmark = pytest.mark.integration


def _topic(settings: Settings, agent_topic: str) -> str:
    """The test's (prefixed) name of one of the agent's topics."""
    return producer.agent_topics(settings)[agent_topic]


def test_run_demo_plays_the_agents_records_into_their_topics(test_settings: Settings) -> None:
    producer.run_demo(test_settings, clients=2, rate=30, duration=2.5, stop=threading.Event())
    clients = {"acme-prod", "globex-staging"}
    # Both registration jobs of the chart: the bare key, and kcat's split line.
    registrations = read_topic(test_settings, _topic(test_settings, "cluster.registry"), expect=4)
    keys = Counter(m.key().decode() for m in registrations)
    assert keys == {**{c: 1 for c in clients}, '{"client_id"': 2}
    bare = [json.loads(m.value()) for m in registrations if m.key().decode() in clients]
    assert {r["client_id"] for r in bare} == clients
    split = [m for m in registrations if m.key() == b'{"client_id"']
    assert {json.loads(m.key() + b":" + m.value())["client_id"] for m in split} == clients
    # The CronJob's heartbeat (bare key) and the state-watcher's (<client>::<client>).
    beats = read_topic(test_settings, _topic(test_settings, "cluster.heartbeat"), expect=4)
    assert {m.key().decode() for m in beats} == clients | {f"{c}::{c}" for c in clients}
    resources = read_topic(test_settings, _topic(test_settings, "state.k8s.resource"), expect=40)
    kinds = Counter(json.loads(m.value())["kind"] for m in resources if m.value())
    assert {"Node", "Pod", "Deployment", "ReplicaSet", "Service", "DaemonSet"} <= set(kinds)
    assert set(kinds) <= set(WATCHED_KINDS)
    for message in resources:
        client, _, entity = message.key().decode().partition("::")
        kind, _, uid = entity.partition(":")
        assert client in clients and kind.capitalize() in {k.capitalize() for k in kinds}
        assert json.loads(message.value())["uid"] == uid
    edges = read_topic(test_settings, _topic(test_settings, "state.k8s.topology"), expect=20)
    assert {json.loads(m.value())["type"] for m in edges if m.value()} == {
        "RUNS_ON", "CONTROLS", "SELECTS"}
    assert all(m.key().decode().split("::", 1)[1].startswith("edge:") for m in edges)
    logs = read_topic(test_settings, _topic(test_settings, "logs.normalized"), expect=20)
    for message in logs:
        value = json.loads(message.value())
        assert message.key().decode() == value["message_key"] == (
            f"{value['client_id']}::{value['kubernetes']['pod_uid']}")
        assert value["client_id"] in clients and value["etype"] == "k8s.log"


GRAPH_KINDS = ("Pod", "Node", "Service", "Deployment", "ReplicaSet", "DaemonSet", "CronJob",
               "Job", "Container", "Event", "Alert", "LogPattern", "PromTarget")


def test_the_demos_graphs_hold_every_kind_with_no_manual_registration(
        test_settings: Settings, processes: Processes, graph: GraphStore,
        registry: Registry) -> None:
    """What ``make up`` shows: the agent's records alone register the clients and fill
    their graphs with objects, edges between real objects, targets, alerts and logs."""
    client = "acme-prod"
    processes.bridge()
    processes.worker(queue_for(client))
    stop = threading.Event()
    demo = threading.Thread(target=producer.run_demo, args=(test_settings,), daemon=True,
                            kwargs={"clients": 1, "rate": 20, "duration": 0, "stop": stop})
    demo.start()

    def labels() -> set[str]:
        try:
            rows = graph.run(client, "MATCH (n) UNWIND labels(n) AS label "
                                     "RETURN DISTINCT label")
        except Exception:  # noqa: BLE001 - the graph does not exist yet
            return set()
        return {row[0] for row in rows}

    def refused() -> list[dict[str, str]]:
        # The demo sends nothing kgcelery should refuse: any dead letter fails at once.
        return [headers_of(m) for topic in (test_settings.dlq_raw_topic,
                                            test_settings.dlq_normalized_topic)
                for m in read_topic(test_settings, topic, expect=1, timeout=0.3)]

    def filled() -> bool:
        letters = refused()
        assert not letters, [(h.get("kg-reason"), h.get("kg-error", "")[:200])
                             for h in letters[:5]]
        return set(GRAPH_KINDS) <= labels()

    try:
        wait_for(filled, timeout=120, what=f"every kind in {client}'s graph")
    finally:
        stop.set()
        demo.join(60)
    registered = registry.get(client)
    assert registered is not None and registered.cluster_name == "acme-eu-west-1"
    assert not graph.run(client, "MATCH (n:Resource) WHERE n.placeholder = true "
                                 "RETURN n.id")
    assert graph.run(client, "MATCH (:Pod)-[r:SCHEDULED_ON]->(:Node) RETURN count(r)")[0][0] > 0
    assert graph.run(client, "MATCH (:Service)-[r:SELECTS]->(:Pod) RETURN count(r)")[0][0] > 0
    assert graph.run(client, "MATCH (n:Node) WHERE n.ready = true RETURN count(n)")[0][0] > 0
    assert graph.run(client, "MATCH (:PromTarget)-[r:SCRAPES]->() RETURN count(r)")[0][0] > 0
