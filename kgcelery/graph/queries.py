"""The read side: graph statistics, and the timeline of one object and its surroundings.

A timeline is the first root-cause view: what happened to an object (its events,
alerts, log patterns, restarts and terminations, deletion) and to what surrounds it
(its containers, its node, its owners up the chain, the services that select it), in
time order. The queries gather; :func:`build_timeline` (pure) orders and words it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kgcelery.errors import UnknownObjectError
from kgcelery.graph.base import GraphStore
from kgcelery.graph.cypher import SHARED_GRAPH, Scope
from kgcelery.graph.writer import scope_of
from kgcelery.model.objects import LOG_BATCH, RESOURCE, parse_object_id
from kgcelery.normalize.severity import SEVERITY_RANK

#: How far up the owner chain a timeline looks (Pod <- ReplicaSet <- Deployment).
OWNER_DEPTH = 3


def _where_client(scope: Scope, var: str) -> str:
    return f" WHERE {var}.client = $client" if scope is SHARED_GRAPH else ""


def stats(store: GraphStore, client_id: str) -> dict[str, Any]:
    """Nodes per label and relationships per type (gone ones counted apart)."""
    scope = scope_of(store)
    nodes = {label: count for label, count in store.run(
        client_id, f"MATCH (n){_where_client(scope, 'n')} UNWIND labels(n) AS label "
                   "RETURN label, count(*)") if label != LOG_BATCH}
    rels: dict[str, dict[str, int]] = {}
    for rel, gone, count in store.run(
            client_id, f"MATCH (a)-[r]->(){_where_client(scope, 'a')} "
                       "RETURN type(r), coalesce(r.gone, false), count(r)"):
        entry = rels.setdefault(rel, {"count": 0, "gone": 0})
        entry["count"] += count
        entry["gone"] += count if gone else 0
    gone_objects = store.run(client_id, f"MATCH {scope.node('n', RESOURCE)} "
                                        "WHERE n.gone = true RETURN count(n)")
    return {"client": client_id, "nodes": dict(sorted(nodes.items())),
            "relationships": dict(sorted(rels.items())),
            "gone_objects": int(gone_objects[0][0]) if gone_objects else 0}


def counts(store: GraphStore, client_id: str, labels: tuple[str, ...]) -> dict[str, int]:
    """Nodes of each label in a client's graph (0 for a graph not written yet)."""
    scope = scope_of(store)
    return {label: int(rows[0][0]) if rows else 0 for label in labels
            for rows in [store.run(client_id, f"MATCH {scope.node('n', label)} "
                                              "RETURN count(n)")]}


