"""Cypher for the state of Kubernetes objects: resource records, containers, the
edges their state implies, deletions, snapshots, and topology edge records.

Versions (see :mod:`kgcelery.normalize.common`): ``n.v`` is the newest update applied
(its properties are the node's state), ``n.del_v`` the newest deletion (a DELETE, a
complete snapshot without the object, a tombstone). ``n.gone`` is ``del_v > v``, so a
late old update never revives a deleted object and a recreation (newer) does.
A topology edge record keeps its own ``edge_v``/``edge_op`` on the edge; an edge that
is neither implied by state (``spec``) nor asserted by a live edge record is ``gone``
(kept as a tombstone, so an older assertion arriving later cannot bring it back).
"""

from __future__ import annotations

from functools import lru_cache

from kgcelery.graph.cypher import (
    Scope,
    checked_relationship,
    link_namespace,
    namespace_each,
    when,
)
from kgcelery.model.objects import PROM_TARGET, RESOURCE

#: ``gone`` from the versions just written. A deletion older than the state is
#: forgotten (emptied: see ``normalize.common.filled`` for why nothing is removed): it
#: can no longer matter, and the graph stays the same whatever order led to it.
#: XXX: FalkorDB evaluates consecutive SET clauses before applying any of them (Neo4j
#: applies them in order), so a SET that reads what a previous one wrote follows a WITH.
_GONE = ("WITH {carry}, coalesce({n}.del_v, '') > coalesce({n}.v, '') AS is_gone "
         "SET {n}.gone = is_gone, "
         "{n}.gone_at = CASE WHEN is_gone THEN {n}.del_at ELSE 0.0 END, "
         "{n}.del_at = CASE WHEN is_gone THEN {n}.del_at ELSE 0.0 END, "
         "{n}.del_by = CASE WHEN is_gone THEN {n}.del_by ELSE '' END, "
         "{n}.del_v = CASE WHEN is_gone THEN {n}.del_v ELSE '' END")
#: XXX: every filter that follows a write is projected first (``WITH x, cond AS ok
#: WHERE ok``): FalkorDB 4.x moves a plain ``WITH x WHERE cond`` above the write,
#: and the write is lost for the rows it filters out.
_RETRACT = ("SET e.spec = null, e.gone = coalesce(e.edge_op, '') = 'DELETE' "
            "WITH e, e.edge_op IS NULL AS lonely WHERE lonely DELETE e")
_ASSERT = "SET e.spec = true, e.gone = false"
#: The id of the placeholder of uid ``u`` (see ``model.placeholder_id``).
_PH_ID = "'uid:' + u"
_SELECTED = ("s.selector IS NOT NULL AND size(s.selector) > 0 AND "
             "all(x IN s.selector WHERE x IN coalesce(p.labels, []))")


def _deleted(flag: str, n: str, v: str, at: str, by: str) -> str:
    return (f"{when(flag, n, 'del_at', at)}, {when(flag, n, 'del_by', repr(by))}, "
            f"{when(flag, n, 'del_v', v)}")


def _apply_resource_rows(scope: Scope) -> str:
    """The middle of the two statements below: ``r`` applied to the node ``n``.

    An update older than the last complete snapshot (``$cluster``'s ``snapshot_v``)
    leaves the object gone as of that snapshot: it was not in it (a node that was has
    a version newer than the snapshot's own).
    """
    newer = "r.op = 'UPSERT' AND (n.v IS NULL OR r.v > n.v)"
    deleted = "r.op = 'DELETE' AND (n.del_v IS NULL OR r.v > n.del_v)"
    newer_uid = "r.uid_v > coalesce(n.uid_v, '')"
    absent = "n.v IS NOT NULL AND n.v < snap AND coalesce(n.del_v, '') < snap"
    return (
        f"WITH snap, snap_at, r, n, {newer} AS newer, {deleted} AS deleted "
        "SET n += CASE WHEN newer THEN r.props ELSE {} END, "
        f"{when(newer_uid, 'n', 'uid', 'r.uid')}, {when(newer_uid, 'n', 'uid_v', 'r.uid_v')}, "
        f"{_deleted('deleted', 'n', 'r.v', 'r.at', 'delete')}, "
        f"{when('newer', 'n', 'v', 'r.v')} "
        f"WITH snap, snap_at, r, n, {absent} AS absent "
        f"SET {_deleted('absent', 'n', 'snap', 'snap_at', 'snapshot')} "
        f"{_GONE.format(n='n', carry='r, n')} "
    )


