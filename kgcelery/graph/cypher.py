"""The Cypher kgcelery writes with: one ``UNWIND $rows`` statement per batch and label.

Labels and relationship types come only from the allow-list in
:mod:`kgcelery.model.objects`; every value is a parameter. Writes are idempotent and
order-independent:

- nodes are MERGEd on stable ids; counts and last-seen times only grow, first-seen
  times only shrink;
- state (an object's status, an event's message) is taken from the newest
  observation: each row carries a version string (:func:`kgcelery.normalize.common.version`)
  and a node keeps the row with the greatest one, so ties never depend on arrival;
- a node or edge, once referenced, stays (history matters for root cause); what an
  object's current state implies (its node, its owners, the pods a service selects) is
  recomputed from that state, marked ``spec``, and retracted when the state changes.

A :class:`Scope` writes every node pattern: in a graph or database of the client's
own, nodes are keyed by ``id``; in a shared Neo4j database (tenancy ``property``) by
``(client, id)``, and every pattern carries ``client: $client``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from kgcelery.model.objects import (
    ALERT,
    EVENT,
    LABELS,
    LOG_BATCH,
    LOG_PATTERN,
    PROM_TARGET,
    RELATIONSHIPS,
    RESOURCE,
)

#: Labels whose nodes are keyed by ``id`` (a unique constraint or index on each).
KEYED_LABELS: tuple[str, ...] = (RESOURCE, EVENT, ALERT, LOG_PATTERN, LOG_BATCH, PROM_TARGET)
#: Further (label, property) lookups to index: uid references, selector matching.
#: XXX: not ``v``: FalkorDB 4.x answers a range scan over an indexed string property
#: wrongly (``n.v < $snap`` returned a node whose ``v`` is greater).
LOOKUPS: tuple[tuple[str, str], ...] = (
    (RESOURCE, "uid"), ("Pod", "namespace"), ("Service", "namespace"))


def checked_label(label: str) -> str:
    """``label`` if it is in the allow-list; anything else is a programming error."""
    if label not in LABELS:
        raise ValueError(f"label {label!r} is not in the graph model's allow-list")
    return label


def checked_relationship(rel: str) -> str:
    if rel not in RELATIONSHIPS:
        raise ValueError(f"relationship {rel!r} is not in the graph model's allow-list")
    return rel


@dataclass(frozen=True, slots=True)
class Scope:
    """How statements find a client's nodes (see the module docstring)."""

    client_key: bool = False

    def node(self, var: str, label: str, props: str = "") -> str:
        """A node pattern ``(var:Label {client: $client, <props>})``."""
        fields = (["client: $client"] if self.client_key else []) + ([props] if props else [])
        body = f" {{{', '.join(fields)}}}" if fields else ""
        return f"({var}:{checked_label(label)}{body})"

    def key(self, var: str, label: str, id_expr: str) -> str:
        """A node pattern on the key of a node: ``id`` (and ``client``)."""
        return self.node(var, label, f"id: {id_expr}")

    def object_key(self, var: str, kind_label: str, id_expr: str) -> str:
        """``(var:Resource:<Kind> {id: ...})``: the pattern that MERGEs an object.

        Both labels in the pattern, not ``ON CREATE SET var:Kind``: FalkorDB adds a
        label to an existing node four times slower than it creates a node with both.
        Equivalent, because the id names the kind and every statement that creates an
        object gives it the same labels.
        """
        pattern = self.key(var, RESOURCE, id_expr)
        if kind_label in ("", RESOURCE):
            return pattern
        return pattern.replace(f":{RESOURCE}", f":{RESOURCE}:{checked_label(kind_label)}", 1)


#: Nodes keyed by id alone: FalkorDB (graph per client), Neo4j tenancy ``database``.
OWN_GRAPH = Scope(client_key=False)
#: Nodes keyed by (client, id): Neo4j tenancy ``property``.
SHARED_GRAPH = Scope(client_key=True)


_PARAMETER = re.compile(r"\$(\w+)")
_RETURN = re.compile(r"\bRETURN\b")
_TYPED_EDGE = re.compile(r"-\[\w*:(\w+)")
_UNTYPED_EDGE = re.compile(r"-\[\w*\]")
_WRITES = re.compile(r"\b(?:MERGE|CREATE)\b")
#: Edges a part links its own objects with; no other part of a statement writes those
#: objects (writers partition them: one label's part per object).
_OWN_EDGES = frozenset({"IN_NAMESPACE"})


