"""End to end: Kafka → bridge → per-client Celery workers → graph, against baselines.

Runs on both stacks in one run, on the same records: Tansu + FalkorDB (the pip-only
stack) and, where Java and Maven are, Apache Kafka + Neo4j Community (kafka-neo4j).
Starts its own stack and processes, produces realistic mixed telemetry (the
demo simulator's events, logs, resources and alerts) for five clients, one ten times
louder than the others, and measures until every record is in its graph (committed
by the bridge, no task queued or in flight):

1. throughput: a backlog drained by the whole pipeline;
2. latency at a steady rate (produce-to-graph, from the Kafka timestamps the bridge
   carries to the workers, which keep a histogram per client);
3. fairness: the quiet clients' latency while the loud client floods;

all on a warm pipeline: first the pipeline drains ``--warm-drain`` records of another
simulated cluster (its rate is printed too, as the cold one), then its bridge is stopped,
the measured backlog produced, and a bridge started again on it;
and, in the same run and on the same records, two baselines: a direct sink (one
process consuming Kafka and writing batches straight into the graph, no Celery) and
the naive design (one Celery task per Kafka record, one graph query per record).

    python bench/e2e.py [--records 60000] [--rate 2000] [--seconds 30] [--warm-drain 30000]
                        [--stacks ...]

Ends with: e2e: <records/s> records/s, <x>x direct sink, <y>x naive, p99 <seconds> s
and e2e-jvm: <records/s> records/s, <x>x direct sink, p99 <seconds> s (the naive
baseline runs on the pip-only stack only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import redis
from common import (
    KINDS,
    bench_settings,
    committed,
    committed_offsets,
    exit_on_sigterm,
    new_producer,
    produce,
    rss_mb,
    sample_records,
    tree_peak_mb,
)
from confluent_kafka import Consumer, TopicPartition

from kgcelery import latency
from kgcelery.broker.redis_broker import work_of
from kgcelery.control.registry import Registry
from kgcelery.control.scalers.local import worker_argv
from kgcelery.demo.warmup import warm_graph
from kgcelery.embedded import open_stack
from kgcelery.embedded.process import ManagedProcess
from kgcelery.graph import open_store
from kgcelery.kafka import consumer_config, ensure_topics
from kgcelery.settings import Settings

LOUD, QUIET = "loud-1", ["quiet-2", "quiet-3", "quiet-4", "quiet-5"]
CLIENTS = [LOUD, *QUIET]
ORDER = [LOUD] * 10 + QUIET  # the loud client sends ten times as much as each other


class Pipeline:
    """The bridge and the client workers, as `kgcelery up` would run them."""

    def __init__(self, settings: Settings, state: Path, workers: dict[str, int]) -> None:
        self.settings, self.state = settings, state
        self.processes: list[ManagedProcess] = []
        for client, count in workers.items():
            for index in range(1, count + 1):
                self._start(f"worker-{client}-{index}", worker_argv(client, index, settings))
        self.start_bridge()

    def start_bridge(self) -> None:
        self.bridge = self._start("bridge", [sys.executable, "-m", "kgcelery", "bridge"])

    def stop_bridge(self) -> None:
        self.bridge.stop(timeout=30)
        self.processes.remove(self.bridge)

    def _start(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, run_dir=self.state / "run",
                                 log_dir=self.state / "logs", env=self.settings.child_env())
        process.start()
        self.processes.append(process)
        return process

    def peak_memory(self) -> dict[str, float]:
        return {p.name: tree_peak_mb(p.pid or 0) for p in self.processes}

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=30)


def wait_done(settings: Settings, broker: redis.Redis, topics: list[str], total: int,
              timeout: float = 900.0) -> float:
    """Wait until the bridge committed ``total`` records and no task is left; the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if committed(settings, topics) >= total:
            work = work_of(broker, CLIENTS, default_records_per_task=settings.batch_max_records)
            if all(w.queued == 0 and w.in_flight == 0 for w in work.values()):
                return time.monotonic()
        time.sleep(0.1)
    raise SystemExit(f"the pipeline did not finish {total} records in {timeout:.0f} s")


def produce_records(settings: Settings, pool: list[tuple[str, bytes]], count: int, *,
                    start: int = 0, rate: float = 0.0, order: list[str] = ORDER,
                    prefix: str = "") -> None:
    """``count`` records (``rate`` per second if given), cycling through clients and pool."""
    producer = new_producer(settings)
    topics = {kind: prefix + settings.topics_of(kind)[0] for kind in KINDS}
    began = time.monotonic()
    for i in range(start, start + count):
        kind, value = pool[i % len(pool)]
        produce(producer, topics[kind], f"{order[i % len(order)]}::{kind}::r{i}".encode(),
                value)
        if rate and i % 50 == 0:
            producer.poll(0)
            ahead = (i - start) / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
    assert producer.flush(120) == 0


