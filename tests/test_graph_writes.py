"""The write semantics, against the session's real FalkorDB: newest wins, deletions,
tombstones, snapshots, uid placeholders, implied edges, and log counts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kgcelery.graph import GraphStore
from kgcelery.graph.cypher import KEYED_LABELS
from kgcelery.graph.falkordb_store import FalkorDBStore
from kgcelery.graph.writer import write_events, write_logs
from kgcelery.graph.writer_state import write_resources, write_topology
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.events import normalize_event
from kgcelery.normalize.logs import LogLine, fold_logs
from kgcelery.normalize.resources import ResourceRecord, normalize_resource
from kgcelery.normalize.topology import normalize_topology
from kgcelery.settings import Settings
from tests.graph_helpers import count, difference, dump, edges_of, pod, props_of, records

pytestmark = pytest.mark.integration

T1, T2, T3, T4 = (f"2026-01-12T15:0{m}:00Z" for m in (1, 2, 3, 4))


def both_orders(graph: GraphStore, clients: list[str],
                steps: list[Callable[[GraphStore, str], object]]) -> str:
    """Apply ``steps`` in order to one client and reversed to another; the graphs must
    be equal. Returns the first client."""
    forward, backward = clients[:2]
    for step in steps:
        step(graph, forward)
    for step in reversed(steps):
        step(graph, backward)
    one, other = dump(graph, forward), dump(graph, backward)
    assert one == other, difference(one, other)
    return forward


def statements_of(graph: GraphStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements ``graph`` runs from now on (the store still runs them)."""
    statements: list[str] = []
    real_run = graph.run

    def run(client_id: str, query: str, params: object = None) -> object:
        statements.append(query)
        return real_run(client_id, query, params)  # type: ignore[arg-type]

    monkeypatch.setattr(graph, "run", run)
    return statements


def resources(*values: object) -> Callable[[GraphStore, str], object]:
    return lambda g, c: write_resources(g, c, records(*values))


def test_the_newest_observation_wins_in_any_order(graph: GraphStore,
                                                  client_ids: list[str]) -> None:
    client = both_orders(graph, client_ids, [
        resources(pod("web-1", T1, status="Pending", node="node-a")),
        resources(pod("web-1", T2, status="Running", node="node-b")),
    ])
    state = props_of(graph, client, "Pod/shop/web-1")
    assert (state["status"], state["node_name"], state["gone"]) == ("Running", "node-b", False)
    # The pod runs on its newest node; both nodes exist whatever the order.
    assert edges_of(graph, client, "SCHEDULED_ON") == {("Pod/shop/web-1", "Node/node-b")}
    assert count(graph, client, "Node") == 2


def test_a_late_old_update_never_revives_a_deleted_object(graph: GraphStore,
                                                          client_ids: list[str]) -> None:
    client = both_orders(graph, client_ids, [
        resources(pod("web-1", T1)), resources(pod("web-1", T2, op="DELETE"))])
    state = props_of(graph, client, "Pod/shop/web-1")
    assert state["gone"] is True and state["gone_at"] == to_epoch(T2)
    assert state["del_by"] == "delete"
    # A recreation (newer) revives it, with its new uid.
    write_resources(graph, client, records(pod("web-1", T3, uid="uid-new")))
    state = props_of(graph, client, "Pod/shop/web-1")
    assert state["gone"] is False and state["uid"] == "uid-new" and state["gone_at"] == 0.0


