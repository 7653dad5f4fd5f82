"""Write resource, topology and scrape target records (object state, the edges it
implies, edge records and their tombstones, Prometheus targets and what they scrape).

Per batch: the objects (those the graph has in one statement, new ones one statement
per label), tombstones, then what their current state implies (scheduling, owners,
service selection, containers) and the search for placeholders of uids that now have
their object, joined into two statements (``writer.run_together``); then those
placeholders are adopted. Edge records whose ends are known only by uid are resolved
through the ``uid`` index first; an unknown uid gets a placeholder node (see
``model``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from kgcelery.graph import cypher_state
from kgcelery.graph.base import GraphStore
from kgcelery.graph.writer import (
    Row,
    adopt_placeholders,
    fold,
    merge_objects,
    run_chunks,
    run_together,
    scope_of,
)
from kgcelery.model.objects import (
    PROM_TARGET,
    TOPOLOGY_TYPES,
    cluster_id,
    label_for,
    object_id,
    parse_object_id,
    placeholder_id,
)
from kgcelery.normalize.common import object_ref
from kgcelery.normalize.resources import DELETE, TOMBSTONE, UPSERT, ResourceRecord
from kgcelery.normalize.targets import TOMBSTONE as TARGET_TOMBSTONE
from kgcelery.normalize.targets import TargetRecord
from kgcelery.normalize.topology import EdgeRecord, EdgeRemoval, EndpointRef, SnapshotRecord


def _find_uids(store: GraphStore, client_id: str,
               uids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """uid -> (id, kind) of the real object that has it (the smallest id if several)."""
    wanted = sorted(set(uids))
    if not wanted:
        return {}
    found: dict[str, tuple[str, str]] = {}
    for uid, oid, kind in store.run(client_id, cypher_state.find_by_uid(scope_of(store)),
                                    {"uids": wanted}):
        if uid not in found or oid < found[uid][0]:
            found[uid] = (oid, kind or "")
    return found


def _resolve_deletes(store: GraphStore, client_id: str,
                     records: list[ResourceRecord]) -> list[ResourceRecord]:
    """DELETEs that name only a uid, rewritten to the id of the object that has it."""
    found = _find_uids(store, client_id, (r.uid for r in records))
    resolved = []
    for record in records:
        if record.uid in found:
            oid = found[record.uid][0]
            parsed = parse_object_id(oid) or (record.kind, "", oid)
            resolved.append(ResourceRecord(
                id=oid, kind=parsed[0], namespace=parsed[1], name=parsed[2], uid=record.uid,
                op=record.op, at=record.at, v=record.v))
    return resolved


def _implied(store: GraphStore, client_id: str,
             current: list[ResourceRecord]) -> list[tuple[str, list[Row]]]:
    """Merge the nodes and owners these (possibly current) observations name; return
    the writes of the edges their state implies (for ``writer.run_together``)."""
    scope = scope_of(store)
    pods = [r for r in current if r.kind == "Pod"]
    services = [r for r in current if r.kind == "Service"]
    scheduled = [p for p in pods if p.node]
    owned = [(r, owner) for r in current for owner in r.owners]
    # The nodes and owners first, once each (their uids: the newest wins), then the
    # edges: the objects exist whatever the age of the rows that name them.
    merge_objects(store, client_id, [
        *((label_for("Node"),
           object_ref(object_id("Node", None, p.node), "Node", "", p.node, ""))
          for p in scheduled),
        *((label_for(o.kind), object_ref(o.id, o.kind, o.namespace, o.name, o.uid))
          for r, o in owned)], remembered=False)
    service_rows = [{"id": r.id, "v": r.v} for r in services]
    pod_rows = [{"id": r.id, "v": r.v} for r in pods]
    # One statement with the search for placeholders (writer.adopt_placeholders):
    # a small batch ran up to ten.
    return [
        (cypher_state.retract_scheduling(scope),
         [{"id": p.id, "v": p.v, "node_id": object_id("Node", None, p.node) if p.node else ""}
          for p in pods]),
        (cypher_state.assert_scheduling(scope),
         [{"id": p.id, "v": p.v, "node_id": object_id("Node", None, p.node)}
          for p in scheduled]),
        (cypher_state.retract_owners(scope),
         [{"id": r.id, "v": r.v, "owner_ids": [o.id for o in r.owners]} for r in current]),
        (cypher_state.assert_owners(scope),
         [{"id": r.id, "v": r.v, "owner_id": o.id} for r, o in owned]),
        (cypher_state.service_selection(scope, True), service_rows),
        (cypher_state.service_selection(scope, False), service_rows),
        (cypher_state.pod_selection(scope, True), pod_rows),
        (cypher_state.pod_selection(scope, False), pod_rows),
        (cypher_state.upsert_containers(scope),
         fold([c.row() for p in pods for c in p.containers], key="id")),
    ]


def _tombstone_rows(tombstones: Iterable[ResourceRecord | TargetRecord]) -> list[Row]:
    """One row per deleted thing: its newest timed tombstone, else an untimed one."""
    newest: dict[tuple[str, str, str], Row] = {}
    for t in tombstones:
        uid, kind = (t.uid, t.kind) if isinstance(t, ResourceRecord) else ("", "")
        key = (t.id, uid, kind)
        seen = newest.get(key)
        if seen is None or t.v > seen["tv"]:
            newest[key] = {"id": t.id, "uid": uid, "kind": kind, "tv": t.v,
                           "at": t.at if isinstance(t, ResourceRecord) else t.props.get("at")}
    return [newest[key] for key in sorted(newest)]


def write_resources(store: GraphStore, client_id: str,
                    records: Iterable[ResourceRecord]) -> int:
    """Apply resource observations; return how many records were applied."""
    records = list(records)
    if not records:
        return 0
    store.ensure_schema(client_id)
    scope = scope_of(store)
    uid_deletes = [r for r in records if r.op == DELETE and not r.id]
    changes = [r for r in records if r.op in (UPSERT, DELETE) and r.id]
    changes += _resolve_deletes(store, client_id, uid_deletes)
    # The newest UPSERT and the newest DELETE of each object in this batch.
    newest: dict[tuple[str, str], ResourceRecord] = {}
    for record in changes:
        seen = newest.get((record.id, record.op))
        if seen is None or record.v > seen.v:
            newest[(record.id, record.op)] = record
    # Updates and deletions of one object in separate statements: a statement updates
    # each node from one row only (see cypher_signals.write_log_patterns).
    cluster = cluster_id(client_id)
    ordered = [newest[key] for key in sorted(newest)]
    for op in (DELETE, UPSERT):
        ours = [record for record in ordered if record.op == op]
        rows = [record.row() for record in ours]
        found = {row[0] for row in run_chunks(
            store, client_id, cypher_state.update_resources(scope), rows, cluster=cluster)}
        new_by_label: dict[str, list[Row]] = defaultdict(list)
        for record, row in zip(ours, rows, strict=True):
            if record.id not in found:
                new_by_label[record.label].append(row)
        for label, new_rows in sorted(new_by_label.items()):
            run_chunks(store, client_id, cypher_state.upsert_resources(scope, label),
                       new_rows, cluster=cluster)
    tombstones = [r for r in records if r.op == TOMBSTONE]
    run_together(store, client_id, [
        (cypher_state.tombstone_resources(scope, by_uid),
         _tombstone_rows(t for t in tombstones if bool(t.uid and not t.id) is by_uid))
        for by_uid in (False, True)])
    current = [newest[key] for key in sorted(newest) if key[1] == UPSERT]
    # Objects (and owners) that now have a uid may stand where placeholders wait.
    adopt_placeholders(store, client_id, [r.uid for r in newest.values() if r.uid]
                       + [o.uid for r in current for o in r.owners if o.uid],
                       writes=_implied(store, client_id, current))
    return len(changes) + len(tombstones)


def _end(ref: EndpointRef, found: dict[str, tuple[str, str]], prefix: str) -> tuple[str, Row]:
    """(label, row fields) of one end of an edge, a placeholder if its uid is unknown."""
    oid, kind = (ref.id, ref.kind) if ref.id else found.get(ref.uid, ("", ref.kind))
    if not oid:
        return "Resource", {f"{prefix}id": placeholder_id(ref.uid), f"{prefix}kind": kind,
                            f"{prefix}name": "", f"{prefix}namespace": "",
                            f"{prefix}uid": ref.uid, f"{prefix}placeholder": True}
    _, namespace, name = parse_object_id(oid) or (kind, "", oid)
    return label_for(kind), {f"{prefix}id": oid, f"{prefix}kind": kind, f"{prefix}name": name,
                             f"{prefix}namespace": namespace, f"{prefix}uid": None,
                             f"{prefix}placeholder": None}


def _remove_edges(store: GraphStore, client_id: str, removals: list[EdgeRemoval]) -> None:
    """Edge tombstones; an end known only by an unknown uid names no edge (no-op)."""
    if not removals:
        return
    found = _find_uids(store, client_id, (ref.uid for r in removals
                                          for ref in (r.source, r.target) if not ref.id))
    newest: dict[tuple[str, str], Row] = {}
    for removal in removals:
        ends = [ref.id or found.get(ref.uid, ("", ""))[0]
                for ref in (removal.source, removal.target)]
        seen = newest.get((ends[0], ends[1]))
        if all(ends) and (seen is None or removal.v > seen["tv"]):
            newest[(ends[0], ends[1])] = {"from_id": ends[0], "to_id": ends[1],
                                          "tv": removal.v, "at": removal.at}
    rows = [newest[key] for key in sorted(newest)]
    run_together(store, client_id, [(cypher_state.remove_edges(scope_of(store), rel), rows)
                                    for rel in sorted(set(TOPOLOGY_TYPES.values()))])


def write_topology(store: GraphStore, client_id: str,
                   records: Iterable[EdgeRecord | EdgeRemoval | SnapshotRecord]) -> int:
    """Apply edge records and snapshots; return how many records were applied."""
    records = list(records)
    if not records:
        return 0
    store.ensure_schema(client_id)
    scope = scope_of(store)
    snapshots = sorted((r for r in records if isinstance(r, SnapshotRecord)), key=lambda s: s.at)
    for snapshot in snapshots:
        write_resources(store, client_id, snapshot.items)
        if snapshot.complete:
            store.run(client_id, cypher_state.mark_snapshot(scope), {
                "cluster": cluster_id(client_id), "cluster_name": client_id,
                "snap": snapshot.absent_v, "snap_at": snapshot.at})
    edges = [r for r in records if isinstance(r, EdgeRecord)]
    found = _find_uids(store, client_id, (ref.uid for e in edges
                                          for ref in (e.source, e.target) if not ref.id))
    groups: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    placeholders: set[str] = set()
    for edge in edges:
        from_label, from_row = _end(edge.source, found, "from_")
        to_label, to_row = _end(edge.target, found, "to_")
        placeholders.update(row[f"{p}uid"] for p, row in (("from_", from_row), ("to_", to_row))
                            if row[f"{p}placeholder"])
        groups[(edge.type, from_label, to_label)].append(
            {"id": edge.id, "v": edge.v, "op": edge.op, "at": edge.at, **from_row, **to_row})
    for (rel, from_label, to_label), rows in sorted(groups.items()):
        # One row per relationship (its ends), the newest record of it.
        for row in rows:
            row["ends"] = f"{row['from_id']} {row['to_id']}"
        run_chunks(store, client_id, cypher_state.write_edges(scope, rel, from_label, to_label),
                   fold(rows, key="ends"))
    # The object may have arrived while these placeholders were written.
    adopt_placeholders(store, client_id, placeholders)
    # After the assertions of this batch: a removal follows its edge on the wire.
    _remove_edges(store, client_id, [r for r in records if isinstance(r, EdgeRemoval)])
    return len(records)


def write_targets(store: GraphStore, client_id: str, records: Iterable[TargetRecord]) -> int:
    """Apply scrape target observations and tombstones; return how many were applied."""
    records = list(records)
    if not records:
        return 0
    store.ensure_schema(client_id)
    scope = scope_of(store)
    upserts = [r for r in records if r.op != TARGET_TOMBSTONE]
    rows = fold(r.row() for r in upserts)
    newest = {row["id"]: row["v"] for row in rows}
    current = [r for r in upserts if newest[r.id] == r.v]
    merge_objects(store, client_id, [link for r in current for link in r.links],
                  remembered=False)
    # The targets first: the scrapes are of their current state.
    run_together(store, client_id, [
        (cypher_state.upsert_targets(scope), rows),
        (cypher_state.retract_scrapes(scope),
         [{"id": r.id, "v": r.v, "link_ids": r.row()["link_ids"]} for r in current]),
        (cypher_state.assert_scrapes(scope),
         [{"id": r.id, "v": r.v, "object_id": row["object_id"]}
          for r in current for _, row in r.links]),
        (cypher_state.tombstone_resources(scope, False, PROM_TARGET),
         _tombstone_rows(r for r in records if r.op == TARGET_TOMBSTONE))])
    return len(records)