def _snapshot(scope: Scope) -> str:
    return (f"OPTIONAL MATCH {scope.key('c', RESOURCE, '$cluster')} "
            "WITH coalesce(c.snapshot_v, '') AS snap, c.snapshot_at AS snap_at ")


@lru_cache(maxsize=8)
def update_resources(scope: Scope) -> str:
    """UPSERT and DELETE observations of objects the graph already has, of every label
    in one statement; returns the ids it found. The rest are new objects, created by
    :func:`upsert_resources` (a statement per label, since a pattern's labels are
    fixed): in a steady cluster nearly every observation is of a known object, and a
    small batch names five labels or more, each a statement."""
    return (
        f"{_snapshot(scope)}UNWIND $rows AS r MATCH {scope.key('n', RESOURCE, 'r.id')} "
        f"{_apply_resource_rows(scope)}"
        f"{namespace_each(scope, 'n', 'r.namespace')} RETURN r.id"
    )


@lru_cache(maxsize=64)
def upsert_resources(scope: Scope, label: str) -> str:
    """UPSERT and DELETE observations of objects of one label, and their namespaces."""
    return (
        f"{_snapshot(scope)}UNWIND $rows AS r "
        f"MERGE {scope.object_key('n', label, 'r.id')} "
        "ON CREATE SET n.kind = r.kind, n.name = r.name, n.namespace = r.namespace "
        f"{_apply_resource_rows(scope)}"
        f"{link_namespace(scope, 'n', 'r.namespace')}"
    )


@lru_cache(maxsize=8)
def tombstone_resources(scope: Scope, by_uid: bool, label: str = RESOURCE) -> str:
    """Null values: gone as of their Kafka timestamp (``r.tv``) when the bridge gave one,
    else as of the newest observation already applied; a strictly newer update, a
    recreation, still revives. Objects by id or uid; scrape targets (``label``
    PromTarget) by id."""
    match = (scope.node("n", RESOURCE, "uid: r.uid") + " WHERE n.placeholder IS NULL AND "
             "(r.kind = '' OR n.kind = r.kind)") if by_uid else scope.key("n", label, "r.id")
    return (
        f"UNWIND $rows AS r MATCH {match} "
        # A timed tombstone (``r.tv``, from its Kafka timestamp) is an ordinary version;
        # an untimed one: '~' sorts after every version character, '0' before any.
        "WITH n, r, CASE WHEN r.tv <> '' THEN r.tv WHEN n.v IS NULL THEN '0' "
        "ELSE n.v + '~' END AS tv "
        "WITH n, tv, CASE WHEN r.tv <> '' THEN r.at ELSE n.at END AS tat, "
        "(n.del_v IS NULL OR tv > n.del_v) AS deleted "
        f"SET {_deleted('deleted', 'n', 'tv', 'tat', 'tombstone')} "
        f"{_GONE.format(n='n', carry='n')}"
    )


#: A topology RUNS_ON record older than the pod's state, which names another node, is
#: superseded: the kg agent never tombstones RUNS_ON (its ``deletePod`` does not), so
#: a pod re-created under its name on another node would otherwise run on both. (A
#: state without a node may just not say: it supersedes nothing.) ``p`` is the pod,
#: ``x`` the node.
_SUPERSEDED = ("(coalesce(e.edge_at, 0.0) < coalesce(p.at, 0.0) "
               "AND coalesce(p.node_name, '') <> '' AND p.node_name <> coalesce(x.name, ''))")


@lru_cache(maxsize=8)
def retract_scheduling(scope: Scope) -> str:
    """Pods whose current state names another node (or none) than an edge implied by an
    older state, or asserted by an older RUNS_ON record (:data:`_SUPERSEDED`)."""
    return (f"UNWIND $rows AS r MATCH {scope.key('p', RESOURCE, 'r.id')} WHERE p.v = r.v "
            "MATCH (p)-[e:SCHEDULED_ON]->(x) WHERE x.id <> r.node_id "
            f"WITH e, {_SUPERSEDED} AS superseded, coalesce(e.spec, false) AS implied "
            "WITH e, superseded, implied, superseded OR implied AS stale WHERE stale "
            "SET e.spec = null, "
            "e.gone = superseded OR coalesce(e.edge_op, '') = 'DELETE' "
            "WITH e, e.edge_op IS NULL AS lonely WHERE lonely DELETE e")


