"""Cypher for signals about objects: alerts, and log patterns emitted by containers.

Alerts merge like events: the newest observation of an episode decides its status.
Log counts are different: a batch adds to them, so a replay of the same batch must
not. Each log statement first records its batch id in a ``LogBatch`` node and does
nothing if that id is already there; the check and the writes are one statement,
which FalkorDB runs atomically and Neo4j runs as one transaction (the ``LogBatch``
id constraint refuses a concurrent twin). Old ledger entries are pruned
(:func:`prune_log_batches`) long after any redelivery could happen.
"""

from __future__ import annotations

from functools import lru_cache

from kgcelery.graph.cypher import Scope, grow, shrink, when
from kgcelery.model.objects import ALERT, LOG_BATCH, LOG_PATTERN, RESOURCE

#: Which kind of node emitted a log line -> its ``kind`` property.
EMITTER_KINDS = {"Container": "Container", "Pod": "Pod", "Node": "Node"}


@lru_cache(maxsize=8)
def write_alerts(scope: Scope, with_object: bool) -> str:
    """Alert episodes, each ABOUT its (already merged) object where it names one; those
    with objects return how many rows found theirs."""
    about = (f"WITH r, a MATCH {scope.key('o', RESOURCE, 'r.object_id')} "
             "MERGE (a)-[:ABOUT]->(o) RETURN count(a)") if with_object else ""
    return (
        f"UNWIND $rows AS r MERGE {scope.key('a', ALERT, 'r.id')} "
        "ON CREATE SET a.name = r.name, a.fingerprint = r.fingerprint "
        "WITH r, a, (a.v IS NULL OR r.v > a.v) AS newer "
        "SET a += CASE WHEN newer THEN r.props ELSE {} END, "
        f"{shrink('a', 'starts_at', 'r.starts_at')}, {grow('a', 'last_seen', 'r.seen')}, "
        f"{when('newer', 'a', 'v', 'r.v')} {about}"
    )


def _emitter_links(scope: Scope, label: str) -> str:
    """A container's pod and the pod's namespace; a pod's namespace; nothing for nodes.
    (Container and pod emitters always have a namespace: logs.LogLine.emitter.)

    Only for an emitter without log lines yet (``fresh``): the statement that first
    counts an emitter's lines links it, in the same atomic write, and nothing removes
    those links, so a later batch would only MERGE what is there (on FalkorDB that was
    two fifths of a small log batch's statement).
    """
    ns_id = "'Namespace/' + r.namespace"
    namespace = (f"MERGE {scope.object_key('ns', 'Namespace', ns_id)} ON CREATE SET "
                 "ns.kind = 'Namespace', ns.name = r.namespace, ns.namespace = '' ")
    if label == "Container":
        links = (f"MERGE {scope.object_key('p', 'Pod', 'r.pod_id')} ON CREATE SET "
                 "p.kind = 'Pod', p.name = r.pod, p.namespace = r.namespace "
                 f"MERGE (p)-[:HAS_CONTAINER]->(c) {namespace}MERGE (p)-[:IN_NAMESPACE]->(ns)")
    elif label == "Pod":
        links = f"{namespace}MERGE (c)-[:IN_NAMESPACE]->(ns)"
    else:
        return ""
    return f"FOREACH (_ IN CASE WHEN fresh THEN [1] ELSE [] END | {links}) "


@lru_cache(maxsize=8)
def write_log_patterns(scope: Scope, emitter_label: str) -> str:
    """Once per ``$batch``: line counts on the emitters (``$rows``, label
    ``emitter_label``), then their warning/error patterns (``$patterns``, each with the
    emitters that wrote it) with counts, first/last seen, worst severity and the earliest
    sample line.

    Every node is updated by one row only: a flag computed in a WITH is computed for
    all rows before any of them is written (FalkorDB), so two rows on one node would
    both see its old state.
    """
    kind = EMITTER_KINDS[emitter_label]
    worse = "(lp.severity_rank IS NULL OR pr.rank > lp.severity_rank)"
    earlier = "(lp.sample_v IS NULL OR pr.sample_v < lp.sample_v)"
    return (
        # XXX: counted, not "WITH b WHERE b IS NULL": FalkorDB 4.x pushes that filter
        # into the OPTIONAL MATCH and always finds the batch new.
        f"OPTIONAL MATCH {scope.key('b', LOG_BATCH, '$batch')} "
        "WITH count(b) AS known WHERE known = 0 "
        f"CREATE {scope.node('nb', LOG_BATCH, 'id: $batch, created: $now')} "
        # Not aggregations: when the batch is known there is no row left to go on.
        "WITH nb UNWIND $rows AS r "
        f"MERGE {scope.object_key('c', emitter_label, 'r.id')} ON CREATE SET "
        f"c.kind = '{kind}', c.name = r.name, c.namespace = r.namespace "
        # Projected before the SET that changes it (see cypher_state._GONE's XXX).
        "WITH nb, r, c, c.log_lines IS NULL AS fresh "
        "SET c.log_lines = coalesce(c.log_lines, 0) + r.lines, "
        "c.info_lines = coalesce(c.info_lines, 0) + r.info_lines "
        f"{_emitter_links(scope, emitter_label)}"
        "WITH DISTINCT nb UNWIND $patterns AS pr "
        f"MERGE {scope.key('lp', LOG_PATTERN, 'pr.id')} ON CREATE SET lp.pattern = pr.pattern "
        f"WITH pr, lp, {worse} AS worse, {earlier} AS earlier "
        "SET lp.count = coalesce(lp.count, 0) + pr.count, "
        f"{shrink('lp', 'first_seen', 'pr.first_seen')}, "
        f"{grow('lp', 'last_seen', 'pr.last_seen')}, "
        f"{when('worse', 'lp', 'severity', 'pr.severity')}, "
        f"{when('worse', 'lp', 'severity_rank', 'pr.rank')}, "
        f"{when('earlier', 'lp', 'sample', 'pr.sample')}, "
        f"{when('earlier', 'lp', 'sample_v', 'pr.sample_v')} "
        f"WITH lp, pr UNWIND pr.emitters AS pe MATCH {scope.key('c', RESOURCE, 'pe.id')} "
        "MERGE (c)-[em:EMITTED]->(lp) SET em.count = coalesce(em.count, 0) + pe.count, "
        f"{shrink('em', 'first_seen', 'pe.first_seen')}, "
        f"{grow('em', 'last_seen', 'pe.last_seen')}"
    )


@lru_cache(maxsize=8)
def prune_log_batches(scope: Scope) -> str:
    return f"MATCH {scope.node('b', LOG_BATCH)} WHERE b.created < $cutoff DELETE b"
