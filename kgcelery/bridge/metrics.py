"""What the bridge counts: Prometheus metrics, and a snapshot in Redis for the CLI.

Every bridge process writes its snapshot to ``kgcelery:bridge:<host>-<pid>`` (expiring
after 30 s) so that ``kgcelery bridge --stats`` and ``kgcelery up`` can show all of them.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from kgcelery.bridge.guard import Flood

STATS_PREFIX = "kgcelery:bridge:"
STATS_TTL_S = 30


class BridgeMetrics:
    """The bridge's counters, in Prometheus form and as plain numbers."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.records = PromCounter("kgcelery_bridge_records", "Records routed to a client queue",
                                   ["client", "kind"], registry=self.registry)
        self.dead_letters = PromCounter("kgcelery_bridge_dead_letters",
                                        "Records dead-lettered by the bridge", ["reason"],
                                        registry=self.registry)
        self.topic_dead_letters = PromCounter(
            "kgcelery_bridge_topic_dead_letters",
            "Records dead-lettered by the bridge, per source topic and reason",
            ["topic", "reason"], registry=self.registry)
        self.flooding = Gauge(
            "kgcelery_bridge_source_flooding",
            "1 while a source (topic x client, or x unkeyed) is nearly all dead-lettered",
            ["topic", "client"], registry=self.registry)
        self.kcat_joined = PromCounter(
            "kgcelery_bridge_kcat_joined",
            "Control records accepted whole although kcat -K: split them at their first ':'",
            ["topic"], registry=self.registry)
        self.tasks = PromCounter("kgcelery_bridge_tasks", "Batches published as tasks",
                                 registry=self.registry)
        self.wakes = PromCounter(
            "kgcelery_bridge_wakes",
            "Scaling runs asked for out of turn: records came for a client that may hold "
            "no worker", registry=self.registry)
        self.batch_latency = Histogram(
            "kgcelery_bridge_batch_latency_seconds",
            "Time from a batch's first record to its publication", registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.lag = Gauge("kgcelery_bridge_consumer_lag", "Records not yet read, per partition",
                         ["topic", "partition"], registry=self.registry)
        self.paused = Gauge("kgcelery_bridge_paused",
                            "1 while consumption is paused (Redis unreachable or full)",
                            registry=self.registry)
        self.over_ceiling = Gauge("kgcelery_bridge_clients_over_ceiling",
                                  "Clients whose queue is above the ceiling",
                                  registry=self.registry)
        self.routed: Counter[tuple[str, str]] = Counter()
        self.rejected: Counter[str] = Counter()
        self.rejected_by_topic: Counter[tuple[str, str]] = Counter()
        self.joined = 0
        self.floods: list[Flood] = []
        self.task_count = 0
        self.wake_count = 0
        self.lags: dict[str, int] = {}
        self.last_latency = 0.0

    def routed_batch(self, client_id: str, kind: str, records: int, latency: float) -> None:
        self.records.labels(client_id, kind).inc(records)
        self.routed[(client_id, kind)] += records
        if kind not in ("registry", "heartbeat"):
            self.tasks.inc()
            self.task_count += 1
            self.batch_latency.observe(latency)
            self.last_latency = latency

    def woke(self) -> None:
        self.wakes.inc()
        self.wake_count += 1

    def dead_lettered(self, reason: str, topic: str) -> None:
        self.dead_letters.labels(reason).inc()
        self.topic_dead_letters.labels(topic, reason).inc()
        self.rejected[reason] += 1
        self.rejected_by_topic[(topic, reason)] += 1

    def kcat_record(self, topic: str) -> None:
        self.kcat_joined.labels(topic).inc()
        self.joined += 1

    def set_floods(self, floods: list[Flood]) -> None:
        """The sources flooding now (gauges of those that ended go back to 0)."""
        now = {(flood.topic, flood.client) for flood in floods}
        for flood in self.floods:
            if (flood.topic, flood.client) not in now:
                self.flooding.labels(flood.topic, flood.client).set(0)
        for topic, client in now:
            self.flooding.labels(topic, client).set(1)
        self.floods = floods

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(topic, str(partition)).set(lag)
        self.lags[f"{topic}[{partition}]"] = lag

    def snapshot(self, *, paused: bool, pending: int, over_ceiling: set[str]) -> dict[str, Any]:
        return {
            "bridge": f"{socket.gethostname()}-{os.getpid()}", "at": time.time(),
            "records": {f"{c}/{k}": n for (c, k), n in sorted(self.routed.items())},
            "dead_letters": dict(self.rejected), "tasks": self.task_count,
            "wakes": self.wake_count,
            "dead_letters_by_topic": _nested(self.rejected_by_topic),
            "flooding": [asdict(flood) for flood in self.floods],
            "kcat_joined": self.joined,
            "lag": dict(self.lags), "last_batch_latency_s": round(self.last_latency, 4),
            "paused": paused, "pending": pending, "over_ceiling": sorted(over_ceiling),
        }


def _nested(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (topic, reason), count in sorted(counts.items()):
        nested.setdefault(topic, {})[reason] = count
    return nested


def publish_snapshot(client: redis.Redis, snapshot: dict[str, Any]) -> None:
    client.set(STATS_PREFIX + snapshot["bridge"], json.dumps(snapshot), ex=STATS_TTL_S)


def read_snapshots(client: redis.Redis) -> list[dict[str, Any]]:
    """Snapshots of every bridge process alive in the last 30 s."""
    keys = sorted(client.scan_iter(match=STATS_PREFIX + "*", count=100))
    values = client.mget(keys) if keys else []
    return [json.loads(value) for value in values if value]