@lru_cache(maxsize=8)
def assert_scheduling(scope: Scope) -> str:
    """``(Pod)-[:SCHEDULED_ON]->(Node)`` from the pod's current state. The nodes are
    merged before, once per node and whatever the row's age (``writer.merge_objects``):
    merging a node once per pod row was most of this statement."""
    return (
        f"UNWIND $rows AS r MATCH {scope.key('x', RESOURCE, 'r.node_id')} "
        f"MATCH {scope.key('n', RESOURCE, 'r.id')} "
        "WITH x, n, n.v = r.v AS current WHERE current "
        f"MERGE (n)-[e:SCHEDULED_ON]->(x) {_ASSERT}")


@lru_cache(maxsize=8)
def retract_owners(scope: Scope) -> str:
    return (f"UNWIND $rows AS r MATCH {scope.key('n', RESOURCE, 'r.id')} WHERE n.v = r.v "
            f"MATCH (o)-[e:OWNS]->(n) WHERE e.spec AND NOT o.id IN r.owner_ids {_RETRACT}")


@lru_cache(maxsize=8)
def assert_owners(scope: Scope) -> str:
    """``(owner)-[:OWNS]->(owned)`` from ownerReferences of the current state; the owners
    are merged before, once per owner (``writer.merge_objects``)."""
    return (
        f"UNWIND $rows AS r MATCH {scope.key('o', RESOURCE, 'r.owner_id')} "
        f"MATCH {scope.key('n', RESOURCE, 'r.id')} "
        "WITH o, n, n.v = r.v AS current WHERE current "
        f"MERGE (o)-[e:OWNS]->(n) {_ASSERT}")


def _selection(head: str, match: str, retract: bool) -> str:
    # XXX: FalkorDB 4.x drops rows when a list predicate (all(...)) sits in a WHERE
    # clause; projected first and then filtered, it is evaluated correctly.
    if retract:
        return (f"{head}MATCH (s)-[e:SELECTS]->(p) WITH e, e.spec AND NOT ({_SELECTED}) "
                f"AS stale WHERE stale {_RETRACT}")
    return (f"{head}{match} WITH s, p, {_SELECTED} AS selected WHERE selected "
            f"MERGE (s)-[e:SELECTS]->(p) {_ASSERT}")


@lru_cache(maxsize=8)
def service_selection(scope: Scope, retract: bool) -> str:
    """Services (rows) re-evaluated against the pods of their namespace."""
    head = f"UNWIND $rows AS r MATCH {scope.key('s', RESOURCE, 'r.id')} WHERE s.v = r.v "
    return _selection(head, f"MATCH {scope.node('p', 'Pod', 'namespace: s.namespace')}",
                      retract)


@lru_cache(maxsize=8)
def pod_selection(scope: Scope, retract: bool) -> str:
    """Pods (rows) re-evaluated against the services of their namespace."""
    head = f"UNWIND $rows AS r MATCH {scope.key('p', RESOURCE, 'r.id')} WHERE p.v = r.v "
    return _selection(head, f"MATCH {scope.node('s', 'Service', 'namespace: p.namespace')}",
                      retract)


@lru_cache(maxsize=8)
def upsert_containers(scope: Scope) -> str:
    """Containers of pods, their state from the newest pod observation that had them."""
    return (
        f"UNWIND $rows AS r MATCH {scope.key('p', RESOURCE, 'r.pod_id')} "
        f"MERGE {scope.object_key('c', 'Container', 'r.id')} ON CREATE SET "
        "c.kind = 'Container', c.name = r.name, c.namespace = r.namespace "
        "WITH r, p, c, (c.v IS NULL OR r.v > c.v) AS newer "
        "SET c += CASE WHEN newer THEN r.props ELSE {} END, "
        f"{when('newer', 'c', 'v', 'r.v')} MERGE (p)-[:HAS_CONTAINER]->(c)")


