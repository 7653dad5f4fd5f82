"""Write normalized records into a client's graph: one statement per batch and label."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from kgcelery.graph import cypher
from kgcelery.graph.base import GraphStore
from kgcelery.normalize.events import EventRecord


def write_events(store: GraphStore, client_id: str, events: Iterable[EventRecord]) -> int:
    """MERGE events and the objects they are about; return how many were written."""
    by_label: dict[str, list[dict[str, object]]] = defaultdict(list)
    for event in events:
        by_label[event.object_label].append(event.row())
    store.ensure_schema(client_id)
    for label, rows in sorted(by_label.items()):
        store.run(client_id, cypher.write_events(label), {"rows": rows})
    return sum(len(rows) for rows in by_label.values())