@lru_cache(maxsize=64)
def sittings(statements: tuple[str, ...]) -> list[tuple[int, int]]:
    """``statements`` cut into runs ``[start, end)`` that :func:`together` may join.

    XXX: FalkorDB 4.16 does not see an edge created earlier in the same statement (a
    later MERGE creates a twin, a later MATCH misses it); nodes, properties and deleted
    edges it sees. So a part begins a new run when it names a relationship type (or an
    edge of any type) that an earlier part of its run named while it MERGEd or CREATEd.
    """
    runs: list[tuple[int, int]] = []
    start, written = 0, set[str]()
    for i, statement in enumerate(statements):
        named = set(_TYPED_EDGE.findall(statement)) - _OWN_EDGES
        if written & named or (written and _UNTYPED_EDGE.search(statement)):
            runs.append((start, i))
            start, written = i, set[str]()
        if _WRITES.search(statement):
            written |= named
    return [*runs, (start, len(statements))] if statements else []


@lru_cache(maxsize=64)
def together(statements: tuple[str, ...], shared: tuple[str, ...] = ()) -> str:
    """Statements as one, in their order; the i-th's parameters renamed ``$<name><i>``
    except ``$client`` and the ``shared`` ones, which every part reads as they are.

    Only the last may RETURN, and only statements of one run of :func:`sittings` join.
    ``WITH count(*)`` between two parts ends one's rows and hands the next exactly one
    row, whatever the one before matched (nothing, too); a part's writes are done
    before the next part reads.
    """
    if len(sittings(statements)) > 1:
        raise ValueError("a statement reads edges an earlier one writes: see sittings()")
    keep = {"client", *shared}
    parts = []
    for i, statement in enumerate(statements):
        if i < len(statements) - 1 and _RETURN.search(statement):
            raise ValueError(f"only the last statement run together may return: {statement}")

        def renamed(match: re.Match[str], suffix: str = str(i)) -> str:
            name = match.group(1)
            return match.group(0) if name in keep else f"${name}{suffix}"

        parts.append(_PARAMETER.sub(renamed, statement))
    return " ".join(part if i == 0 else f"WITH count(*) AS done{i} {part}"
                    for i, part in enumerate(parts))


def grow(var: str, prop: str, value: str) -> str:
    """Assignment that keeps the greater of the stored value and ``value``."""
    return (f"{var}.{prop} = CASE WHEN {var}.{prop} IS NULL OR {value} > {var}.{prop} "
            f"THEN {value} ELSE {var}.{prop} END")


def shrink(var: str, prop: str, value: str) -> str:
    """Assignment that keeps the smaller of the stored value and ``value``."""
    return (f"{var}.{prop} = CASE WHEN {var}.{prop} IS NULL OR {value} < {var}.{prop} "
            f"THEN {value} ELSE {var}.{prop} END")


def when(flag: str, var: str, prop: str, value: str) -> str:
    """Assignment of ``value`` only where ``flag`` holds."""
    return f"{var}.{prop} = CASE WHEN {flag} THEN {value} ELSE {var}.{prop} END"


def merge_object(scope: Scope, var: str, prefix: str, label: str) -> str:
    """MERGE a Kubernetes object node named by row fields ``<prefix>id``, ``kind``,
    ``namespace``, ``name``, ``uid`` and ``uid_v`` (the uid with the greatest version
    wins: resource records over references, newer over older)."""
    r = f"r.{prefix}"
    newer_uid = f"{r}uid_v > coalesce({var}.uid_v, '')"
    return (
        f"MERGE {scope.object_key(var, label, f'{r}id')}"
        f" ON CREATE SET {var}.kind = {r}kind, {var}.name = {r}name,"
        f" {var}.namespace = {r}namespace"
        f" SET {when(newer_uid, var, 'uid', f'{r}uid')},"
        f" {when(newer_uid, var, 'uid_v', f'{r}uid_v')}"
    )


def link_namespace(scope: Scope, var: str, namespace: str) -> str:
    """Tail of a statement: ``(var)-[:IN_NAMESPACE]->(Namespace)`` where it has one."""
    ns_id = "'Namespace/' + nsname"
    return (
        # Projected, then filtered (see cypher_state._RETRACT).
        f"WITH {var}, {namespace} AS nsname, {namespace} <> '' AS namespaced "
        "WHERE namespaced "
        f"MERGE {scope.object_key('ns', 'Namespace', ns_id)} "
        "ON CREATE SET ns.kind = 'Namespace', ns.name = nsname, ns.namespace = '' "
        f"MERGE ({var})-[:IN_NAMESPACE]->(ns)"
    )


def namespace_each(scope: Scope, var: str, namespace: str) -> str:
    """``(var)-[:IN_NAMESPACE]->(Namespace)`` where it has a namespace, mid-statement.

    Every statement that can create a namespaced object links it: which statement
    creates it first depends on arrival order, and the graph must not.
    """
    ns_id = f"'Namespace/' + {namespace}"
    return (f"FOREACH (_ IN CASE WHEN {namespace} <> '' THEN [1] ELSE [] END | "
            f"MERGE {scope.object_key('ns', 'Namespace', ns_id)} ON CREATE SET "
            f"ns.kind = 'Namespace', ns.name = {namespace}, ns.namespace = '' "
            f"MERGE ({var})-[:IN_NAMESPACE]->(ns))")