def latency_of(broker: redis.Redis, clients: list[str]) -> dict[float, float]:
    merged: dict[int, int] = {}
    for client in clients:
        for bound, count in latency.histogram(broker, client).items():
            merged[bound] = merged.get(bound, 0) + count
    return latency.percentiles(merged)


def reset_latency(broker: redis.Redis) -> None:
    for client in CLIENTS:
        broker.delete(latency.PREFIX + client)


def direct_sink(settings: Settings, topics: list[str], total: int,
                start: list[TopicPartition] | None = None) -> float:
    """Baseline (a): one process, Kafka → normalize → batched graph writes, no Celery;
    the records from ``start`` (the measured backlog's first offsets), or from the
    beginning."""
    from kgcelery.tasks import KINDS as TASK_KINDS  # the workers' own normalize/write

    store = open_store(settings)
    consumer = Consumer(consumer_config(settings, group="bench-direct"))
    if start:
        consumer.assign(start)
    else:
        consumer.subscribe(topics)
    kind_of = {topic: kind for topic, kind in settings.topics.items()}
    done, started = 0, None
    while done < total:
        messages = [m for m in consumer.consume(2000, 0.5) if m.error() is None]
        if not messages:
            continue
        started = started or time.monotonic()
        batches: dict[tuple[str, str], list[tuple[Any, str]]] = {}
        for message in messages:
            client, _, entity = (message.key() or b"").decode().partition("::")
            batches.setdefault((client, kind_of[message.topic() or ""]), []).append(
                (orjson.loads(message.value() or b"null"), entity))
        for (client, kind), values in batches.items():
            task_kind = TASK_KINDS[kind]
            for chunk in range(0, len(values), settings.batch_max_records):
                records = []
                for value, entity in values[chunk:chunk + settings.batch_max_records]:
                    records.extend(task_kind.normalize(value, entity, None))
                store.write_unit(client, partial(task_kind.write, store, client, records,
                                                 f"direct:{done}:{chunk}"))
        done += len(messages)
    consumer.close()
    store.close()
    assert started is not None
    return total / (time.monotonic() - started)


def naive(settings: Settings, state: Path, pool: list[tuple[str, bytes]], count: int,
          broker: redis.Redis) -> float:
    """Baseline (b): a Celery task per Kafka record, so one graph statement per record."""
    naive_settings = settings.model_copy(update={
        "topics": {f"naive.{t}": k for t, k in settings.topics.items()},
        "consumer_group": "bench-naive", "batch_max_records": 1, "batch_max_wait_s": 0.001,
        # one task per record also in the workers: no merged takes
        "worker_merge_max_records": 0})
    ensure_topics(naive_settings)
    produce_records(naive_settings, pool, count)
    topics = [t for t, k in naive_settings.topics.items() if k in KINDS]
    pipeline = Pipeline(naive_settings, state / "naive", {c: 1 for c in CLIENTS})
    try:
        started = _first_commit(naive_settings, topics)
        return count / (wait_done(naive_settings, broker, topics, count) - started)
    finally:
        pipeline.stop()


def _first_commit(settings: Settings, topics: list[str], before: int = 0) -> float:
    while committed(settings, topics) <= before:
        time.sleep(0.05)
    return time.monotonic()


def _warm_drain(settings: Settings, state: Path, workers: dict[str, int],
                count: int) -> tuple[Pipeline, float]:
    """The pipeline, after draining ``count`` records of another simulated cluster (new
    objects, as the measured ones are): a pipeline in production has run for hours, and
    a fresh Apache Kafka spends most of a core on compiling its fetch path in the first
    seconds of a drain (docs/BENCHMARKS.md), Python workers on their imports."""
    other = sample_records(count, seed=8)
    produce_records(settings, other, count, start=10_000_000)
    broker = redis.Redis.from_url(settings.broker_url)
    topics = [t for t, k in settings.topics.items() if k in KINDS]
    pipeline = Pipeline(settings, state, workers)
    try:
        started = _first_commit(settings, topics)
        took = wait_done(settings, broker, topics, count) - started
    except BaseException:
        pipeline.stop()
        raise
    print(f"   {count / took:,.0f} records/s (cold)", flush=True)
    return pipeline, count / took


