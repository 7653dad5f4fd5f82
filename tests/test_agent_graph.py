"""The kg agent's records (built as its Go code and Vector pipelines build them) in the
real FalkorDB, through the workers' own normalize + write code (``tasks.KINDS``), and
one run through real Celery workers: topology by name whatever arrives first, a pod
re-created under its name, edge tombstones, one Alert from the raw and the normalized
copies, scrape targets, and replays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from kgcelery.bridge.routing import explode_alerts
from kgcelery.graph import GraphStore
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.topology import endpoint
from kgcelery.settings import Settings
from kgcelery.tasks import KINDS
from tests import corpus_data
from tests import statewatcher_records as sw
from tests.agent_alert_records import PAYLOAD, receiver_records, vector_twins
from tests.graph_helpers import difference, dump, edges_of, props_of
from tests.ingest_helpers import ingest_worker, send, wait_stable

pytestmark = pytest.mark.integration

T1, T2, T3, T4 = (f"2026-03-01T10:0{m}:00.123456789Z" for m in (1, 2, 3, 4))
Pair = tuple[str, Any]


def epoch(stamp: str) -> float:
    return to_epoch(stamp) or 0.0


def apply(graph: GraphStore, client: str, kind: str, pairs: list[Pair],
          produced: str | None = None) -> None:
    """One batch of (key entity, value) as a worker runs it (normalize, then write),
    produced (its Kafka timestamp) at ``produced``."""
    handler = KINDS[kind]
    at = epoch(produced) if produced else None
    records = [r for entity, value in pairs
               for r in handler.normalize(orjson.loads(orjson.dumps(value)), entity, at)]
    handler.write(graph, client, records, f"{kind}:{len(pairs)}")


def count(graph: GraphStore, client: str, query: str,
          params: dict[str, Any] | None = None) -> int:
    return int(graph.run(client, query, params or {})[0][0])


def _orphans(graph: GraphStore, client: str, edges: list[Pair],
             kinds: tuple[str, ...] = ("Pod", "Node", "Service", "Deployment", "DaemonSet")) -> int:
    """Placeholders, and objects of ``kinds`` (all recorded) that ``edges`` name but no
    resource record reached (a separate node: the issue's 45 orphans)."""
    named = sorted({endpoint(value[end]).id or "?" for _, value in edges if value
                    for end in ("from", "to")})
    return count(graph, client, "MATCH (n:Resource) WHERE n.placeholder = true OR "
                 f"(n.kind IN {list(kinds)!r} AND n.v IS NULL AND n.id IN $named) "
                 "RETURN count(n)", {"named": named}) + named.count("?")


def test_k3s_edges_before_objects_land_on_the_objects(graph: GraphStore, client_ids: list[str],
                                                      corpus: Path) -> None:
    bundle = corpus_data.k3s(corpus)
    resources, edges = sw.objects(bundle.resources, T1)
    assert len(edges) > 30 and len(resources) > 25
    first, second, twice = client_ids[:3]
    apply(graph, first, "topology", edges)
    apply(graph, first, "resource", resources)
    apply(graph, second, "resource", resources)
    apply(graph, second, "topology", edges)
    for _ in range(2):
        apply(graph, twice, "topology", edges)
        apply(graph, twice, "resource", resources)
    assert _orphans(graph, first, edges) == 0
    one, other = dump(graph, first), dump(graph, second)
    assert one == other, difference(one, other)
    again = dump(graph, twice)
    assert one == again, difference(one, again)
    pods = [r for r in bundle.resources if r.get("kind") == "Pod"]
    scheduled = {(f"Pod/{p['metadata']['namespace']}/{p['metadata']['name']}",
                  f"Node/{p['spec']['nodeName']}") for p in pods if p["spec"].get("nodeName")}
    assert edges_of(graph, first, "SCHEDULED_ON") == scheduled
    crashing = next(p for p in pods if p["metadata"]["name"].startswith("backend-api-"))
    state = props_of(graph, first, f"Pod/default/{crashing['metadata']['name']}")
    expected = sum(s["restartCount"] for s in crashing["status"]["containerStatuses"])
    assert state["restart_count"] == expected > 0
    assert state["uid"] == crashing["metadata"]["uid"]
    [node] = [r for r in bundle.resources if r.get("kind") == "Node"]
    assert props_of(graph, first, f"Node/{node['metadata']['name']}")["ready"] is True


def _pod(uid: str, node: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {
        "name": "db-0", "namespace": "shop", "uid": uid, "labels": labels or {"app": "db"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "db-rs", "uid": "rs"}]},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "containerStatuses": [{"ready": True, "restartCount": 1}]}}


