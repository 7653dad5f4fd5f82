"""What a small take costs the graph: statements, FalkorDB's CPU and the worker's per
take of a few records of one kind, with statements joined (``writer.run_together``)
against the same statements one by one (as before it), in the same run.

A fleet worker serving 1,000 clients writes takes of a few records each, every client
into a graph of its own (docs/BENCHMARKS.md, issue 14): what such a take costs is its
statements, not its rows. Starts its own FalkorDB (``common.falkordb``) and, where Java
and Maven are, its own Neo4j Community (``common.neo4j``; tenancy ``property``, each take
one write unit, as a worker writes); for each kind of the tenants bench's mix (the demo
simulator's records), ``--clients`` graphs take ``--records`` records of that kind in
turn, the records walking through the simulator's pool as the tenants bench's producer
does: ``--warm`` rounds (FalkorDB caches plans per graph, and a quiet client's graph
sees the same statements take after take), then ``--rounds`` measured. The two modes
alternate, ``--passes`` times, each into fresh graphs; figures are the medians of the
passes. The server's CPU is its process's (``/proc``), the worker's this process's.

    python bench/takes.py [--clients 20] [--records 3] [--warm 5] [--rounds 30] [--passes 3]
                          [--kinds log,event,resource,alert] [--no-neo4j]

One line per store and kind: ``takes-<kind>: joined <s> statements, FalkorDB <ms> ms,
worker <ms> ms a take; one by one <s>, <ms>, <ms>; FalkorDB <r>x, worker <r>x`` (joined
over one by one), then ``takes-neo4j-<kind>: ...`` the same with Neo4j.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import orjson
from common import KINDS, cpu_s, exit_on_sigterm, falkordb, neo4j, sample_records

from kgcelery.embedded.maven import jvm_available
from kgcelery.graph import writer, writer_state
from kgcelery.graph.base import GraphStore
from kgcelery.graph.falkordb_store import FalkorDBStore
from kgcelery.graph.neo4j_store import Neo4jStore
from kgcelery.settings import Settings
from kgcelery.tasks import KINDS as TASK_KINDS


class Counted:
    """Counts the statements a store runs (its ``run``, wrapped)."""

    def __init__(self, store: GraphStore) -> None:
        self.statements = 0
        run = store.run

        def counting(client_id: str, query: str,
                     params: dict[str, Any] | None = None) -> list[list[Any]]:
            self.statements += 1
            return run(client_id, query, params)

        setattr(store, "run", counting)  # noqa: B010 - an instance's method, replaced


def one_by_one(store: GraphStore, client_id: str, writes: Any, *,
               then: tuple[str, dict[str, Any]] | None = None, **shared: Any) -> Any:
    """``writer.run_together`` as the writers ran it before: each write alone."""
    for query, rows in writes:
        writer.run_chunks(store, client_id, query, rows, **shared)
    return store.run(client_id, *then) if then else []


@contextmanager
def statements_one_by_one() -> Iterator[None]:
    joined = writer.run_together
    writer.run_together = writer_state.run_together = one_by_one
    try:
        yield
    finally:
        writer.run_together = writer_state.run_together = joined


@dataclass(frozen=True)
class Cost:
    """Per take: statements, the graph server's CPU and this process's (the worker's), ms."""

    statements: float
    server_ms: float
    worker_ms: float


def measure(store: GraphStore, counted: Counted, server_pid: int, kind: str, pool: list[Any],
            clients: list[str], records: int, warm: int, rounds: int) -> Cost:
    write = TASK_KINDS[kind]
    taken = 0

    def take(client_id: str) -> None:
        nonlocal taken
        values = [pool[(taken * records + j) % len(pool)] for j in range(records)]
        taken += 1
        normalized = [r for i, value in enumerate(values)
                      for r in write.normalize(value, f"r{taken}-{i}", None)]
        batch = f"{kind}:{client_id}:{taken}"
        store.write_unit(client_id, lambda: write.write(store, client_id, normalized, batch))

    for _ in range(warm):
        for client_id in clients:
            take(client_id)
    counted.statements = 0
    server, worker = cpu_s(server_pid), time.process_time()
    for _ in range(rounds):
        for client_id in clients:
            take(client_id)
    takes = rounds * len(clients)
    return Cost(counted.statements / takes, (cpu_s(server_pid) - server) * 1000 / takes,
                (time.process_time() - worker) * 1000 / takes)


def median(costs: list[Cost], field: Callable[[Cost], float]) -> float:
    return statistics.median(field(cost) for cost in costs)


def ratio(joined: float, apart: float) -> str:
    """``joined / apart`` as ``0.85x``; a run too short for /proc's 10 ms ticks has none."""
    return f"{joined / apart:.2f}x" if apart else "n/a (too few takes to time)"


def main() -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="graphs, one per client")
    parser.add_argument("--records", type=int, default=3, help="records per take")
    parser.add_argument("--warm", type=int, default=5, help="unmeasured takes per graph first")
    parser.add_argument("--rounds", type=int, default=30, help="measured takes per graph")
    parser.add_argument("--passes", type=int, default=3, help="passes of each mode")
    parser.add_argument("--kinds", default=",".join(KINDS), help="kinds, comma-separated")
    parser.add_argument("--no-neo4j", dest="neo4j", action="store_false",
                        help="FalkorDB only")
    args = parser.parse_args()
    pools: dict[str, list[Any]] = {}
    for kind, value in sample_records(20_000):
        pools.setdefault(kind, []).append(orjson.loads(value))
    kinds = args.kinds.split(",")
    lines = []
    with falkordb() as (url, pid):
        lines += run_store("takes", "FalkorDB", FalkorDBStore(url), pid, kinds, pools, args)
    if args.neo4j:
        why_not = jvm_available(Settings())
        if why_not:
            lines.append(f"takes-neo4j: not measured: {why_not.splitlines()[0]}")
        else:
            with neo4j() as (uri, pid):
                store = Neo4jStore(uri, user="neo4j", password="", tenancy="property")
                lines += run_store("takes-neo4j", "Neo4j", store, pid, kinds, pools, args)
    print(f"(medians of {args.passes} passes; {args.clients} graphs, {args.records} records "
          f"a take, {args.warm} takes each to warm, {args.rounds} measured)")
    print("\n".join(lines))
    return 0