def wire_bytes(pool: list[tuple[str, bytes]]) -> tuple[float, float]:
    """Mean bytes per record on Kafka: the client id only in the key, or also repeated
    in every payload (the original design's `client_id` field)."""
    keyed = repeated = 0
    for i, (kind, value) in enumerate(pool):
        client = ORDER[i % len(ORDER)]
        key = len(f"{client}::{kind}::r{i}")
        keyed += key + len(value)
        body = orjson.loads(value)
        body["client_id"] = client
        repeated += key + len(orjson.dumps(body))
    return keyed / len(pool), repeated / len(pool)


def phase(title: str, action: Callable[[], Any]) -> Any:
    print(f"== {title}", flush=True)
    return action()


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=60_000, help="throughput backlog")
    parser.add_argument("--rate", type=float, default=2000.0, help="steady records/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="steady phase length")
    parser.add_argument("--naive-records", type=int, default=3000)
    parser.add_argument("--loud-workers", type=int, default=2)
    parser.add_argument("--keep-logs", metavar="DIR",
                        help="copy the bridge's and workers' logs here (one folder per stack)")
    parser.add_argument("--warm-passes", type=int, default=3,
                        help="passes of the sampled records written into throw-away graphs "
                             "before measuring, to warm the graph server (0: cold)")
    parser.add_argument("--warm-drain", type=int, default=30_000, metavar="N",
                        help="records of other objects drained through the whole pipeline "
                             "before the measured backlog (its Kafka, workers and graph "
                             "server warm, as in production; 0: measure a cold pipeline)")
    parser.add_argument("--stacks", nargs="+", default=["tansu-falkordb", "kafka-neo4j"],
                        choices=["tansu-falkordb", "kafka-neo4j"])
    args = parser.parse_args()
    lines = []
    for stack_name in args.stacks:
        if stack_name == "kafka-neo4j":
            from kgcelery.embedded.maven import jvm_available

            why_not = jvm_available(Settings())
            if why_not:
                lines.append(f"e2e-jvm: not measured: {why_not.splitlines()[0]}")
                continue
        print(f"=== stack {stack_name}", flush=True)
        lines.append(run(stack_name, args))
    print()
    print("\n".join(lines))


def run(stack_name: str, args: argparse.Namespace) -> str:
    """The whole measurement on one stack; its closing line."""
    jvm = stack_name == "kafka-neo4j"
    with tempfile.TemporaryDirectory(prefix="kgcelery-e2e-") as tmp:
        state = Path(tmp)
        settings = bench_settings(state, stack=stack_name)
        with open_stack(settings) as stack:
            broker = redis.Redis.from_url(settings.broker_url)
            registry = Registry(broker)
            for client in CLIENTS:
                registry.register(client, cluster_name=client)
            pool = phase("sampling realistic records", lambda: sample_records(20_000))
            topics = [t for t, k in settings.topics.items() if k in KINDS]

            phase(f"warming the graph server ({args.warm_passes} passes of the records)",
                  lambda: warm_up(settings, pool, args.warm_passes))
            workers = {LOUD: args.loud_workers, **{c: 1 for c in QUIET}}
            base, cold, start = 0, float("nan"), None
            if args.warm_drain:
                base = args.warm_drain
                pipeline, cold = phase(f"warming the pipeline: draining {base} other records",
                                       lambda: _warm_drain(settings, state, workers, base))
                pipeline.stop_bridge()
                start = committed_offsets(settings, topics)  # the measured backlog's start
            phase(f"producing a backlog of {args.records}",
                  lambda: produce_records(settings, pool, args.records))
            if args.warm_drain:
                pipeline.start_bridge()
            else:
                pipeline = Pipeline(settings, state, workers)
            try:
                started = phase("draining it", lambda: _first_commit(settings, topics, base))
                ended = wait_done(settings, broker, topics, base + args.records)
                throughput = args.records / (ended - started)
                print(f"   {throughput:,.0f} records/s", flush=True)

                reset_latency(broker)
                steady = int(args.rate * args.seconds)
                phase(f"steady {args.rate:.0f} records/s for {args.seconds:.0f} s",
                      lambda: produce_records(settings, pool, steady, start=args.records,
                                              rate=args.rate))
                wait_done(settings, broker, topics, base + args.records + steady)
                steady_all = latency_of(broker, CLIENTS)
                steady_quiet = latency_of(broker, QUIET)

                reset_latency(broker)
                flood = steady
                phase("the loud client floods while the quiet ones keep their pace",
                      lambda: _flood(settings, pool, args, flood))
                wait_done(settings, broker, topics, base + args.records + steady + flood * 2)
                flood_quiet = latency_of(broker, QUIET)
                flood_loud = latency_of(broker, [LOUD])
                memory = pipeline.peak_memory()
            finally:
                pipeline.stop()
                if args.keep_logs:
                    kept = Path(args.keep_logs) / stack_name
                    shutil.copytree(state / "logs", kept, dirs_exist_ok=True)
                    print(f"   logs of the bridge and workers kept in {kept}", flush=True)
            memory.update({s.name: rss_mb(s.process.pid or 0) for s in stack.services})

            direct = phase("baseline: direct sink",
                           lambda: direct_sink(settings.model_copy(update={
                               "graph_uri": settings.graph_uri}), topics, args.records,
                               start))
            naive_rate = float("nan") if jvm else phase(
                "baseline: one task per record",
                lambda: naive(settings, state, pool, args.naive_records, broker))
    keyed, repeated = wire_bytes(pool)
    return _report(stack_name, throughput, direct, naive_rate, cold, steady_all, steady_quiet,
                   flood_quiet, flood_loud, memory, keyed, repeated, args)


def warm_up(settings: Settings, pool: list[tuple[str, bytes]], passes: int) -> None:
    """Write the pool straight into throw-away graphs ``passes`` times, as the workers
    would, then drop them (:mod:`kgcelery.demo.warmup`: a server in production has long
    compiled and planned what a fresh one does in a measurement's first seconds)."""
    store = open_store(settings)
    try:
        warm_graph(store, [(kind, orjson.loads(value)) for kind, value in pool],
                   passes=passes, batch_max=settings.batch_max_records)
    finally:
        store.close()


def _flood(settings: Settings, pool: list[tuple[str, bytes]], args: argparse.Namespace,
           count: int) -> None:
    """A burst of ``count`` records of the loud client, with the quiet clients at pace."""
    import threading

    start = args.records + int(args.rate * args.seconds)
    loud = threading.Thread(target=produce_records, args=(settings, pool, count),
                            kwargs={"start": start, "order": [LOUD]})
    loud.start()
    produce_records(settings, pool, count, start=start + count, order=QUIET,
                    rate=args.rate * len(QUIET) / len(ORDER))
    loud.join()


def _report(stack_name: str, throughput: float, direct: float, naive_rate: float,
            cold: float, *latencies_and_more: Any) -> str:
    steady_all, steady_quiet, flood_quiet, flood_loud, memory, keyed, repeated, args = (
        latencies_and_more)

    def p(values: dict[float, float]) -> str:
        return " / ".join(f"{values.get(q, float('nan')):.2f}" for q in (50, 95, 99))

    print()
    print(f"{stack_name:<44}{'records/s':>12}{'ratio':>8}")
    print(f"{'e2e pipeline (bridge + Celery workers)':<44}{throughput:>12,.0f}{1:>8.2f}")
    print(f"{'direct sink (1 process, no Celery)':<44}{direct:>12,.0f}"
          f"{throughput / direct:>8.2f}")
    print(f"{'naive (task and query per record)':<44}{naive_rate:>12,.0f}"
          f"{throughput / naive_rate:>8.1f}")
    print(f"{'first drain, cold (--warm-drain records)':<44}{cold:>12,.0f}"
          f"{throughput / cold:>8.2f}")
    print(f"latency p50 / p95 / p99 (s), steady {args.rate:.0f} records/s: all {p(steady_all)}; "
          f"quiet clients {p(steady_quiet)}")
    print(f"latency p50 / p95 / p99 (s), loud client flooding: quiet clients "
          f"{p(flood_quiet)}; loud client {p(flood_loud)}")
    print("peak memory (MB): " + ", ".join(f"{name} {mb:.0f}" for name, mb in memory.items()))
    print(f"bytes per record on Kafka: client id in the key only {keyed:.0f}, repeated in "
          f"every payload {repeated:.0f} ({(repeated - keyed) / repeated:.1%} saved)")
    print(json.dumps({"throughput": throughput, "direct": direct, "naive": naive_rate,
                      "cold": cold,
                      "p99_steady": steady_all.get(99), "p99_quiet_flood": flood_quiet.get(99)}))
    p99 = steady_all.get(99, float("nan"))
    if stack_name == "kafka-neo4j":
        line = (f"e2e-jvm: {throughput:,.0f} records/s, {throughput / direct:.2f}x direct sink, "
                f"p99 {p99:.2f} s")
    else:
        line = (f"e2e: {throughput:,.0f} records/s, {throughput / direct:.2f}x direct sink, "
                f"{throughput / naive_rate:.0f}x naive, p99 {p99:.2f} s")
    print(line, flush=True)
    return line


if __name__ == "__main__":
    main()
