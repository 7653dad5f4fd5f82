"""The Cypher statements kgcelery writes with: one ``UNWIND $rows`` per batch and label.

Labels come only from the allow-list in :mod:`kgcelery.graph.model`; every value is a
parameter. Writes are idempotent and order-independent: nodes are MERGEd on stable
ids, counts and last-seen times only grow, first-seen times only shrink, and text
that changes over time is taken from the newest observation.
"""

from __future__ import annotations

from kgcelery.graph.model import EVENT, LABELS, RESOURCE

#: (label, property) pairs to index in every client graph.
INDEXES: tuple[tuple[str, str], ...] = (
    (RESOURCE, "id"),
    (EVENT, "id"),
    ("Alert", "id"),
    ("LogPattern", "id"),
)


def checked_label(label: str) -> str:
    """``label`` if it is in the allow-list; anything else is a programming error."""
    if label not in LABELS:
        raise ValueError(f"label {label!r} is not in the graph model's allow-list")
    return label


def _label_clause(variable: str, label: str) -> str:
    return "" if label == RESOURCE else f" SET {variable}:{checked_label(label)}"


def merge_object(variable: str, prefix: str, label: str) -> str:
    """MERGE a Kubernetes object node from row fields ``<prefix>id``, ``<prefix>kind``..."""
    r = f"r.{prefix}"
    return (
        f"MERGE ({variable}:{RESOURCE} {{id: {r}id}})"
        f" ON CREATE SET {variable}.kind = {r}kind, {variable}.name = {r}name,"
        f" {variable}.namespace = {r}namespace"
        f"{_label_clause(variable, label)}"
        f" SET {variable}.uid = CASE WHEN {r}uid IS NULL OR {r}uid = '' THEN {variable}.uid"
        f" ELSE coalesce({variable}.uid, {r}uid) END"
    )


def _grow(variable: str, prop: str, value: str) -> str:
    return (f"{variable}.{prop} = CASE WHEN {variable}.{prop} IS NULL OR {value} > "
            f"{variable}.{prop} THEN {value} ELSE {variable}.{prop} END")


def _shrink(variable: str, prop: str, value: str) -> str:
    return (f"{variable}.{prop} = CASE WHEN {variable}.{prop} IS NULL OR {value} < "
            f"{variable}.{prop} THEN {value} ELSE {variable}.{prop} END")


def write_events(object_label: str) -> str:
    """Events about objects of one label, with their objects and namespaces."""
    newer = "(e.last_seen IS NULL OR r.last_seen >= e.last_seen)"
    return (
        "UNWIND $rows AS r "
        f"{merge_object('o', 'object_', object_label)} "
        f"MERGE (e:{EVENT} {{id: r.id}}) "
        "ON CREATE SET e.reason = r.reason, e.type = r.type, e.message = r.message, "
        "e.severity = r.severity, e.source_component = r.source_component, "
        "e.source_host = r.source_host, e.field_path = r.field_path, "
        "e.namespace = r.object_namespace "
        f"SET e.message = CASE WHEN {newer} THEN r.message ELSE e.message END, "
        f"e.severity = CASE WHEN {newer} THEN r.severity ELSE e.severity END, "
        f"{_grow('e', 'count', 'r.count')}, "
        f"{_shrink('e', 'first_seen', 'r.first_seen')}, "
        f"{_grow('e', 'last_seen', 'r.last_seen')} "
        "MERGE (e)-[:ABOUT]->(o) "
        "WITH r, o WHERE r.object_namespace <> '' "
        f"MERGE (ns:{RESOURCE} {{id: 'Namespace/' + r.object_namespace}}) "
        "ON CREATE SET ns.kind = 'Namespace', ns.name = r.object_namespace SET ns:Namespace "
        "MERGE (o)-[:IN_NAMESPACE]->(ns)"
    )
