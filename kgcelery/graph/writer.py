"""Write normalized signals (events, alerts, logs) into a client's graph.

One statement per batch and label, at most ``store.batch_rows`` rows each (500:
FalkorDB writes ~20x faster at 500 rows per statement than one by one). Rows for the
same node within one batch are folded first (newest version, max counts, min
first-seen): a statement must update each node from one row, because FalkorDB computes
the flags of every row before it writes any. Resource and topology records are written
by :mod:`kgcelery.graph.writer_state`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

from kgcelery.errors import GraphUnavailableError
from kgcelery.graph import cypher, cypher_signals, cypher_state
from kgcelery.graph.base import GraphStore
from kgcelery.graph.cypher import OWN_GRAPH, SHARED_GRAPH, Scope
from kgcelery.model.objects import TOPOLOGY_TYPES, label_for
from kgcelery.normalize.alerts import AlertRecord
from kgcelery.normalize.events import EventRecord
from kgcelery.normalize.logs import EmitterLogs, pattern_rows

#: How long a log batch id is remembered: far longer than any redelivery (the broker's
#: visibility timeout, retries with backoff).
LOG_LEDGER_TTL_S = 86_400.0
_PRUNE_EVERY_S = 600.0
_ADOPTED_RELS = sorted(set(TOPOLOGY_TYPES.values()))
_last_prune: dict[str, float] = {}

Row = dict[str, Any]


def scope_of(store: GraphStore) -> Scope:
    return SHARED_GRAPH if store.client_key else OWN_GRAPH


def run_chunks(store: GraphStore, client_id: str, query: str, rows: Sequence[Any],
               **params: Any) -> list[list[Any]]:
    """``query`` over ``rows``, ``store.batch_rows`` at a time; the rows it returned."""
    size = store.batch_rows
    returned: list[list[Any]] = []
    for start in range(0, len(rows), size):
        returned += store.run(client_id, query, {"rows": list(rows[start:start + size]),
                                                 **params})
    return returned


def run_together(store: GraphStore, client_id: str,
                 writes: Sequence[tuple[str, Sequence[Any]]], *,
                 then: tuple[str, dict[str, Any]] | None = None,
                 **shared: Any) -> list[list[Any]]:
    """``writes`` (statements whose results are not read, each over its ``$rows``) in
    this order, then ``then`` (a statement and its parameters); return ``then``'s rows.

    As few statements as FalkorDB allows (:func:`cypher.sittings`, joined by
    :func:`cypher.together`) when every write's rows fit one, else the writes one by
    one in chunks. A statement's own cost (~0.15 ms of FalkorDB's CPU and ~0.1 ms of
    the worker's, measured; ~1 ms on Neo4j) was most of what a small batch's edges
    cost. ``shared`` parameters go to every write as they are. Writes without rows stay
    in when some have rows, so the text sent (and the server's cached plan) does not
    depend on what a batch holds.
    """
    if not any(rows for _, rows in writes):
        writes = []
    elif any(len(rows) > store.batch_rows for _, rows in writes):
        for query, rows in writes:
            run_chunks(store, client_id, query, rows, **shared)
        writes = []
    statements = [(query, {"rows": list(rows), **shared}) for query, rows in writes]
    statements += [then] if then else []
    returned: list[list[Any]] = []
    for start, end in cypher.sittings(tuple(query for query, _ in statements)):
        run = statements[start:end]
        if len(run) == 1:
            returned = store.run(client_id, *run[0])
            continue
        joined = cypher.together(tuple(query for query, _ in run), tuple(sorted(shared)))
        returned = store.run(client_id, joined, {
            name if name in shared else f"{name}{i}": value
            for i, (_, params) in enumerate(run) for name, value in params.items()})
    return returned


def fold(rows: Iterable[Row], *, grow: Sequence[str] = (), shrink: Sequence[str] = (),
         key: str = "id") -> list[Row]:
    """One row per ``key``: the newest (greatest ``v``), with ``grow`` fields at their
    maximum and ``shrink`` fields at their minimum over all of them."""
    folded: dict[Any, Row] = {}
    for row in rows:
        seen = folded.get(row[key])
        if seen is None:
            folded[row[key]] = row
            continue
        newest = dict(row if row["v"] > seen["v"] else seen)
        for name in grow:
            values = [x for x in (row[name], seen[name]) if x is not None]
            newest[name] = max(values) if values else None
        for name in shrink:
            values = [x for x in (row[name], seen[name]) if x is not None]
            newest[name] = min(values) if values else None
        folded[row[key]] = newest
    return [folded[k] for k in sorted(folded)]


def objects_by_label(pairs: Iterable[tuple[str, Row]]) -> dict[str, list[Row]]:
    """Object rows (label, row) folded per object id: the greatest ``uid_v`` wins."""
    best: dict[str, tuple[str, Row]] = {}
    for label, row in pairs:
        seen = best.get(row["object_id"])
        if seen is None or row["object_uid_v"] > seen[1]["object_uid_v"]:
            best[row["object_id"]] = (label, row)
    grouped: dict[str, list[Row]] = defaultdict(list)
    for oid in sorted(best):
        label, row = best[oid]
        grouped[label].append(row)
    return grouped


def merge_objects(store: GraphStore, client_id: str, pairs: Iterable[tuple[str, Row]], *,
                  remembered: bool = True) -> list[str]:
    """MERGE the objects (label, ``object_ref`` row) that signals or edges name; return
    the uids this gave them.

    Most are objects the graph already has: those this process knows of
    (:mod:`kgcelery.graph.known`; not with ``remembered=False``, for callers that do
    not count what their statements match) are skipped, one read finds the rest, and
    only new objects (with their namespace) and newer uids are written; rewriting known
    objects was half the cost of writing events. The writes re-check what they change.
    """
    scope = scope_of(store)
    known = store.known_objects
    by_label = {label: [row for row in rows if not remembered
                        or not known.covers(client_id, row["object_id"], row["object_uid_v"])]
                for label, rows in sorted(objects_by_label(pairs).items())}
    # The read and the uid updates name objects by id alone: one statement each for all
    # labels (a statement costs ~1 ms on Neo4j whatever its rows; a small batch of
    # resources names objects of five labels or more). Only creation needs the label.
    everything = [row for rows in by_label.values() for row in rows]
    keys = [{"object_id": row["object_id"], "object_uid_v": row["object_uid_v"]}
            for row in everything]
    stale = {oid: bool(missing) for oid, missing
             in run_chunks(store, client_id, cypher.stale_objects(scope), keys)}
    for label, rows in by_label.items():
        run_chunks(store, client_id, cypher.merge_objects(scope, label),
                   [row for row in rows if stale.get(row["object_id"]) is True])
    newer = [row for row in everything if stale.get(row["object_id"]) is False]
    run_chunks(store, client_id, cypher.update_object_uids(scope), newer)
    for row in everything:
        known.learn(client_id, row["object_id"], row["object_uid_v"])
    return [row["object_uid"] for row in everything
            if stale.get(row["object_id"]) is not None and row["object_uid"]]


_EVENT_FIELDS = itemgetter(*cypher.EVENT_FIELDS)
_EVENT_PROPS = itemgetter(*cypher.EVENT_PROPS)
_EVENT_ID = cypher.EVENT_COLUMNS.index("id")


def event_columns(rows: Iterable[Row]) -> list[list[Any]]:
    """Event rows as the lists ``cypher.write_events`` reads (``cypher.EVENT_COLUMNS``)."""
    return [[*_EVENT_FIELDS(row), *_EVENT_PROPS(row["props"])] for row in rows]


def _write_about_objects(store: GraphStore, client_id: str, pairs: Sequence[tuple[str, Row]],
                         query: str, rows: Sequence[Any], *, create_query: str = "",
                         new_rows: Sequence[Any] = ()) -> list[str]:
    """Merge the objects, then run ``query`` over ``rows`` (and ``create_query`` over
    ``new_rows``: rows whose nodes the graph is known to lack), each MATCHing its rows'
    objects and returning how many it matched; return the uids the objects were given.

    A short count means an object this process took as known is not there (the graph
    was dropped or restored behind its back): forget the client and write again, every
    row with ``query`` (the created nodes of the first try are there now).
    """
    def matched(writes: list[tuple[str, Sequence[Any]]]) -> int:
        return sum(count for statement, chunk in writes if chunk
                   for count, in run_chunks(store, client_id, statement, chunk))

    uids = merge_objects(store, client_id, pairs)
    total = len(rows) + len(new_rows)
    if matched([(create_query, new_rows), (query, rows)]) == total:
        return uids
    store.known_objects.forget(client_id)
    uids += merge_objects(store, client_id, pairs)
    if matched([(query, [*new_rows, *rows])]) != total:
        raise GraphUnavailableError(
            f"objects of client {client_id!r} vanished while signals about them were written")
    return uids


def adopt_placeholders(store: GraphStore, client_id: str, uids: Iterable[str],
                       writes: Sequence[tuple[str, Sequence[Any]]] = ()) -> int:
    """Run ``writes`` (:func:`run_together`), then move the edges of placeholders whose
    object now exists onto it and drop them; the writes and the search for such
    placeholders are one statement."""
    scope = scope_of(store)
    wanted = sorted(set(uids))
    search = (cypher_state.adoptable_placeholders(scope), {"uids": wanted}) if wanted else None
    rows = run_together(store, client_id, writes, then=search)
    ready = sorted({row[0] for row in rows})
    if not ready:
        return 0
    for rel in _ADOPTED_RELS:
        for outgoing in (True, False):
            store.run(client_id, cypher_state.adopt_edges(scope, rel, outgoing), {"uids": ready})
    store.run(client_id, cypher_state.delete_adopted(scope), {"uids": ready})
    return len(ready)


def write_events(store: GraphStore, client_id: str, events: Iterable[EventRecord]) -> int:
    """MERGE events and the objects they are about; return how many were written."""
    events = list(events)
    if not events:
        return 0
    store.ensure_schema(client_id)
    scope = scope_of(store)
    rows = fold((e.row() for e in events), grow=("count", "last_seen"), shrink=("first_seen",))
    columns, new = event_columns(rows), []
    if store.exclusive(client_id):
        # Most events are new: those the graph lacks are created, not merged (no
        # writer of this client can create them before this unit commits).
        held = {event_id for event_id, in run_chunks(
            store, client_id, cypher.known_events(scope), [row[_EVENT_ID] for row in columns])}
        new = [row for row in columns if row[_EVENT_ID] not in held]
        columns = [row for row in columns if row[_EVENT_ID] in held]
    uids = _write_about_objects(store, client_id,
                                [(e.object_label, e.object_row()) for e in events],
                                cypher.write_events(scope), columns,
                                create_query=cypher.create_events(scope), new_rows=new)
    # An event may be the first to name a uid that a topology edge waits on.
    adopt_placeholders(store, client_id, uids)
    return len(events)


def write_alerts(store: GraphStore, client_id: str, alerts: Iterable[AlertRecord]) -> int:
    """MERGE alert episodes and the objects they are about."""
    alerts = list(alerts)
    if not alerts:
        return 0
    store.ensure_schema(client_id)
    scope = scope_of(store)
    rows = fold((a.row() for a in alerts), grow=("seen",), shrink=("starts_at",))
    _write_about_objects(store, client_id,
                         [(a.object_label, a.object_row()) for a in alerts if a.object_id],
                         cypher_signals.write_alerts(scope, True),
                         [row for row in rows if row["object_id"]])
    run_chunks(store, client_id, cypher_signals.write_alerts(scope, False),
               [row for row in rows if not row["object_id"]])
    return len(alerts)


def write_signals(store: GraphStore, client_id: str,
                  records: Iterable[EventRecord | AlertRecord]) -> int:
    """Events and alerts of one event topic (``events.normalized`` carries both: the
    event exporter's events and Vector's alert twin)."""
    records = list(records)
    events = [r for r in records if isinstance(r, EventRecord)]
    alerts = [r for r in records if isinstance(r, AlertRecord)]
    return write_events(store, client_id, events) + write_alerts(store, client_id, alerts)


def write_logs(store: GraphStore, client_id: str, emitters: Iterable[EmitterLogs],
               batch_id: str, *, now: float | None = None) -> int:
    """Add one batch's log counts and patterns, once per ``batch_id`` however often it
    is replayed; return how many lines the batch held."""
    emitters = list(emitters)
    if not emitters:
        return 0
    store.ensure_schema(client_id)
    scope = scope_of(store)
    now = time.time() if now is None else now
    by_label: dict[str, list[EmitterLogs]] = defaultdict(list)
    for emitter in emitters:
        by_label[emitter.label].append(emitter)
    for label, group in sorted(by_label.items()):
        query = cypher_signals.write_log_patterns(scope, label_for(label))
        for start in range(0, len(group), store.batch_rows):
            chunk = group[start:start + store.batch_rows]
            store.run(client_id, query, {
                "rows": [emitter.row() for emitter in chunk], "patterns": pattern_rows(chunk),
                "now": now, "batch": f"{batch_id}:{label}:{start}"})
    if now - _last_prune.get(client_id, 0.0) > _PRUNE_EVERY_S:
        store.run(client_id, cypher_signals.prune_log_batches(scope),
                  {"cutoff": now - LOG_LEDGER_TTL_S})
        _last_prune[client_id] = now
    return sum(emitter.lines for emitter in emitters)
