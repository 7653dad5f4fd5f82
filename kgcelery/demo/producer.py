"""``kgcelery demo``: play simulated client clusters into Kafka, as their agents would.

Order: every registration first (flushed, so the bridge knows the clients before
their telemetry), then every cluster's snapshot, then once a second each cluster's
telemetry (``rate`` records per second per client, roughly) and every 10 s its
heartbeat, until ``stop`` is set or ``duration`` seconds have passed. Keys are
``<client>::<entity>``, values UTF-8 JSON, the topic of a kind is the first topic
that the settings map to it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from kgcelery.clients import validate_client_id
from kgcelery.demo.cluster import SimulatedCluster
from kgcelery.demo.world import DemoRecord
from kgcelery.errors import KgceleryError
from kgcelery.kafka import producer_config
from kgcelery.settings import Settings

log = logging.getLogger("kgcelery.demo")

#: The first simulated clients; more are called demo-4, demo-5, ...
DEMO_CLIENTS = (("acme-prod", "acme-eu-west-1"), ("globex-staging", "globex-staging-gke"),
                ("initech-dev", "initech-dev-kind"))
TICK_S = 1.0
HEARTBEAT_S = 10.0
REPORT_S = 10.0
#: A short pause after the registrations, so that a bridge already running has stored
#: them before the first telemetry of those clients reaches it.
REGISTRATION_GRACE_S = 1.0
_KINDS = ("registry", "heartbeat", "resource", "event", "log", "alert")
_LOGGED_FAILURES = 10


def demo_clients(count: int) -> list[tuple[str, str]]:
    """(client id, cluster name) of the first ``count`` simulated clients."""
    clients = list(DEMO_CLIENTS[:count])
    clients += [(f"demo-{index}", f"demo-{index}-cluster")
                for index in range(len(DEMO_CLIENTS) + 1, count + 1)]
    return [(validate_client_id(client), cluster) for client, cluster in clients]


def topics_by_kind(settings: Settings) -> dict[str, str]:
    """The topic each kind is produced to; raises if a kind has none."""
    topics: dict[str, str] = {}
    for kind in _KINDS:
        candidates = settings.topics_of(kind)
        if not candidates:
            raise KgceleryError(f"no topic carries kind {kind!r}; add one to KGCELERY_TOPICS")
        topics[kind] = candidates[0]
    return topics


class _Output:
    """A producer that counts what it sends (by kind and client) and what failed."""

    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(producer_config(settings))
        self.topics = topics_by_kind(settings)
        self.by_kind: Counter[str] = Counter()
        self.by_client: Counter[str] = Counter()
        self.failures = 0

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        self.failures += 1
        if self.failures <= _LOGGED_FAILURES:
            log.warning("demo: delivery to %s failed: %s", message.topic(), error)
        elif self.failures == _LOGGED_FAILURES + 1:
            log.warning("demo: more delivery failures; only their count is reported from now")

    def send(self, client: str, kind: str, entity: str, value: dict[str, Any],
             at: float) -> None:
        payload = json.dumps(value, separators=(",", ":")).encode("utf-8")
        while True:
            try:
                self.producer.produce(self.topics[kind], key=f"{client}::{entity}".encode(),
                                      value=payload, timestamp=int(at * 1000),
                                      on_delivery=self._delivered)
                break
            except BufferError:
                # The local queue is full: let librdkafka deliver some first.
                self.producer.poll(0.1)
        self.by_kind[kind] += 1
        self.by_client[client] += 1

    def send_records(self, client: str, records: list[DemoRecord]) -> None:
        for record in records:
            self.send(client, record.kind, record.entity, record.value, record.ts)
        self.producer.poll(0)

    def report(self, prefix: str) -> None:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.by_kind.items()))
        clients = ", ".join(f"{client} {count}" for client, count in self.by_client.items())
        log.info("demo %s: %d records (%s); by client: %s; %d delivery failures", prefix,
                 sum(self.by_kind.values()), kinds, clients, self.failures)


def run_demo(settings: Settings, *, clients: int, rate: float, duration: float,
             stop: threading.Event) -> None:
    """Play ``clients`` simulated clusters into Kafka until ``stop`` or ``duration``.

    :param settings: Kafka address and the topic of each kind.
    :param clients: how many client clusters to play (each with its own seed).
    :param rate: telemetry records per second per client, roughly.
    :param duration: seconds to run; 0 or less runs until ``stop`` is set.
    :param stop: set it to stop; the producer then flushes and returns.
    """
    clusters = [SimulatedCluster(client, cluster, seed=index)
                for index, (client, cluster) in enumerate(demo_clients(clients))]
    out = _Output(settings)
    start = time.time()
    for cluster in clusters:
        out.send(cluster.client_id, "registry", "registry", cluster.registration(start), start)
    out.producer.flush(30)
    log.info("demo: registered %s", ", ".join(cluster.client_id for cluster in clusters))
    stop.wait(REGISTRATION_GRACE_S)
    for cluster in clusters:
        now = time.time()
        out.send_records(cluster.client_id, cluster.snapshot(now))
    next_tick = next_heartbeat = time.time()
    next_report = next_tick + REPORT_S
    owed = 0.0
    while not stop.is_set():
        now = time.time()
        if duration > 0 and now - start >= duration:
            break
        if now >= next_heartbeat:
            for cluster in clusters:
                out.send(cluster.client_id, "heartbeat", "heartbeat", cluster.heartbeat(now), now)
            next_heartbeat += HEARTBEAT_S
        # Fractional rates add up over the ticks instead of being rounded away.
        owed += max(rate, 0.0) * TICK_S
        count, owed = int(owed), owed - int(owed)
        for cluster in clusters:
            out.send_records(cluster.client_id, cluster.tick(now, count))
        if now >= next_report:
            out.report("progress")
            next_report += REPORT_S
        next_tick += TICK_S
        stop.wait(max(0.0, next_tick - time.time()))
    left = out.producer.flush(30)
    out.report("done")
    if left:
        log.error("demo: %d records were still undelivered after 30 s", left)
