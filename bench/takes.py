"""What a small take costs the graph: statements, FalkorDB's CPU and the worker's per
take of a few records of one kind, with statements joined (``writer.run_together``)
against the same statements one by one (as before it), in the same run.

A fleet worker serving 1,000 clients writes takes of a few records each, every client
into a graph of its own (docs/BENCHMARKS.md, issue 14): what such a take costs is its
statements, not its rows. Starts its own FalkorDB (``common.falkordb``); for each kind
of the tenants bench's mix (the demo simulator's records), ``--clients`` graphs take
``--records`` records of that kind in turn, the records walking through the simulator's
pool as the tenants bench's producer does: ``--warm`` rounds (FalkorDB caches plans per
graph, and a quiet client's graph sees the same statements take after take), then
``--rounds`` measured. The two modes alternate, ``--passes`` times, each into fresh
graphs; figures are the medians of the passes.

    python bench/takes.py [--clients 20] [--records 3] [--warm 5] [--rounds 30] [--passes 3]

One line per kind: ``takes-<kind>: joined <s> statements, FalkorDB <ms> ms, worker <ms> ms
a take; one by one <s>, <ms>, <ms>; FalkorDB <r>x, worker <r>x`` (joined over one by one).
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
from common import KINDS, cpu_s, exit_on_sigterm, falkordb, sample_records

from kgcelery.graph import writer, writer_state
from kgcelery.graph.base import GraphStore
from kgcelery.graph.falkordb_store import FalkorDBStore
from kgcelery.tasks import KINDS as TASK_KINDS


class CountingStore(FalkorDBStore):
    """A FalkorDB store that counts the statements it runs."""

    statements = 0

    def run(self, client_id: str, query: str,
            params: dict[str, Any] | None = None) -> list[list[Any]]:
        self.statements += 1
        return super().run(client_id, query, params)


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
    """Per take: statements, FalkorDB's CPU and this process's (the worker's) in ms."""

    statements: float
    server_ms: float
    worker_ms: float


def measure(store: CountingStore, server_pid: int, kind: str, pool: list[Any],
            clients: list[str], records: int, warm: int, rounds: int) -> Cost:
    write = TASK_KINDS[kind]
    taken = 0

    def take(client_id: str) -> None:
        nonlocal taken
        values = [pool[(taken * records + j) % len(pool)] for j in range(records)]
        taken += 1
        normalized = [r for i, value in enumerate(values)
                      for r in write.normalize(value, f"r{taken}-{i}", None)]
        write.write(store, client_id, normalized, f"{kind}:{client_id}:{taken}")

    for _ in range(warm):
        for client_id in clients:
            take(client_id)
    store.statements = 0
    server, worker = cpu_s(server_pid), time.process_time()
    for _ in range(rounds):
        for client_id in clients:
            take(client_id)
    takes = rounds * len(clients)
    return Cost(store.statements / takes, (cpu_s(server_pid) - server) * 1000 / takes,
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
    args = parser.parse_args()
    by_kind: dict[str, list[Any]] = {}
    for kind, value in sample_records(20_000):
        by_kind.setdefault(kind, []).append(orjson.loads(value))
    results: dict[str, dict[str, list[Cost]]] = {}
    with falkordb() as (url, server_pid):
        store = CountingStore(url)
        for kind in args.kinds.split(","):
            results[kind] = {"joined": [], "one by one": []}
            for number in range(args.passes):
                for mode in ("joined", "one by one"):
                    clients = [f"take-{kind}-{mode[0]}{number}-{i}" for i in range(args.clients)]
                    with statements_one_by_one() if mode == "one by one" else nullcontext():
                        cost = measure(store, server_pid, kind, by_kind[kind], clients,
                                       args.records, args.warm, args.rounds)
                    results[kind][mode].append(cost)
                    print(f"  {kind} pass {number + 1} {mode}: {cost.statements:.1f} statements, "
                          f"FalkorDB {cost.server_ms:.2f} ms, worker {cost.worker_ms:.2f} ms "
                          "a take", flush=True)
        store.close()
    print(f"(medians of {args.passes} passes; {args.clients} graphs, {args.records} records "
          f"a take, {args.warm} takes each to warm, {args.rounds} measured)")
    for kind, modes in results.items():
        joined, apart = modes["joined"], modes["one by one"]
        figures = [(median(costs, lambda c: c.statements), median(costs, lambda c: c.server_ms),
                    median(costs, lambda c: c.worker_ms)) for costs in (joined, apart)]
        (js, jf, jw), (os_, of, ow) = figures
        print(f"takes-{kind}: joined {js:.1f} statements, FalkorDB {jf:.2f} ms, worker "
              f"{jw:.2f} ms a take; one by one {os_:.1f}, {of:.2f} ms, {ow:.2f} ms; "
              f"FalkorDB {ratio(jf, of)}, worker {ratio(jw, ow)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