SERVICE = {"kind": "Service", "metadata": {"name": "db", "namespace": "shop", "uid": "svc"},
           "spec": {"type": "ClusterIP", "selector": {"app": "db"}, "clusterIP": "10.43.0.5",
                    "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}]}}


def _recreation() -> list[tuple[str, list[Pair], str]]:
    """A pod deleted and re-created under its name on another node, as the agent sends
    it: edges before each record (``pushPod``), edge tombstones then the resource
    tombstone (``deletePod``, which leaves RUNS_ON alone)."""
    old, new = _pod("uid-old", "node-1"), _pod("uid-new", "node-2")
    (old_key, old_rec), old_edges = sw.pod(old, T1)
    (svc_key, svc_rec), svc_edges = sw.service(SERVICE, T1, [old])
    (new_key, new_rec), new_edges = sw.pod(new, T3)
    _, new_svc_edges = sw.service(SERVICE, T3, [new])
    controls = sw.edge_id("replicaset:shop:db-rs", "pod:shop:db-0")
    selects = sw.edge_id("service:shop:db", "pod:shop:db-0")
    return [("topology", old_edges + svc_edges, T1),
            ("resource", [(old_key, old_rec), (svc_key, svc_rec)], T1),
            ("topology", [(controls, None), (selects, None)], T2),
            ("resource", [(old_key, None)], T2),
            ("topology", new_edges + new_svc_edges, T3), ("resource", [(new_key, new_rec)], T3)]


def test_a_pod_recreated_under_its_name_is_one_node_with_the_new_uid(
        graph: GraphStore, client_ids: list[str]) -> None:
    steps = _recreation()
    client = client_ids[0]
    for kind, pairs, produced in steps:
        apply(graph, client, kind, pairs, produced)
    state = props_of(graph, client, "Pod/shop/db-0")
    assert (state["uid"], state["gone"], state["node_name"]) == ("uid-new", False, "node-2")
    assert count(graph, client, "MATCH (p:Pod) RETURN count(p)") == 1
    # RUNS_ON to node-1 was never tombstoned by the agent: superseded by the newer pod.
    assert edges_of(graph, client, "SCHEDULED_ON") == {("Pod/shop/db-0", "Node/node-2")}
    assert edges_of(graph, client, "OWNS") == {("ReplicaSet/shop/db-rs", "Pod/shop/db-0")}
    assert edges_of(graph, client, "SELECTS") == {("Service/shop/db", "Pod/shop/db-0")}
    assert _orphans(graph, client, [p for _, pairs, _ in steps for p in pairs
                                     if p[1] and "from" in p[1]], ("Pod", "Service")) == 0
    # A replay of everything changes nothing.
    before = dump(graph, client)
    for kind, pairs, produced in steps:
        apply(graph, client, kind, pairs, produced)
    after = dump(graph, client)
    assert before == after, difference(before, after)


def test_a_deleted_pod_is_gone_until_recreated(graph: GraphStore,
                                               client_ids: list[str]) -> None:
    client = client_ids[0]
    for kind, pairs, produced in _recreation()[:4]:
        apply(graph, client, kind, pairs, produced)
    state = props_of(graph, client, "Pod/shop/db-0")
    assert (state["uid"], state["gone"], state["del_by"]) == ("uid-old", True, "tombstone")
    assert state["gone_at"] == pytest.approx(epoch(T2))
    # The old uid's tombstone arriving after the new pod leaves the new pod alone.
    apply(graph, client, "resource", _recreation()[5][1], T3)
    apply(graph, client, "resource", _recreation()[3][1], T2)
    assert props_of(graph, client, "Pod/shop/db-0")["gone"] is False


def test_old_runs_on_arriving_after_the_new_pod_stays_gone(graph: GraphStore,
                                                           client_ids: list[str]) -> None:
    client = client_ids[0]
    steps = _recreation()
    for kind, pairs, produced in reversed(steps):
        apply(graph, client, kind, pairs, produced)
    assert edges_of(graph, client, "SCHEDULED_ON") == {("Pod/shop/db-0", "Node/node-2")}
    assert props_of(graph, client, "Pod/shop/db-0")["uid"] == "uid-new"


def test_an_edge_tombstone_removes_the_edge_its_key_names(graph: GraphStore,
                                                          client_ids: list[str]) -> None:
    client = client_ids[0]
    service_only = {**SERVICE, "spec": {**SERVICE["spec"], "selector": {}}}
    pod = _pod("u1", "node-1")
    (pod_key, pod_rec), pod_edges = sw.pod(pod, T1)
    (svc_key, svc_rec), _ = sw.service(service_only, T1, [])
    selects = sw.edge_id("service:shop:db", "pod:shop:db-0")
    asserted = {"op": "UPSERT", "at": T1, "client_id": "af-9", "cluster": "af-9",
                "id": selects, "from": "service:shop:db", "to": "pod:shop:db-0",
                "type": "SELECTS"}
    apply(graph, client, "resource", [(pod_key, pod_rec), (svc_key, svc_rec)])
    apply(graph, client, "topology", [*pod_edges, (selects, asserted)])
    assert edges_of(graph, client, "SELECTS") == {("Service/shop/db", "Pod/shop/db-0")}
    apply(graph, client, "topology", [(selects, None)])
    assert edges_of(graph, client, "SELECTS") == set()
    before = dump(graph, client)
    apply(graph, client, "topology", [(selects, None)])  # replayed: no change
    assert dump(graph, client) == before
    # Removal is marked, not deleted; the old assertion replayed cannot revive it.
    apply(graph, client, "topology", [(selects, asserted)])
    assert edges_of(graph, client, "SELECTS") == set()
    assert count(graph, client, "MATCH ()-[e:SELECTS]->() WHERE e.gone RETURN count(e)") == 1
    # A newer assertion does.
    apply(graph, client, "topology", [(selects, {**asserted, "at": T2})])
    assert edges_of(graph, client, "SELECTS") == {("Service/shop/db", "Pod/shop/db-0")}
    # A tombstone of an edge nobody asserted is a no-op.
    apply(graph, client, "topology", [(sw.edge_id("pod:shop:x", "node:node-9"), None)])
    assert count(graph, client, "MATCH (n:Resource {id: 'Node/node-9'}) RETURN count(n)") == 0


def _alert_ids(graph: GraphStore, client: str) -> list[tuple[str, str, str]]:
    return sorted(tuple(row) for row in graph.run(
        client, "MATCH (a:Alert) OPTIONAL MATCH (a)-[:ABOUT]->(o) "
                "RETURN a.id, a.status, coalesce(o.id, '')"))


def test_one_alert_from_the_raw_payload_and_its_normalized_twin(
        graph: GraphStore, client_ids: list[str]) -> None:
    raw, twin, both, reverse = client_ids[:4]
    exploded = [("g", alert) for alert in explode_alerts(PAYLOAD) or []]
    twins = [("g", record) for record in vector_twins(PAYLOAD, T2)]
    apply(graph, raw, "alert", exploded)
    apply(graph, twin, "event", twins)
    apply(graph, both, "alert", exploded)
    apply(graph, both, "event", twins)
    apply(graph, reverse, "event", twins)
    apply(graph, reverse, "alert", exploded)
    assert len(_alert_ids(graph, both)) == 2
    graphs = [dump(graph, client) for client in (raw, twin, both, reverse)]
    for other in graphs[1:]:
        assert graphs[0] == other, difference(graphs[0], other)
    receivers = graph.run(both, "MATCH (a:Alert) RETURN DISTINCT a.receiver")
    assert receivers == [["kg-rca"]]


def test_alert_receiver_signals_are_alerts_about_their_subject(
        graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    first = [("af-9::e1", r) for r in receiver_records(PAYLOAD, T1)]
    repeat = [("af-9::e2", r) for r in receiver_records(PAYLOAD, T3)]
    apply(graph, client, "alert", first)
    apply(graph, client, "alert", repeat)
    apply(graph, client, "alert", first)
    rows = graph.run(client, "MATCH (a:Alert)-[:ABOUT]->(o) "
                             "RETURN o.id, a.name, a.severity, a.source, a.starts_at, a.last_seen "
                             "ORDER BY o.id")
    assert [row[:4] for row in rows] == [
        ["Pod/shop/web-1", "KubePodCrashLooping", "critical", "alert-receiver"],
        ["Pod/shop/web-2", "KubePodCrashLooping", "critical", "alert-receiver"]]
    assert rows[0][4] < rows[0][5]


def _targets() -> list[Pair]:
    return [
        sw.target({"job": "web", "namespace": "shop", "service": "web", "pod": "web-1",
                   "instance": "10.42.0.7:8080", "endpoint": "http"}, T1, health="down",
                  scrape_url="http://10.42.0.7:8080/metrics",
                  last_scrape="2026-03-01T10:00:58.5Z", last_error="connection refused"),
        sw.target({"job": "node-exporter", "node": "node-1", "instance": "10.0.0.1:9100"},
                  T1, scrape_url="http://10.0.0.1:9100/metrics",
                  last_scrape="2026-03-01T10:00:59Z"),
    ]


def test_prometheus_targets_scrape_their_objects_and_go_on_tombstones(
        graph: GraphStore, client_ids: list[str]) -> None:
    client, twice = client_ids[:2]
    (web_key, web), node_target = _targets()
    pod_pair, _ = sw.pod(_pod("u1", "node-1"), T1)
    for target in (client, twice):
        apply(graph, target, "target", [(web_key, web), node_target])
        apply(graph, target, "resource", [pod_pair])
    apply(graph, twice, "target", [(web_key, web), node_target])
    assert dump(graph, client) == dump(graph, twice)
    rows = graph.run(client, "MATCH (t:PromTarget) RETURN t.id, t.health, t.last_error, "
                             "t.scrape_url, t.job, t.gone ORDER BY t.id")
    assert rows == [
        ["PromTarget/af-9|node-exporter|||10.0.0.1:9100", "up", "",
         "http://10.0.0.1:9100/metrics", "node-exporter", False],
        ["PromTarget/af-9|web|shop|web|10.42.0.7:8080", "down", "connection refused",
         "http://10.42.0.7:8080/metrics", "web", False]]
    assert edges_of(graph, client, "SCRAPES") == {
        ("PromTarget/af-9|web|shop|web|10.42.0.7:8080", "Pod/shop/web-1"),
        ("PromTarget/af-9|web|shop|web|10.42.0.7:8080", "Service/shop/web"),
        ("PromTarget/af-9|node-exporter|||10.0.0.1:9100", "Node/node-1")}
    # Newer: healthy, and its labels name another pod.
    relabeled = {**web, "at": T2, "health": "up", "lastError": "",
                 "labels": {**web["labels"], "pod": "web-2"}}
    apply(graph, client, "target", [(web_key, relabeled)])
    apply(graph, client, "target", [(web_key, web)])  # late old observation
    [[health]] = graph.run(client, "MATCH (t:PromTarget {id: $id}) RETURN t.health",
                           {"id": f"PromTarget/{web_key}"})
    assert health == "up"
    assert ("PromTarget/" + web_key, "Pod/shop/web-2") in edges_of(graph, client, "SCRAPES")
    assert ("PromTarget/" + web_key, "Pod/shop/web-1") not in edges_of(graph, client, "SCRAPES")
    apply(graph, client, "target", [(web_key, None)])
    [[gone, by]] = graph.run(client, "MATCH (t:PromTarget {id: $id}) RETURN t.gone, t.del_by",
                             {"id": f"PromTarget/{web_key}"})
    assert (gone, by) == (True, "tombstone")


def test_agent_records_through_real_workers(stack_settings: Settings, tmp_path: Path,
                                            graph: GraphStore, client_ids: list[str],
                                            corpus: Path) -> None:
    """The k3s corpus as the agent sends it, edges first, with targets and alerts, run
    by a real Celery worker: no orphans, fields, targets, one Alert per episode."""
    client = client_ids[0]
    bundle = corpus_data.k3s(corpus)
    resources, edges = sw.objects(bundle.resources, T1)

    def origins(topic: str, pairs: list[Pair]) -> list[list[Any]]:
        return [[topic, 0, i, entity, 0] for i, (entity, _) in enumerate(pairs)]

    twins = [("g", r) for r in vector_twins(PAYLOAD, T2)]
    raw = [("g", a) for a in explode_alerts(PAYLOAD) or []]
    tombstone = [(sw.edge_id(edges[0][1]["from"], edges[0][1]["to"]), None)]
    with ingest_worker(stack_settings, tmp_path, [client]) as (_, app):
        for kind, topic, pairs in (("topology", "state.k8s.topology", edges),
                                   ("target", "state.prom.targets", _targets()),
                                   ("event", "events.normalized", twins),
                                   ("alert", "raw.prom.alerts", raw),
                                   ("resource", "state.k8s.resource", resources)):
            send(app, kind, client, [v for _, v in pairs], origins(topic, pairs))
        wait_stable(graph, client, "MATCH (n:Resource) WHERE n.v IS NOT NULL RETURN count(n)",
                    lambda n: n == len(resources), what="every resource record")
        send(app, "topology", client, [None], origins("state.k8s.topology", tombstone))
        wait_stable(graph, client, "MATCH ()-[e]->() WHERE e.edge_op = 'DELETE' "
                    "RETURN count(e)", lambda n: n == 1, what="the edge tombstone")
    assert _orphans(graph, client, edges) == 0
    assert count(graph, client, "MATCH (a:Alert) RETURN count(a)") == 2
    assert count(graph, client, "MATCH (t:PromTarget) RETURN count(t)") == 2
    assert count(graph, client, "MATCH (n:Node) WHERE n.ready RETURN count(n)") == 1


def test_a_runs_on_by_uid_adopted_by_a_newer_pod_elsewhere_is_superseded(
        graph: GraphStore, client_ids: list[str]) -> None:
    """Found by the idempotency property: the placeholder's edge, adopted by the pod,
    must be judged against the pod's state as write_edges judges it."""
    edge = {"op": "UPSERT", "at": T1, "type": "RUNS_ON", "from": "pod::uid-p0", "to": "Node/n1"}
    pod = {"op": "UPSERT", "at": T2, "kind": "Pod", "namespace": "shop", "name": "p0",
           "uid": "uid-p0", "node": "n0"}
    first, second = client_ids[:2]
    apply(graph, first, "topology", [("", edge)])
    apply(graph, first, "resource", [("", pod)])
    apply(graph, second, "resource", [("", pod)])
    apply(graph, second, "topology", [("", edge)])
    for client in (first, second):
        assert edges_of(graph, client, "SCHEDULED_ON") == {("Pod/shop/p0", "Node/n0")}
    assert dump(graph, first) == dump(graph, second)