@lru_cache(maxsize=8)
def mark_snapshot(scope: Scope) -> str:
    """Record a complete snapshot on the Cluster node, then mark every object with
    state older than it as gone (objects in it are newer: they were just upserted)."""
    newer = "c.snapshot_v IS NULL OR $snap > c.snapshot_v"
    absent = ("n.v IS NOT NULL AND n.v < $snap AND n.kind <> 'Container' "
              "AND n.kind <> 'Cluster' AND coalesce(n.del_v, '') < $snap")
    return (
        f"MERGE {scope.object_key('c', 'Cluster', '$cluster')} ON CREATE SET "
        "c.kind = 'Cluster', c.name = $cluster_name, c.namespace = '' "
        f"WITH c, {newer} AS newer "
        f"SET {when('newer', 'c', 'snapshot_at', '$snap_at')}, "
        f"{when('newer', 'c', 'snapshot_v', '$snap')} "
        # Projected, then filtered: never an index range scan (see cypher.LOOKUPS).
        f"WITH 1 AS one MATCH {scope.node('n', RESOURCE)} WITH n, {absent} AS absent "
        "WHERE absent "
        f"SET n.del_at = $snap_at, n.del_by = 'snapshot', n.del_v = $snap "
        f"{_GONE.format(n='n', carry='n')}")


@lru_cache(maxsize=8)
def find_by_uid(scope: Scope) -> str:
    """Real (non-placeholder) objects that have one of ``$uids``."""
    return (f"UNWIND $uids AS u MATCH {scope.node('n', RESOURCE, 'uid: u')} "
            "WHERE n.placeholder IS NULL RETURN u, n.id, n.kind")


@lru_cache(maxsize=8)
def adoptable_placeholders(scope: Scope) -> str:
    """Placeholders among ``$uids`` whose real object now exists."""
    return (f"UNWIND $uids AS u MATCH {scope.key('ph', RESOURCE, _PH_ID)} "
            f"MATCH {scope.node('n', RESOURCE, 'uid: u')} WHERE n.placeholder IS NULL "
            "RETURN DISTINCT u")


@lru_cache(maxsize=32)
def adopt_edges(scope: Scope, rel: str, outgoing: bool) -> str:
    """Move one type of edge from placeholders to their real objects, newest
    assertion winning where the real object already has the same edge."""
    rel = checked_relationship(rel)
    ph_edge = f"(ph)-[e:{rel}]->(x)" if outgoing else f"(x)-[e:{rel}]->(ph)"
    real_edge = f"(n)-[f:{rel}]->(x)" if outgoing else f"(x)-[f:{rel}]->(n)"
    take = "(f.edge_v IS NULL OR e.edge_v > f.edge_v)"
    # The adopting pod's state may supersede the RUNS_ON record (as in write_edges).
    superseded = (f", {_SUPERSEDED.replace('p.', 'n.').replace('e.', 'f.')} AS superseded"
                  if rel == "SCHEDULED_ON" and outgoing else "")
    return (
        f"UNWIND $uids AS u MATCH {scope.key('ph', RESOURCE, _PH_ID)} "
        f"MATCH {scope.node('n', RESOURCE, 'uid: u')} WHERE n.placeholder IS NULL "
        f"MATCH {ph_edge} WHERE x <> ph MERGE {real_edge} "
        f"WITH n, x, e, f, {take} AS take "
        f"SET {when('take', 'f', 'edge_id', 'e.edge_id')}, "
        f"{when('take', 'f', 'edge_op', 'e.edge_op')}, "
        f"{when('take', 'f', 'edge_at', 'e.edge_at')}, {when('take', 'f', 'edge_v', 'e.edge_v')} "
        f"WITH e, f{superseded} SET f.gone = NOT coalesce(f.spec, false) AND "
        f"(f.edge_op = 'DELETE'{' OR superseded' if superseded else ''}) DELETE e")


@lru_cache(maxsize=8)
def delete_adopted(scope: Scope) -> str:
    return (f"UNWIND $uids AS u MATCH {scope.key('ph', RESOURCE, _PH_ID)} "
            f"MATCH {scope.node('n', RESOURCE, 'uid: u')} WHERE n.placeholder IS NULL "
            "DETACH DELETE ph")


def _endpoint(scope: Scope, var: str, prefix: str, label: str) -> str:
    r = f"r.{prefix}"
    return (f"MERGE {scope.object_key(var, label, f'{r}id')} ON CREATE SET "
            f"{var}.kind = {r}kind, {var}.name = {r}name, {var}.namespace = {r}namespace, "
            f"{var}.uid = {r}uid, {var}.placeholder = {r}placeholder")


