"""Bridge throughput: Kafka → Redis, batched, against one Celery task per Kafka record.

Starts its own embedded stack, produces a backlog of realistic mixed telemetry (the
demo simulator's events, logs, resources and alerts) for several clients with skewed
volumes, then lets one `kgcelery bridge` process drain it while sampling its memory.
The baseline, in the same run and on the same kind of data, is the naive bridge:
`send_task` per Kafka record. Then the same backlog again, read by fresh consumer
groups with KGCELERY_BRIDGE_DURABLE=aof (each commit waits for Redis's fsync, WAITAOF;
Redis on appendfsync always) and off, in turns, best of each. Ends with two lines:

    bridge: <records/s> records/s, <ratio>x one-task-per-record, peak RSS <MB> MB
    bridge-durable: <records/s> records/s, <ratio>x acknowledged-only

Run: .venv/bin/python bench/bridge.py [--records 1000000] [--baseline-records 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson
from common import committed, exit_on_sigterm, rss_mb, sample_records
from confluent_kafka import Consumer, Producer, TopicPartition

from kgcelery.app import create_app
from kgcelery.clients import queue_for
from kgcelery.control.registry import Registry
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import EmbeddedStack, free_port
from kgcelery.kafka import consumer_config, producer_config
from kgcelery.settings import Settings

CLIENTS = ["loud-1", "quiet-2", "quiet-3", "quiet-4", "quiet-5"]
WEIGHTS = [10, 1, 1, 1, 1]  # one client ten times louder than the others


def produce_backlog(settings: Settings, pool: list[tuple[str, bytes]], count: int,
                    topic_of: dict[str, str]) -> dict[str, int]:
    """Produce ``count`` records cycling through the pool; records per topic."""
    producer = Producer({**producer_config(settings), "linger.ms": 20,
                         "queue.buffering.max.messages": 500_000})
    order = [client for client, weight in zip(CLIENTS, WEIGHTS, strict=True)
             for _ in range(weight)]
    per_topic: dict[str, int] = {}
    for i in range(count):
        kind, value = pool[i % len(pool)]
        topic = topic_of[kind]
        while True:
            try:
                producer.produce(topic, key=f"{order[i % len(order)]}::{kind}::r{i}".encode(),
                                 value=value)
                break
            except BufferError:
                producer.poll(0.05)
        per_topic[topic] = per_topic.get(topic, 0) + 1
        if i % 50_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0, "backlog not fully produced"
    return per_topic


def run_bridge(settings: Settings, topics: list[str], total: int,
               state: Path) -> tuple[float, float, list[float]]:
    """Drain the backlog with one bridge process: (records/s, peak RSS MB, RSS samples)."""
    bridge = ManagedProcess("bench-bridge", [sys.executable, "-m", "kgcelery", "bridge"],
                            run_dir=state / "run", log_dir=state / "logs",
                            env=settings.child_env())
    bridge.start()
    try:
        first_at, first_count, samples = None, 0, []
        next_mark = 0.25
        while True:
            done = committed(settings, topics)
            now = time.monotonic()
            if done and first_at is None:
                first_at, first_count = now, done
            if done >= next_mark * total:
                samples.append(rss_mb(bridge.pid or 0, "VmRSS"))
                print(f"  {done:>9} / {total} records committed, bridge RSS "
                      f"{samples[-1]:.0f} MB", flush=True)
                while done >= next_mark * total:
                    next_mark += 0.25
            if done >= total:
                break
            if not bridge.alive():
                raise SystemExit(f"the bridge died:\n{bridge.tail()}")
            time.sleep(0.2)
        assert first_at is not None
        rate = (total - first_count) / max(1e-9, time.monotonic() - first_at)
        return rate, rss_mb(bridge.pid or 0, "VmHWM"), samples
    finally:
        bridge.stop()


def run_naive(settings: Settings, topic_of: dict[str, str], count: int) -> float:
    """The baseline: one Celery task per Kafka record, commit after publishing."""
    app = create_app(settings)
    consumer = Consumer(consumer_config(settings, group="bench-naive"))
    consumer.subscribe(sorted(set(topic_of.values())))
    done, started = 0, None
    with app.producer_or_acquire() as producer:
        while done < count:
            messages = consumer.consume(500, 0.5)
            if messages and started is None:
                started = time.monotonic()
            for message in messages:
                if message.error() is not None or done >= count:
                    continue
                client, _, entity = (message.key() or b"").decode().partition("::")
                app.send_task("kgcelery.ingest_events",
                              args=(client, [orjson.loads(message.value() or b"null")],
                                    [[message.topic(), message.partition(), message.offset(),
                                      entity]]),
                              queue=queue_for(client), producer=producer)
                done += 1
            if messages:
                last: dict[tuple[str, int], int] = {
                    (m.topic() or "", m.partition() or 0): m.offset() or 0 for m in messages}
                consumer.commit(offsets=[TopicPartition(t, p, o + 1)
                                         for (t, p), o in last.items()], asynchronous=False)
    consumer.close()
    assert started is not None
    return done / (time.monotonic() - started)


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="backlog the bridge drains (default 1,000,000)")
    parser.add_argument("--baseline-records", type=int, default=20_000,
                        help="records the one-task-per-record baseline publishes")
    parser.add_argument("--durable-rounds", type=int, choices=[1, 2], default=2,
                        help="durable runs, alternating with acknowledged-only ones")
    parser.add_argument("--durable-fsync", choices=["always", "everysec"], default="always",
                        help="Redis's appendfsync for the durable run (default always)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kgcelery-bench-") as tmp:
        state = Path(tmp)
        settings = Settings(state_dir=state, embedded_kafka_port=free_port(),
                            embedded_broker_port=free_port(), embedded_graph_port=free_port(),
                            dlq_guard_ratio=1.0)
        with EmbeddedStack(settings):
            registry = Registry.from_url(settings.registry_url)
            for client in CLIENTS:
                registry.register(client, cluster_name=client)
            topic_of = {kind: settings.topics_of(kind)[0]
                        for kind in ("event", "log", "resource", "alert")}
            print(f"generating a pool of realistic records; producing {args.records} ...",
                  flush=True)
            pool = sample_records(50_000)
            mix = {kind: sum(1 for k, _ in pool if k == kind) for kind in topic_of}
            size = sum(len(v) for _, v in pool) / len(pool)
            started = time.monotonic()
            per_topic = produce_backlog(settings, pool, args.records, topic_of)
            print(f"produced in {time.monotonic() - started:.1f} s; mix {mix}; "
                  f"mean value {size:.0f} bytes", flush=True)
            rate, peak, samples = run_bridge(settings, sorted(per_topic), args.records, state)
            depth = sum(registry.redis.llen(queue_for(c)) for c in CLIENTS)
            # The same backlog again, read by fresh groups into emptied queues, durable
            # and acknowledged-only in turns (best of each: the machine may be shared).
            # Durable as the production compose runs Redis: appendfsync always, each
            # write fsynced before its reply, so WAITAOF answers at once.
            rates: dict[str, list[float]] = {"off": [rate], "aof": []}
            for turn, mode in enumerate(["aof", "off", "aof"][:2 * args.durable_rounds - 1]):
                registry.redis.delete(*[queue_for(c) for c in CLIENTS])
                registry.redis.config_set(
                    "appendfsync", args.durable_fsync if mode == "aof" else "everysec")
                print(f"the same backlog, KGCELERY_BRIDGE_DURABLE={mode} ...", flush=True)
                again, _, _ = run_bridge(settings.model_copy(update={
                    "consumer_group": f"bench-{mode}-{turn}", "bridge_durable": mode}),
                    sorted(per_topic), args.records, state)
                rates[mode].append(again)
            registry.redis.config_set("appendfsync", "everysec")
            acknowledged, durable = max(rates["off"]), max(rates["aof"])

            naive_settings = settings.model_copy(update={"topics": {
                f"naive.{topic}": kind for kind, topic in topic_of.items()}})
            naive_topics = {kind: f"naive.{topic}" for kind, topic in topic_of.items()}
            from kgcelery.kafka import ensure_topics

            ensure_topics(naive_settings, list(naive_topics.values()))
            produce_backlog(naive_settings, pool, args.baseline_records, naive_topics)
            naive = run_naive(naive_settings, naive_topics, args.baseline_records)

    print()
    print(f"{'':<28}{'records/s':>12}")
    print(f"{'bridge (batched, 1 proc)':<28}{rate:>12,.0f}")
    print(f"{'bridge, durable (aof)':<28}{durable:>12,.0f}")
    print(f"{'one task per record':<28}{naive:>12,.0f}")
    print(f"bridge RSS at 25/50/75/100%: {' / '.join(f'{s:.0f}' for s in samples)} MB; "
          f"{depth} tasks queued at the end; {os.cpu_count()} CPUs")
    print(f"bridge: {rate:,.0f} records/s, {rate / naive:.1f}x one-task-per-record, "
          f"peak RSS {peak:.0f} MB")
    print(f"durable runs {', '.join(f'{r:,.0f}' for r in rates['aof'])}; acknowledged-only "
          f"{', '.join(f'{r:,.0f}' for r in rates['off'])} records/s (best of each below)")
    print(f"bridge-durable: {durable:,.0f} records/s, {durable / acknowledged:.2f}x "
          f"acknowledged-only (appendfsync {args.durable_fsync})")


if __name__ == "__main__":
    main()