@lru_cache(maxsize=64)
def merge_objects(scope: Scope, label: str) -> str:
    """Objects that signals (events, alerts) are about, once per batch, with their
    namespaces: signals then only MATCH them."""
    return (f"UNWIND $rows AS r {merge_object(scope, 'o', 'object_', label)} "
            f"{link_namespace(scope, 'o', 'r.object_namespace')}")


@lru_cache(maxsize=8)
def stale_objects(scope: Scope) -> str:
    """Which objects of ``$rows`` the graph lacks (true), or has with an older uid."""
    return (f"UNWIND $rows AS r OPTIONAL MATCH {scope.key('o', RESOURCE, 'r.object_id')} "
            # Projected, then filtered (see cypher_state._RETRACT).
            "WITH r, o IS NULL AS missing, r.object_uid_v > coalesce(o.uid_v, '') AS newer "
            "WITH r, missing, missing OR newer AS stale WHERE stale "
            "RETURN r.object_id, missing")


@lru_cache(maxsize=8)
def update_object_uids(scope: Scope) -> str:
    """A newer uid for objects the graph has (see :func:`merge_object`)."""
    newer_uid = "r.object_uid_v > coalesce(o.uid_v, '')"
    return (f"UNWIND $rows AS r MATCH {scope.key('o', RESOURCE, 'r.object_id')} "
            f"SET {when(newer_uid, 'o', 'uid', 'r.object_uid')}, "
            f"{when(newer_uid, 'o', 'uid_v', 'r.object_uid_v')}")


#: An event's state fields: its newest observation's are kept.
EVENT_PROPS = ("reason", "type", "message", "severity", "source_component", "source_host",
               "field_path", "namespace")
#: The columns of an event row as :func:`write_events` reads it (its merged fields, then
#: its state fields): a list, not a map, so
#: that FalkorDB's parameters encode in one ``orjson`` call and parse sooner (events
#: are most of what a worker writes).
EVENT_FIELDS = ("id", "v", "count", "first_seen", "last_seen", "object_id")
EVENT_COLUMNS = (*EVENT_FIELDS, *EVENT_PROPS)


def event_column(name: str) -> str:
    return f"r[{EVENT_COLUMNS.index(name)}]"


@lru_cache(maxsize=8)
def write_events(scope: Scope) -> str:
    """Events (rows of :data:`EVENT_COLUMNS`), each ABOUT its (already merged) object.
    A new event takes its row whole (the common case, and the cheaper one); a known one
    merges it (newest state wins, counts and times monotonic). In ON MATCH, ``e.v`` is
    assigned last: Neo4j applies the items in order, and the others must compare
    against the old version. Returns how many rows found their object."""
    c = event_column
    newer = f"{c('v')} > e.v"
    return (
        f"UNWIND $rows AS r MATCH {scope.key('o', RESOURCE, c('object_id'))} "
        f"MERGE {scope.key('e', EVENT, c('id'))} "
        f"ON CREATE SET {', '.join(f'e.{name} = {c(name)}' for name in EVENT_PROPS)}, "
        f"e.count = {c('count')}, e.first_seen = {c('first_seen')}, "
        f"e.last_seen = {c('last_seen')}, e.v = {c('v')} "
        f"ON MATCH SET {', '.join(when(newer, 'e', name, c(name)) for name in EVENT_PROPS)}, "
        f"{grow('e', 'count', c('count'))}, {shrink('e', 'first_seen', c('first_seen'))}, "
        f"{grow('e', 'last_seen', c('last_seen'))}, {when(newer, 'e', 'v', c('v'))} "
        "MERGE (e)-[:ABOUT]->(o) RETURN count(e)"
    )


@lru_cache(maxsize=8)
def known_events(scope: Scope) -> str:
    """Which of the event ids ``$rows`` the graph holds."""
    return f"UNWIND $rows AS id MATCH {scope.key('e', EVENT, 'id')} RETURN e.id"


@lru_cache(maxsize=8)
def create_events(scope: Scope) -> str:
    """Events the graph is known to lack (rows as :func:`write_events` takes them), each
    ABOUT its (already merged) object: what :func:`write_events` does for a new event,
    without looking for the event or its edge first (on Neo4j a fifth less work per
    event). Only for a writer no other writer of the client runs beside
    (``GraphStore.exclusive``): a twin created meanwhile would break the key's
    constraint. Returns how many rows found their object."""
    c = event_column
    # Every column but object_id: the node's id, its merged fields and its state.
    props = ", ".join(f"{name}: {c(name)}" for name in EVENT_COLUMNS if name != "object_id")
    return (f"UNWIND $rows AS r MATCH {scope.key('o', RESOURCE, c('object_id'))} "
            f"CREATE {scope.node('e', EVENT, props)} "
            "CREATE (e)-[:ABOUT]->(o) RETURN count(e)")
