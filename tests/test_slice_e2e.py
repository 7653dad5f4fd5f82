"""The thin end-to-end slice: Kafka → bridge → per-client Celery workers → FalkorDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from kgcelery import latency
from kgcelery.clients import queue_for
from kgcelery.deadletter import headers_of
from kgcelery.demo.cluster import SimulatedCluster
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.conftest import topic_of
from tests.helpers import Processes, produce, read_topic, wait_for

pytestmark = pytest.mark.integration


def _items(path: Path) -> list[dict]:
    return json.loads(path.read_text())["items"]


def _count(graph: GraphStore, client: str, query: str) -> int:
    try:
        return int(graph.run(client, query)[0][0])
    except Exception:  # noqa: BLE001 - the graph does not exist yet
        return 0


def _register(settings: Settings, *clients: str) -> None:
    produce(settings, topic_of(settings, "registry"),
            [(f"{c}::registry", {"client_id": c, "cluster_name": f"{c}-cluster",
                                 "version": "1.0", "registered_at": "2026-11-27T10:00:00Z"})
             for c in clients])


def _simulated_events(seed: int) -> list[dict]:
    cluster = SimulatedCluster(f"sim-{seed}", "sim", seed=seed)
    now = 1_790_000_000.0
    events: dict[str, dict] = {}
    for second in range(60):
        for record in cluster.tick(now + second, 50):
            if record.kind == "event":
                events[record.value["metadata"]["uid"]] = record.value  # the newest wins
    return list(events.values())


@pytest.fixture(params=["corpus", "simulator"])
def two_event_sets(request: pytest.FixtureRequest) -> tuple[list[dict], list[dict]]:
    """Real events from the corpus (skipped without it), and the simulator's (always)."""
    if request.param == "simulator":
        return _simulated_events(1), _simulated_events(2)
    corpus = request.getfixturevalue("corpus")
    return (_items(corpus / "events/troubleshoot-k3s-bundle-2025-09-11/default.json"),
            _items(corpus / "events/troubleshoot-analyzer-fixtures/message-image-pull-fail.json"))


def test_two_clients_get_exactly_their_own_events(
        test_settings: Settings, processes: Processes, graph: GraphStore,
        client_ids: list[str], two_event_sets: tuple[list[dict], list[dict]],
        broker_redis: redis.Redis) -> None:
    a, b = client_ids[:2]
    events_a, events_b = two_event_sets
    _register(test_settings, a, b)
    processes.bridge()
    processes.worker(f"{queue_for(a)},{queue_for(b)}")
    topic = topic_of(test_settings, "event")
    produce(test_settings, topic,
            [(f"{a}::event::{e['metadata']['uid']}", e) for e in events_a]
            + [(f"{b}::event::{e['metadata']['uid']}", e) for e in events_b])

    for client, events in ((a, events_a), (b, events_b)):
        expected = len(events)
        wait_for(lambda c=client, n=expected: _count(
            graph, c, "MATCH (e:Event) RETURN count(e)") == n,
            timeout=60, what=f"{expected} events in {client}'s graph")

    for client, own, other in ((a, events_a, events_b), (b, events_b, events_a)):
        ids = {row[0] for row in graph.run(client, "MATCH (e:Event) RETURN e.id")}
        assert ids == {e["metadata"]["uid"] for e in own}
        assert not ids & {e["metadata"]["uid"] for e in other}
        # Every event is ABOUT the object it names, with that object's identity.
        rows = graph.run(client, "MATCH (e:Event)-[:ABOUT]->(o:Resource) "
                                 "RETURN e.id, o.kind, o.name")
        about = {event_id: (kind, name) for event_id, kind, name in rows}
        for event in own:
            involved = event["involvedObject"]
            assert about[event["metadata"]["uid"]] == (involved["kind"], involved["name"])
        names = {row[0] for row in graph.run(client, "MATCH (o:Resource) RETURN o.name")}
        assert names >= {e["involvedObject"]["name"] for e in own}
    # Workers measured each record's produce-to-graph age.
    for client, events in ((a, events_a), (b, events_b)):
        measured = latency.histogram(broker_redis, client)
        assert sum(measured.values()) >= len(events)
        assert latency.percentiles(measured)[99] < 60
    # The objects of the two fixtures differ; nothing of one is in the other's graph.
    names_a = {row[0] for row in graph.run(a, "MATCH (o:Pod) RETURN o.name")}
    names_b = {row[0] for row in graph.run(b, "MATCH (o:Pod) RETURN o.name")}
    assert names_a and names_b and not names_a & names_b


EVENT = {"apiVersion": "v1", "kind": "Event", "count": 1, "type": "Normal", "reason": "Pulled",
         "firstTimestamp": "2019-08-30T20:43:05Z", "lastTimestamp": "2019-08-30T20:43:05Z",
         "message": "Successfully pulled image \"blang/busybox-bash\"",
         "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "hello-1567197780-mn4mv",
                            "namespace": "default", "uid": "c31fdeb8-cb66-11e9-990f-42010a800218",
                            "fieldPath": "spec.containers{c1}"},
         "metadata": {"name": "hello-1567197780-mn4mv.15bfce150bd764dd", "namespace": "default",
                      "uid": "c443d4b3-cb66-11e9-990f-42010a800218"},
         "source": {"component": "kubelet", "host": "gke-k9s-default-pool-0fa2fb89-qnkc"}}


def test_bad_keys_and_unregistered_clients_never_reach_a_graph(
        test_settings: Settings, processes: Processes, graph: GraphStore,
        client_ids: list[str]) -> None:
    good, ghost = client_ids[:2]
    event = EVENT  # events/k9s/ev.json of the corpus
    _register(test_settings, good)
    bridge = processes.bridge()
    processes.worker(queue_for(good))
    topic = topic_of(test_settings, "event")
    bad = [
        (None, event),                                   # no key at all
        ("no-separator-here", event),                    # no '::'
        ("BAD_ID!::event::1", event),                    # invalid client id
        (f"{ghost}::event::1", event),                   # never registered
        (f"{good}::event::bad-json", b"{not json"),      # undecodable
        (f"{good}::event::mismatch", {**event, "client_id": ghost}),  # claims another client
    ]
    produce(test_settings, topic, bad)
    produce(test_settings, topic, [(f"{good}::event::ok", {**event, "client_id": good})])

    wait_for(lambda: _count(graph, good, "MATCH (e:Event) RETURN count(e)") == 1,
             timeout=60, what="the one valid event in the good client's graph")
    letters = read_topic(test_settings, test_settings.dlq_raw_topic, expect=len(bad))
    reasons = sorted(headers_of(m)["kg-reason"] for m in letters)
    assert reasons == sorted(["bad-key", "bad-key", "invalid-client-id", "unregistered-client",
                              "undecodable-json", "client-id-mismatch"])
    for message in letters:
        headers = headers_of(message)
        assert headers["kg-source-topic"] == topic
        assert headers["kg-error"]
    assert bridge.alive(), "the bridge must survive bad input"
    assert _count(graph, ghost, "MATCH (n) RETURN count(n)") == 0
    assert "client_id" not in json.dumps(graph.run(good, "MATCH (e:Event) RETURN properties(e)"))
