"""Helpers for graph tests: a canonical dump of a client's graph, and record builders."""

from __future__ import annotations

from typing import Any

from kgcelery.graph import GraphStore
from kgcelery.normalize.resources import ResourceRecord, normalize_resource

#: Properties that differ between two equal graphs (wall-clock bookkeeping).
VOLATILE = {"created"}

Dump = tuple[frozenset[Any], frozenset[Any]]


def _freeze(value: Any) -> Any:
    if isinstance(value, float):
        # FalkorDB's own client returns doubles with 15 significant digits; Bolt, all.
        return round(value, 3)
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def dump(store: GraphStore, client: str) -> Dump:
    """Every node (labels, properties) and edge (from id, type, to id, properties)."""
    where = " WHERE n.client = $client" if store.client_key else ""
    nodes = store.run(client, f"MATCH (n){where} RETURN labels(n), properties(n)")
    edges = store.run(client, f"MATCH (n)-[r]->(m){where} "
                              "RETURN n.id, type(r), m.id, properties(r)")
    def fixed(labels: list[str], props: dict[str, Any]) -> dict[str, Any]:
        # The Cluster node is named after its client; graphs of two clients compare
        # equal when all else is.
        skip = VOLATILE | ({"id", "name", "client"} if "Cluster" in labels else {"client"})
        return {k: v for k, v in props.items() if k not in skip}

    # LogBatch nodes are the log ledger: their ids follow how rows were chunked.
    return (
        frozenset((tuple(sorted(labels)), _freeze(fixed(labels, dict(props))))
                  for labels, props in nodes if "LogBatch" not in labels),
        frozenset((a, rel, b, _freeze(dict(props))) for a, rel, b, props in edges),
    )


def mine(store: GraphStore) -> str:
    """The pattern that keeps a node pattern to the client's own nodes: ``(p:Pod{mine})``
    (empty where each client has a graph of its own)."""
    return " {client: $client}" if store.client_key else ""


def props_of(store: GraphStore, client: str, oid: str) -> dict[str, Any]:
    where = "{client: $client, id: $id}" if store.client_key else "{id: $id}"
    rows = store.run(client, f"MATCH (n:Resource {where}) RETURN properties(n)", {"id": oid})
    return dict(rows[0][0]) if rows else {}


def edges_of(store: GraphStore, client: str, rel: str) -> set[tuple[str, str]]:
    """(from id, to id) of the live (not gone) edges of one type."""
    where = " WHERE a.client = $client" if store.client_key else ""
    rows = store.run(client, f"MATCH (a)-[r:{rel}]->(b){where} "
                             "RETURN a.id, b.id, coalesce(r.gone, false)")
    return {(a, b) for a, b, gone in rows if not gone}


def count(store: GraphStore, client: str, label: str) -> int:
    where = " {client: $client}" if store.client_key else ""
    try:
        return int(store.run(client, f"MATCH (n:{label}{where}) RETURN count(n)")[0][0])
    except Exception:  # noqa: BLE001 - the graph does not exist yet
        return 0


def pod(name: str, at: str, *, namespace: str = "shop", uid: str | None = None,
        labels: dict[str, str] | None = None, node: str = "node-a", owner: str = "web-rs",
        op: str = "UPSERT", **extra: Any) -> dict[str, Any]:
    """A state record of a pod."""
    return {"op": op, "at": at, "kind": "Pod", "uid": uid or f"uid-{name}",
            "namespace": namespace, "name": name, "labels": labels or {"app": "web"},
            "ownerRefs": [{"kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}"}],
            "node": node, **extra}


def records(*values: Any) -> list[ResourceRecord]:
    return [record for value in values for record in normalize_resource(value)]


def difference(a: Dump, b: Dump) -> str:
    """What differs between two dumps, for assertion messages."""
    lines = [f"only in first: {item}" for part in (0, 1) for item in a[part] - b[part]]
    lines += [f"only in second: {item}" for part in (0, 1) for item in b[part] - a[part]]
    return "\n".join(sorted(lines))