def object_ref(text: str) -> str:
    """``pod/<namespace>/<name>`` (any kind, any case) -> the object's id."""
    parsed = parse_object_id(text.strip())
    if parsed is None:
        raise UnknownObjectError(f"{text!r} is not an object reference; write "
                                 "kind/namespace/name (pod/shop/web-1) or kind/name (node/n1)")
    kind, namespace, name = parsed
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a timeline."""

    time: float | None
    last: float | None
    role: str
    object: str
    what: str
    severity: str
    count: int
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _related(store: GraphStore, client_id: str, scope: Scope, oid: str) -> list[tuple[str, str]]:
    """(role, id) of the object and its surroundings."""
    def ids(query: str, params: dict[str, Any]) -> list[str]:
        return sorted({row[0] for row in store.run(client_id, query, params) if row[0]})

    me = scope.key("o", RESOURCE, "$id")
    related = [("self", oid)]
    related += [("container", c) for c in ids(f"MATCH {me}-[:HAS_CONTAINER]->(c) RETURN c.id",
                                              {"id": oid})]
    related += [("node", n) for n in ids(f"MATCH {me}-[e:SCHEDULED_ON]->(n) "
                                         "WHERE NOT coalesce(e.gone, false) RETURN n.id",
                                         {"id": oid})]
    frontier = [oid]
    for _ in range(OWNER_DEPTH):
        owners = ids(f"UNWIND $ids AS id MATCH {scope.key('o', RESOURCE, 'id')}<-[e:OWNS]-(w) "
                     "WHERE NOT coalesce(e.gone, false) RETURN w.id", {"ids": frontier})
        related += [("owner", w) for w in owners]
        frontier = owners
    related += [("service", s) for s in ids(f"MATCH {me}<-[e:SELECTS]-(s) "
                                            "WHERE NOT coalesce(e.gone, false) RETURN s.id",
                                            {"id": oid})]
    return related


def timeline(store: GraphStore, client_id: str, oid: str, *, limit: int = 200,
             min_severity: str = "info") -> dict[str, Any]:
    """Everything known about object ``oid`` and its surroundings, in time order."""
    scope = scope_of(store)
    found = store.run(client_id, f"MATCH {scope.key('o', RESOURCE, '$id')} "
                                 "RETURN properties(o)", {"id": oid})
    if not found:
        raise UnknownObjectError(
            f"{oid} is not in the graph of {client_id}; 'kgcelery graph stats {client_id}' "
            "shows what is there")
    related = _related(store, client_id, scope, oid)
    ids = [rid for _, rid in related]
    states = {rid: dict(props) for rid, props in store.run(
        client_id, f"UNWIND $ids AS id MATCH {scope.key('x', RESOURCE, 'id')} "
                   "RETURN x.id, properties(x)", {"ids": ids})}
    events = store.run(client_id, f"UNWIND $ids AS id MATCH {scope.key('x', RESOURCE, 'id')}"
                                  "<-[:ABOUT]-(e:Event) RETURN x.id, properties(e)", {"ids": ids})
    alerts = store.run(client_id, f"UNWIND $ids AS id MATCH {scope.key('x', RESOURCE, 'id')}"
                                  "<-[:ABOUT]-(a:Alert) RETURN x.id, properties(a)", {"ids": ids})
    logs = store.run(client_id, f"UNWIND $ids AS id MATCH {scope.key('x', RESOURCE, 'id')}"
                                "-[m:EMITTED]->(p:LogPattern) RETURN x.id, properties(m), "
                                "properties(p)", {"ids": ids})
    floor = SEVERITY_RANK.get(min_severity, 0)
    entries = [entry for entry in build_timeline(related, states, events, alerts, logs)
               if SEVERITY_RANK.get(entry.severity, 0) >= floor]
    return {"client": client_id, "object": dict(found[0][0]),
            "surroundings": [{"role": role, "id": rid} for role, rid in related[1:]],
            "timeline": [entry.as_dict() for entry in entries[-limit:]]}


def build_timeline(related: list[tuple[str, str]], states: dict[str, dict[str, Any]],
                   events: list[list[Any]], alerts: list[list[Any]],
                   logs: list[list[Any]]) -> list[Entry]:
    """Order and word what the queries found (pure, for tests)."""
    role_of = {rid: role for role, rid in reversed(related)}
    has_containers = any(role == "container" for role, _ in related)
    entries: list[Entry] = []
    for rid, state in states.items():
        role = role_of.get(rid, "?")
        # A pod's termination is its containers' (shown with their names).
        terminated = not (state.get("kind") == "Pod" and has_containers)
        if state.get("created_at"):
            entries.append(Entry(state["created_at"], None, role, rid, "created", "info", 1,
                                 f"{state.get('kind', '')} created"))
        if terminated and state.get("last_terminated_at") and state.get(
                "last_termination_reason"):
            code = state.get("last_exit_code")
            entries.append(Entry(
                state["last_terminated_at"], None, role, rid, "terminated",
                "error" if state["last_termination_reason"] not in ("Completed",) else "info",
                1, f"terminated: {state['last_termination_reason']}"
                   f"{'' if code is None else f' (exit {code})'}"
                   f"; restarts {state.get('restart_count', 0)}"))
        if state.get("gone"):
            entries.append(Entry(state.get("gone_at"), None, role, rid, "gone", "warning", 1,
                                 f"gone ({state.get('del_by', 'deleted')})"))
    for rid, event in events:
        entries.append(Entry(event.get("first_seen"), event.get("last_seen"), role_of[rid], rid,
                             "event", event.get("severity", "info"), int(event.get("count") or 1),
                             f"{event.get('reason', '')}: {event.get('message', '')}"))
    for rid, alert in alerts:
        summary = alert.get("summary") or alert.get("description") or ""
        entries.append(Entry(alert.get("starts_at"), alert.get("ends_at") or alert.get(
            "last_seen"), role_of[rid], rid, f"alert {alert.get('status', '')}",
            alert.get("severity", "warning"), 1, f"{alert.get('name', '')}: {summary}"))
    for rid, emitted, pattern in logs:
        entries.append(Entry(emitted.get("first_seen"), emitted.get("last_seen"), role_of[rid],
                             rid, "log", pattern.get("severity", "warning"),
                             int(emitted.get("count") or 0),
                             f"{pattern.get('pattern', '')}  e.g. {pattern.get('sample', '')}"))
    return sorted(entries, key=lambda e: (e.time is None, e.time or 0.0, e.role, e.object,
                                          e.summary))
