"""Warm a fresh graph server before work reaches it: a simulated cluster's records,
written as the workers write them into throw-away graphs, then dropped.

A fresh Neo4j compiles its code paths for its first ~100,000 rows (at 3-5x the steady
cost) and plans each of kgcelery's statements on first use, 0.2-0.3 s a plan: on two
cores the first minute of a new server's writes took ~20 s each, and every client's
latency showed it (docs/BENCHMARKS.md, docs/GRAPH.md). A server in production has done
all that long ago; ``kgcelery up --stack kafka-neo4j`` and ``bench/e2e.py`` do it before
the first record arrives. Batches come in every size of :data:`WARM_SIZES`, and every
label's objects are also written new into a graph of their own, so that no statement a
client's first batches run is planned while they wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from kgcelery.demo.cluster import SimulatedCluster
from kgcelery.graph import GraphStore

#: Batch sizes written in turn (capped by the bridge's batch size).
WARM_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500)
#: Client ids of the throw-away graphs (valid ids; dropped when written).
WARM_CLIENT = "warm-up"


#: Share of each kind in the records (logs dominate real telemetry); the benchmarks'
#: streams are mixed the same way.
MIX = {"log": 0.5, "event": 0.3, "resource": 0.15, "alert": 0.05}


def simulated_records(count: int = 20_000, *, seed: int = 7,
                      client_id: str = "bench-pool") -> list[tuple[str, dict[str, Any]]]:
    """``count`` (kind, value) records of a simulated cluster (its snapshot and ten
    minutes of its life, every scenario having spoken), mixed as in :data:`MIX`; a kind
    with fewer records than its share repeats them (later ones update known nodes)."""
    cluster = SimulatedCluster(client_id, "bench", seed=seed)
    now = time.time()
    by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in MIX}
    for record in cluster.snapshot(now):
        by_kind[record.kind].append(record.value)
    for _ in range(600):
        now += 1.0
        for record in cluster.tick(now, 200):
            by_kind[record.kind].append(record.value)
    edges, total = [], 0.0
    for kind, share in MIX.items():
        total += share
        edges.append((kind, total))
    records = []
    for index in range(count):
        kind = next(k for k, edge in edges if (index % 100) / 100 < edge)
        values = by_kind[kind]
        records.append((kind, values[index % len(values)]))
    return records


def warm_graph(store: GraphStore, records: Iterable[tuple[str, Any]], *, passes: int = 1,
               batch_max: int = 500, stop: Callable[[], bool] = lambda: False) -> int:
    """Write ``records`` (kind, value) ``passes`` times into throw-away graphs as the
    workers would, then drop them; return how many normalized records were written.
    ``stop()`` true ends it early (between batches), its graphs dropped all the same."""
    # Here, not at the top: kgcelery.tasks reads the settings when imported, and
    # the benchmarks import this module before they set theirs.
    from kgcelery.tasks import KINDS as TASK_KINDS

    by_kind: dict[str, list[Any]] = {}
    for kind, value in records:
        if kind in TASK_KINDS:
            by_kind.setdefault(kind, []).extend(TASK_KINDS[kind].normalize(value, "", None))
    written = 0
    for index in range(passes):
        client = f"{WARM_CLIENT}-{index}"
        try:
            for kind, normalized in sorted(by_kind.items()):
                write = partial(TASK_KINDS[kind].write, store, client)
                written += _write_in_every_size(store, client, write, kind, normalized,
                                                batch_max, stop)
        finally:
            store.drop(client)
    # Each label's objects also into a graph of their own, new, as a client's first batch
    # has them: in mixed batches events create most objects first (and jobs their cron
    # jobs), so the statements that create a label's objects would not all have run.
    by_label: dict[str, dict[str, Any]] = {}
    for record in by_kind.get("resource", []):
        by_label.setdefault(record.label, {})[record.id] = record
    for label, objects in sorted(by_label.items()):
        if stop():
            break
        client = f"{WARM_CLIENT}-{label.lower()}"
        try:
            store.write_unit(client, partial(TASK_KINDS["resource"].write, store, client,
                                             list(objects.values()), f"warm:{label}"))
        finally:
            store.drop(client)
        written += len(objects)
    return written


def _write_in_every_size(store: GraphStore, client: str,
                         write: Callable[[list[Any], str], int], kind: str,
                         records: list[Any], batch_max: int, stop: Callable[[], bool]) -> int:
    start, turn = 0, 0
    while start < len(records) and not stop():
        size = min(WARM_SIZES[turn % len(WARM_SIZES)], batch_max)
        batch = records[start:start + size]
        store.write_unit(client, partial(write, batch, f"warm:{kind}:{start}"))
        start, turn = start + size, turn + 1
    return min(start, len(records))