def run_store(name: str, server: str, store: GraphStore, pid: int, kinds: list[str],
              pools: dict[str, list[Any]], args: argparse.Namespace) -> list[str]:
    """Both modes, alternating, for every kind; one summary line per kind."""
    counted = Counted(store)
    lines = []
    try:
        for kind in kinds:
            costs: dict[str, list[Cost]] = {"joined": [], "one by one": []}
            for number in range(args.passes):
                for mode, cost_list in costs.items():
                    clients = [f"{name}-{kind}-{mode[0]}{number}-{i}"
                               for i in range(args.clients)]
                    with statements_one_by_one() if mode == "one by one" else nullcontext():
                        cost = measure(store, counted, pid, kind, pools[kind], clients,
                                       args.records, args.warm, args.rounds)
                    cost_list.append(cost)
                    print(f"  {name} {kind} pass {number + 1} {mode}: {cost.statements:.1f} "
                          f"statements, {server} {cost.server_ms:.2f} ms, worker "
                          f"{cost.worker_ms:.2f} ms a take", flush=True)
            (js, jf, jw), (os_, of, ow) = [
                (median(c, lambda x: x.statements), median(c, lambda x: x.server_ms),
                 median(c, lambda x: x.worker_ms)) for c in costs.values()]
            lines.append(f"{name}-{kind}: joined {js:.1f} statements, {server} {jf:.2f} ms, "
                         f"worker {jw:.2f} ms a take; one by one {os_:.1f}, {of:.2f} ms, "
                         f"{ow:.2f} ms; {server} {ratio(jf, of)}, worker {ratio(jw, ow)}")
    finally:
        store.close()
    return lines


if __name__ == "__main__":
    sys.exit(main())