def test_objects_the_graph_has_are_updated_in_one_statement_whatever_their_labels(
        graph: GraphStore, client_ids: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    client = client_ids[0]

    def state(at: str, status: str) -> list[dict[str, object]]:
        return [pod("web-1", at, status=status),
                {"op": "UPSERT", "at": at, "kind": "Service", "uid": "uid-web",
                 "namespace": "shop", "name": "web", "selector": {"app": "web"}},
                {"op": "UPSERT", "at": at, "kind": "Deployment", "uid": "uid-web-d",
                 "namespace": "shop", "name": "web", "replicas": 2},
                {"op": "UPSERT", "at": at, "kind": "Node", "uid": "uid-node-a",
                 "name": "node-a"},
                {"op": "DELETE", "at": at, "kind": "ConfigMap", "uid": "uid-cm",
                 "namespace": "shop", "name": "settings"}]

    write_resources(graph, client, records(*state(T1, "Pending")))
    statements = statements_of(graph, monkeypatch)
    write_resources(graph, client, records(*state(T2, "Running")))
    upserts = [q for q in statements if "$cluster" in q]
    # Known objects of four labels and one deletion: one statement per operation, and
    # no per-label MERGE (each would be a statement).
    assert len(upserts) == 2 and not any("MERGE (n:Resource" in q for q in upserts), upserts
    assert props_of(graph, client, "Pod/shop/web-1")["status"] == "Running"
    # A new object still gets its labels.
    statements.clear()
    write_resources(graph, client, records(pod("web-2", T2)))
    assert any("MERGE (n:Resource:Pod" in q for q in statements)
    assert count(graph, client, "Pod") == 2
    assert props_of(graph, client, "ConfigMap/shop/settings")["gone"] is True


def test_tombstones_delete_by_uid_or_by_name(graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    write_resources(graph, client, records(pod("web-1", T1), pod("web-2", T1)))
    write_resources(graph, client, normalize_resource(None, "pod::uid-web-1")
                    + normalize_resource(None, "Pod/shop/web-2")
                    + normalize_resource(None, "pod::uid-unknown"))
    for name in ("web-1", "web-2"):
        state = props_of(graph, client, f"Pod/shop/{name}")
        assert state["gone"] is True and state["del_by"] == "tombstone"
        assert state["gone_at"] == to_epoch(T1)  # as of the last observation
    # Replaying the tombstone changes nothing; a newer update revives.
    before = dump(graph, client)
    write_resources(graph, client, normalize_resource(None, "pod::uid-web-1"))
    assert dump(graph, client) == before
    write_resources(graph, client, records(pod("web-1", T2)))
    assert props_of(graph, client, "Pod/shop/web-1")["gone"] is False


def snapshot(at: str, *names: str) -> Callable[[GraphStore, str], object]:
    items = [{"kind": "Pod", "metadata": {"name": n, "namespace": "shop", "uid": f"uid-{n}",
                                          "resourceVersion": "7"}} for n in names]
    return lambda g, c: write_topology(g, c, normalize_topology(
        {"timestamp": at, "complete": True, "items": items}))


def test_a_complete_snapshot_marks_what_it_lacks_as_gone(graph: GraphStore,
                                                         client_ids: list[str]) -> None:
    client = both_orders(graph, client_ids, [
        resources(pod("old", T1), pod("kept", T1)),
        snapshot(T2, "kept"),
        resources(pod("late-old", T1)),    # seen before the snapshot, not in it
        resources(pod("new", T3)),         # created after the snapshot
    ])
    gone = {name: props_of(graph, client, f"Pod/shop/{name}")["gone"]
            for name in ("old", "kept", "late-old", "new")}
    assert gone == {"old": True, "kept": False, "late-old": True, "new": False}
    assert props_of(graph, client, "Pod/shop/old")["gone_at"] == to_epoch(T2)
    assert props_of(graph, client, "Pod/shop/old")["del_by"] == "snapshot"


def edge(at: str, source: str, target: str, kind: str = "RUNS_ON",
         op: str = "UPSERT") -> Callable[[GraphStore, str], object]:
    return lambda g, c: write_topology(g, c, normalize_topology(
        {"op": op, "at": at, "from": source, "to": target, "type": kind}))


def test_a_uid_only_edge_waits_on_a_placeholder_that_the_object_adopts(
        graph: GraphStore, client_ids: list[str]) -> None:
    client = both_orders(graph, client_ids, [
        edge(T1, "pod::uid-web-1", "Node/node-z"),
        edge(T1, "uid-rs-9", "uid-web-1", "CONTROLS"),
        resources(pod("web-1", T2, node="node-z")),
    ])
    assert count(graph, client, "Resource") == len(
        {"Pod/shop/web-1", "Node/node-z", "ReplicaSet/shop/web-rs", "Namespace/shop",
         "uid:uid-rs-9"})
    assert edges_of(graph, client, "SCHEDULED_ON") == {("Pod/shop/web-1", "Node/node-z")}
    # The owner is still known only by uid: its placeholder keeps the edge.
    assert ("uid:uid-rs-9", "Pod/shop/web-1") in edges_of(graph, client, "OWNS")
    placeholders = graph.run(client, "MATCH (n:Resource) WHERE n.placeholder = true "
                                     "RETURN n.id, n.uid")
    assert placeholders == [["uid:uid-rs-9", "uid-rs-9"]]


def test_a_removed_edge_stays_removed_whatever_the_order(graph: GraphStore,
                                                         client_ids: list[str]) -> None:
    client = both_orders(graph, client_ids, [
        edge(T1, "Service/shop/web", "Pod/shop/web-1", "SELECTS"),
        edge(T2, "Service/shop/web", "Pod/shop/web-1", "SELECTS", op="DELETE"),
    ])
    assert edges_of(graph, client, "SELECTS") == set()


def service(at: str, selector: dict[str, str]) -> dict[str, object]:
    return {"op": "UPSERT", "at": at, "kind": "Service", "namespace": "shop", "name": "web",
            "serviceSelector": selector}


def test_service_selection_follows_labels_and_selectors(graph: GraphStore,
                                                        client_ids: list[str]) -> None:
    client = both_orders(graph, client_ids, [
        resources(service(T1, {"app": "web"})),
        resources(pod("web-1", T1, labels={"app": "web"}), pod("db-1", T1, labels={"app": "db"})),
        resources(pod("web-1", T2, labels={"app": "web", "canary": "yes"})),
        resources(pod("db-1", T3, labels={"app": "db", "tier": "x"})),
    ])
    assert edges_of(graph, client, "SELECTS") == {("Service/shop/web", "Pod/shop/web-1")}
    # Relabel the pod: the service no longer selects it.
    write_resources(graph, client, records(pod("web-1", T4, labels={"app": "other"})))
    assert edges_of(graph, client, "SELECTS") == set()
    # Change the selector: it selects the db pod.
    write_resources(graph, client, records(service(T4, {"app": "db"})))
    assert edges_of(graph, client, "SELECTS") == {("Service/shop/web", "Pod/shop/db-1")}


def test_a_batchs_implied_edges_take_two_statements_and_are_never_twinned(
        graph: GraphStore, client_ids: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The edges a batch's state implies and the search for placeholders are joined
    into two statements (writer.run_together), cut where FalkorDB would not see an
    edge the same statement created: here the services' selection creates the SELECTS
    edge that the pods' selection then MERGEs, a twin if it ran in the same statement."""
    client = client_ids[0]

    def batch(at: str) -> list[ResourceRecord]:
        return records(service(at, {"app": "web"}), pod("web-1", at, labels={"app": "web"}),
                       pod("web-2", at, labels={"app": "web"}))

    write_resources(graph, client, batch(T1))
    statements = statements_of(graph, monkeypatch)
    write_resources(graph, client, batch(T2))
    written = list(statements)
    for rel, expected in (("SELECTS", 2), ("SCHEDULED_ON", 2), ("OWNS", 2)):
        rows = graph.run(client, f"MATCH ()-[e:{rel}]->() RETURN count(e)")
        assert rows == [[expected]], (rel, rows)
    assert edges_of(graph, client, "SELECTS") == {
        ("Service/shop/web", "Pod/shop/web-1"), ("Service/shop/web", "Pod/shop/web-2")}
    joined = [q for q in written if "WITH count(*) AS done" in q]
    # The update of known objects, the read of nodes and owners, the joined two.
    assert len(joined) == 2 and len(written) == 4, written


def test_an_event_before_its_object_links_to_the_node_the_object_fills(
        graph: GraphStore, client_ids: list[str]) -> None:
    event = {"metadata": {"uid": "ev-1", "namespace": "shop"}, "reason": "BackOff",
             "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1",
                                "uid": "uid-from-event"}, "lastTimestamp": T3, "count": 3}
    client = both_orders(graph, client_ids, [
        lambda g, c: write_events(g, c, normalize_event(event)),
        resources(pod("web-1", T1, uid="uid-from-resource")),
    ])
    assert graph.run(client, "MATCH (e:Event)-[:ABOUT]->(p:Pod) RETURN e.id, p.id, p.uid") == [
        ["ev-1", "Pod/shop/web-1", "uid-from-resource"]]  # resource records own the uid


def test_events_about_objects_dropped_behind_the_writers_back_are_still_linked(
        graph: GraphStore, client_ids: list[str]) -> None:
    """The writer remembers which objects a graph holds (kgcelery.graph.known); when
    another process drops the graph, the short match count makes it write them again."""
    client = client_ids[0]
    first, second = ({"metadata": {"uid": uid, "namespace": "shop"}, "reason": "BackOff",
                      "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1"},
                      "lastTimestamp": T3} for uid in ("ev-1", "ev-2"))
    write_events(graph, client, normalize_event(first))
    assert len(graph.known_objects) >= 1
    graph.run(client, "MATCH (n) DETACH DELETE n")  # as another process's drop would
    write_events(graph, client, normalize_event(second))
    assert edges_of(graph, client, "ABOUT") == {("ev-2", "Pod/shop/web-1")}
    assert edges_of(graph, client, "IN_NAMESPACE") == {("Pod/shop/web-1", "Namespace/shop")}


def test_log_counts_add_up_once_per_batch(graph: GraphStore, client_ids: list[str]) -> None:
    client = client_ids[0]
    lines = [LogLine("shop", "web-1", "web", "", "error", 10.0 + i, f"timeout after {i}s")
             for i in range(3)]
    lines.append(LogLine("shop", "web-1", "web", "", "info", 9.0, "GET / 200"))
    for batch in ("b1", "b1", "b2"):  # b1 is redelivered; b2 is new data
        write_logs(graph, client, fold_logs(lines), batch)
    rows = graph.run(client, "MATCH (c:Container)-[e:EMITTED]->(p:LogPattern) "
                             "RETURN c.log_lines, c.info_lines, e.count, p.count, p.pattern, "
                             "p.sample, p.first_seen, p.last_seen")
    assert rows == [[8, 2, 6, 6, "timeout after <num>s", "timeout after 0s", 10.0, 12.0]]
    assert edges_of(graph, client, "HAS_CONTAINER") == {("Pod/shop/web-1",
                                                         "Container/shop/web-1/web")}


def test_log_emitters_are_linked_by_the_batch_that_first_counts_their_lines(
        graph: GraphStore, client_ids: list[str]) -> None:
    """A container first seen in logs gets its pod and namespace; later batches only add
    to its counts (they do not MERGE links again: the edge removed by hand below stays
    removed); a graph dropped behind the writer's back is linked again, since what
    decides is the graph (no log lines yet), not the writer's memory."""
    client = client_ids[0]

    def batch(name: str, *pods: str) -> None:
        write_logs(graph, client, fold_logs(
            [LogLine("shop", pod, "web", "", "info", 9.0, "GET / 200") for pod in pods]
            + [LogLine("shop", "web-1", "", "", "info", 9.0, "pod line")]), name)

    batch("b1", "web-1", "web-2")
    linked = {("Pod/shop/web-1", "Container/shop/web-1/web"),
              ("Pod/shop/web-2", "Container/shop/web-2/web")}
    assert edges_of(graph, client, "HAS_CONTAINER") == linked
    assert edges_of(graph, client, "IN_NAMESPACE") == {
        ("Pod/shop/web-1", "Namespace/shop"), ("Pod/shop/web-2", "Namespace/shop")}
    assert graph.run(client, "MATCH ()-[e:IN_NAMESPACE]->() RETURN count(e)") == [[2]]
    graph.run(client, "MATCH (:Pod {name: 'web-2'})-[e:HAS_CONTAINER]->() DELETE e")
    batch("b2", "web-1", "web-2", "web-3")
    assert edges_of(graph, client, "HAS_CONTAINER") == (
        linked - {("Pod/shop/web-2", "Container/shop/web-2/web")}
        | {("Pod/shop/web-3", "Container/shop/web-3/web")})
    assert graph.run(client, "MATCH (c:Container {name: 'web'}) RETURN sum(c.log_lines)") == [
        [5]]
    graph.run(client, "MATCH (n) DETACH DELETE n")  # as another process's drop would
    batch("b3", "web-2")
    assert edges_of(graph, client, "HAS_CONTAINER") == {
        ("Pod/shop/web-2", "Container/shop/web-2/web")}
    assert edges_of(graph, client, "IN_NAMESPACE") == {
        ("Pod/shop/web-2", "Namespace/shop"), ("Pod/shop/web-1", "Namespace/shop")}


def test_awkward_values_survive_the_parameter_encoding(graph: GraphStore,
                                                       client_ids: list[str]) -> None:
    client = client_ids[0]
    values = ["a\nb\tc", 'quote " and \\ back', "ünï 🚀", "\\n literal", "it's", "`tick`",
              "$client", "CYPHER x=1", "", "x" * 5000]
    rows = graph.run(client, "UNWIND $rows AS r RETURN r.s, r.f, r.b, r.n, r.l",
                     {"rows": [{"s": v, "f": 1.5e-07, "b": True, "n": None, "l": [v, 1]}
                               for v in values]})
    assert [row[0] for row in rows] == values
    assert all(row[1:] == [1.5e-07, True, None, [row[0], 1]] for row in rows)


@pytest.mark.parametrize("value", [
    "a\nb\tc\rd\be\ff", 'quote " and \\ back', "ünï 🚀 日本", "\\u00e9 literal", "it's",
    "ctl \x01 \x1f \x7f", "\u2028", "", 2**63 - 1, -(2**63), 1e20, -0.0, 1.5e-07,
    True, None, float("nan")])
def test_awkward_values_survive_the_rows_encoding(graph: GraphStore, client_ids: list[str],
                                                  value: object) -> None:
    """Rows of lists go as orjson's JSON, or by cypher_literal when JSON would differ."""
    client = client_ids[0]
    if isinstance(value, float) and value != value:  # Cypher has no NaN: null, both ways
        assert graph.run(client, "UNWIND $rows AS r RETURN r[0], r[1].x",
                         {"rows": [[value, {"x": value}]]}) == [[None, None]]
        return
    got = graph.run(client, "UNWIND $rows AS r RETURN r[0], r[1]",
                    {"rows": [[value, 1], ["x", value]]})
    assert got == [[value, 1], ["x", value]]
    assert [type(cell) for row in got for cell in row] == [type(value), int, str, type(value)]


def test_falkordb_writes_begin_once_a_graphs_indexes_are_built(
        tansu_stack: Settings, client_ids: list[str]) -> None:
    """Indexes are built in the background, and writes while a graph's indexes changed
    are our reading of a FalkorDB 4.16 crash: ``ensure_schema`` returns only when every
    index is built (docs/GRAPH.md)."""
    store = FalkorDBStore(tansu_stack.graph_uri)
    client = client_ids[0]
    try:  # enough nodes that building the indexes takes a while
        store.run(client, "UNWIND range(1, 200000) AS i CREATE (:Resource:Pod "
                          "{id: toString(i), uid: toString(i), namespace: 'ns'})")
        store.ensure_schema(client)
        statuses = [row[0] for row in store.run(client, "CALL db.indexes() YIELD status "
                                                        "RETURN status")]
        assert len(statuses) >= len(KEYED_LABELS) and set(statuses) == {"OPERATIONAL"}
    finally:
        store.drop(client)
        store.close()