@lru_cache(maxsize=128)
def write_edges(scope: Scope, rel: str, from_label: str, to_label: str) -> str:
    """Topology edge records of one type between objects of two labels (an end known
    only by uid is a placeholder: label ``Resource``, id ``uid:<uid>``)."""
    rel = checked_relationship(rel)
    newer = "(e.edge_v IS NULL OR r.v > e.edge_v)"
    # Projected before the SET that reads it (see _GONE's XXX).
    superseded = (f", {_SUPERSEDED.replace('p.', 'a.').replace('x.', 'b.')} AS superseded"
                  if rel == "SCHEDULED_ON" else "")
    return (
        f"UNWIND $rows AS r {_endpoint(scope, 'a', 'from_', from_label)} "
        f"{namespace_each(scope, 'a', 'r.from_namespace')} "
        f"{_endpoint(scope, 'b', 'to_', to_label)} "
        f"{namespace_each(scope, 'b', 'r.to_namespace')} MERGE (a)-[e:{rel}]->(b) "
        f"WITH r, a, b, e, {newer} AS newer "
        f"SET {when('newer', 'e', 'edge_id', 'r.id')}, "
        f"{when('newer', 'e', 'edge_op', 'r.op')}, "
        f"{when('newer', 'e', 'edge_at', 'r.at')}, {when('newer', 'e', 'edge_v', 'r.v')} "
        f"WITH a, b, e{superseded} SET e.gone = NOT coalesce(e.spec, false) AND "
        f"(e.edge_op = 'DELETE'{' OR superseded' if superseded else ''})")


@lru_cache(maxsize=8)
def remove_edges(scope: Scope, rel: str) -> str:
    """Edge tombstones: the topology edge of type ``rel`` between two objects (if an
    edge record asserted it) is DELETEd as of the tombstone's Kafka timestamp (``r.tv``)
    when newer than its assertion, else (untimed) as of its newest assertion
    (``edge_v + '~'``); a strictly newer assertion, a recreation, still revives it. An
    edge already removed is left alone, so a replayed tombstone changes nothing; one
    that state implies (``spec``) stays live."""
    rel = checked_relationship(rel)
    return (
        f"UNWIND $rows AS r MATCH {scope.key('a', RESOURCE, 'r.from_id')}"
        f"-[e:{rel}]->{scope.key('b', RESOURCE, 'r.to_id')} "
        "WITH r, e, CASE WHEN r.tv <> '' THEN r.tv ELSE e.edge_v + '~' END AS tv, "
        "CASE WHEN r.tv <> '' THEN r.at ELSE e.edge_at END AS tat "
        "WITH e, tv, tat, e.edge_v IS NOT NULL AND tv > e.edge_v AND "
        "coalesce(e.edge_op, '') <> 'DELETE' AS newer WHERE newer "
        "SET e.edge_op = 'DELETE', e.edge_v = tv, e.edge_at = tat "
        "WITH e SET e.gone = NOT coalesce(e.spec, false)")


@lru_cache(maxsize=8)
def upsert_targets(scope: Scope) -> str:
    """Scrape targets: the newest observation's state; gone as for objects."""
    newer = "t.v IS NULL OR r.v > t.v"
    return (
        f"UNWIND $rows AS r MERGE {scope.key('t', PROM_TARGET, 'r.id')} "
        f"WITH r, t, {newer} AS newer "
        "SET t += CASE WHEN newer THEN r.props ELSE {} END, "
        f"{when('newer', 't', 'v', 'r.v')} "
        f"{_GONE.format(n='t', carry='t')}")


@lru_cache(maxsize=8)
def retract_scrapes(scope: Scope) -> str:
    """SCRAPES edges of targets (rows, their current state) to objects their labels no
    longer name. Derived from the target's state, so simply deleted."""
    return (f"UNWIND $rows AS r MATCH {scope.key('t', PROM_TARGET, 'r.id')} WHERE t.v = r.v "
            "MATCH (t)-[e:SCRAPES]->(o) WITH e, NOT o.id IN r.link_ids AS stale "
            "WHERE stale DELETE e")


@lru_cache(maxsize=8)
def assert_scrapes(scope: Scope) -> str:
    """``(PromTarget)-[:SCRAPES]->(object)`` from the target's current labels (the
    objects are merged before, ``writer.merge_objects``)."""
    return (f"UNWIND $rows AS r MATCH {scope.key('t', PROM_TARGET, 'r.id')} "
            f"MATCH {scope.key('o', RESOURCE, 'r.object_id')} "
            "WITH t, o, t.v = r.v AS current WHERE current MERGE (t)-[:SCRAPES]->(o)")
