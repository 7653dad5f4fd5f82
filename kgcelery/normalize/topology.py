"""Topology records: edges between objects, and snapshots of whole clusters.

Accepted shapes:
- an edge ``{"op": "UPSERT"|"DELETE", "at", "id", "from", "to", "type"}`` with type
  ``RUNS_ON`` (pod -> node), ``SELECTS`` (service -> pod) or ``CONTROLS`` (controller
  -> controlled). ``from``/``to`` name an object by id (``Pod/ns/name``, ``Node/name``),
  as the state-watcher does (``pod:ns:name``, ``node:name`` for cluster-scoped kinds),
  by ``kind::uid`` or a bare uid, or as ``{"kind", "namespace", "name", "uid"}``;
- an edge tombstone: a null value whose key entity is the state-watcher's edge id
  ``edge:<from>-><to>``: the edge between those ends is removed (see
  :class:`EdgeRemoval`);
- a snapshot ``{"timestamp", "items": [Kubernetes objects], "complete": bool}``: every
  item is upserted as observed at ``timestamp``; a complete snapshot also marks every
  object it does not contain (and that was not seen after it) as gone at that time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kgcelery.errors import RejectedRecordError
from kgcelery.model.objects import (
    CLUSTER_SCOPED,
    TOPOLOGY_TYPES,
    canonical_kind,
    object_id,
    parse_object_id,
)
from kgcelery.model.timeparse import first_epoch
from kgcelery.normalize.common import RANK_ABSENT, RANK_DELETE, RANK_UPSERT, text, version
from kgcelery.normalize.resources import DELETE, UPSERT, ResourceRecord, normalize_resource


@dataclass(frozen=True, slots=True)
class EndpointRef:
    """One end of an edge: an object id, or only a uid (resolved in the graph)."""

    id: str
    uid: str
    kind: str


@dataclass(frozen=True, slots=True)
class EdgeRecord:
    """One observation of an edge (or of its removal)."""

    id: str
    type: str
    source: EndpointRef
    target: EndpointRef
    op: str
    at: float | None
    v: str


@dataclass(frozen=True, slots=True)
class EdgeRemoval:
    """A tombstone of an edge record: its key names the ends, not the type, so every
    topology edge between them goes (state-watcher ids name one edge per pair of ends).
    Versioned by its Kafka timestamp ``at`` when the bridge gives one; without, ``v`` is
    empty and it removes as of the newest assertion applied."""

    id: str
    source: EndpointRef
    target: EndpointRef
    at: float | None = None
    v: str = ""


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """The objects of a cluster at one time; ``absent_v`` versions "not in it"."""

    at: float
    complete: bool
    absent_v: str
    items: tuple[ResourceRecord, ...]


def _invalid(detail: str) -> RejectedRecordError:
    return RejectedRecordError("invalid-topology", detail)


def endpoint(ref: Any) -> EndpointRef:
    """Parse one end of an edge (see the module docstring for the forms)."""
    if isinstance(ref, dict):
        kind = canonical_kind(text(ref.get("kind")))
        if kind and ref.get("name"):
            return EndpointRef(object_id(kind, text(ref.get("namespace")), text(ref["name"])),
                               text(ref.get("uid")), kind)
        if ref.get("uid"):
            return EndpointRef("", text(ref["uid"]), kind)
        raise _invalid(f"edge end {ref!r} has neither kind and name nor uid")
    value = text(ref).strip()
    parsed = parse_object_id(value)
    if parsed:
        kind, namespace, name = parsed
        return EndpointRef(object_id(kind, namespace, name), "", kind)
    named = _agent_object_id(value)
    if named:
        return named
    kind, sep, uid = value.partition("::") if "::" in value else value.partition(":")
    if sep and kind and uid:
        return EndpointRef("", uid, canonical_kind(kind))
    if value and "/" not in value and ":" not in value:
        return EndpointRef("", value, "")
    raise _invalid(f"edge end {value!r} is not an object id (Kind/ns/name) nor a uid")


def _agent_object_id(value: str) -> EndpointRef | None:
    """The state-watcher's ``idFor``: ``<kind>:<namespace>:<name>``, or ``<kind>:<name>``
    for a cluster-scoped kind (Kubernetes names never hold ``:``). ``<kind>:<x>`` of a
    namespaced kind stays a uid reference (``pod:<uid>``, the agent's resource keys)."""
    if "::" in value:
        return None
    parts = value.split(":")
    if len(parts) == 3 and all(parts):
        kind = canonical_kind(parts[0])
        namespace = "" if kind in CLUSTER_SCOPED else parts[1]
        return EndpointRef(object_id(kind, namespace, parts[2]), "", kind)
    if len(parts) == 2 and all(parts) and canonical_kind(parts[0]) in CLUSTER_SCOPED:
        kind = canonical_kind(parts[0])
        return EndpointRef(object_id(kind, None, parts[1]), "", kind)
    return None


def edge_tombstone(entity: str, at: float | None = None) -> EdgeRemoval:
    """The removal a null topology value stands for, from its key ``edge:<from>-><to>``,
    produced (Kafka timestamp) at ``at``."""
    ends = entity.removeprefix("edge:") if entity.startswith("edge:") else ""
    source, arrow, target = ends.partition("->")
    if not arrow or not source or not target:
        raise RejectedRecordError(
            "unattributable-tombstone",
            f"a null topology value needs a key entity 'edge:<from>-><to>' (the "
            f"state-watcher's edge id), not {entity[:200]!r}")
    return EdgeRemoval(id=entity, source=endpoint(source), target=endpoint(target), at=at,
                       v=version(at, None, rank=RANK_DELETE, content=entity) if at else "")


def _edge(record: dict[str, Any]) -> EdgeRecord:
    edge_type = text(record.get("type")).upper()
    if edge_type not in TOPOLOGY_TYPES:
        raise _invalid(f"edge type {edge_type!r} is not one of {sorted(TOPOLOGY_TYPES)}")
    op = text(record.get("op") or UPSERT).upper()
    if op not in (UPSERT, DELETE):
        raise _invalid(f"op must be UPSERT or DELETE, not {op!r}")
    if not record.get("from") or not record.get("to"):
        raise _invalid("an edge record needs both 'from' and 'to'")
    source, target = endpoint(record["from"]), endpoint(record["to"])
    at = first_epoch(record.get("at"), record.get("timestamp"))
    edge_id = text(record.get("id")) or (
        f"{edge_type}:{source.id or source.uid}->{target.id or target.uid}")
    rank = RANK_DELETE if op == DELETE else RANK_UPSERT
    return EdgeRecord(
        id=edge_id, type=TOPOLOGY_TYPES[edge_type], source=source, target=target, op=op,
        at=at, v=version(at, None, rank=rank, content=[edge_id, edge_type, source, target]))


def _snapshot(record: dict[str, Any]) -> SnapshotRecord:
    at = first_epoch(record.get("timestamp"), record.get("at"))
    if at is None:
        raise _invalid("a snapshot needs a timestamp: it versions every object in it")
    items: list[ResourceRecord] = []
    for index, item in enumerate(record["items"]):
        try:
            items.extend(normalize_resource({"op": UPSERT, "at": at, "object": item}))
        except RejectedRecordError as error:
            # All or nothing: a complete snapshot missing an item would mark it gone.
            raise _invalid(f"snapshot item {index}: {error.detail}") from error
    return SnapshotRecord(at=at, complete=record.get("complete") is True,
                          absent_v=version(at, None, rank=RANK_ABSENT, content="snapshot"),
                          items=tuple(items))


def normalize_topology(value: Any, entity: str = "", produced: float | None = None,
                       ) -> list[EdgeRecord | EdgeRemoval | SnapshotRecord]:
    """One topology value (or a tombstone, ``None``, its key entity and Kafka timestamp
    ``produced``) to its record.

    Raises :class:`RejectedRecordError` (``invalid-topology``) for anything else.
    """
    if value is None:
        return [edge_tombstone(entity, produced)]
    if not isinstance(value, dict):
        raise _invalid(f"a topology record must be a JSON object, not {type(value).__name__}")
    if isinstance(value.get("items"), list):
        return [_snapshot(value)]
    if "type" in value and ("from" in value or "to" in value):
        return [_edge(value)]
    raise _invalid("neither an edge (type, from, to) nor a snapshot (timestamp, items); "
                   f"keys: {sorted(value)[:12]}")
