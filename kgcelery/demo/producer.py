"""``kgcelery demo``: play simulated client clusters into Kafka, as their agents would.

Each cluster has its kg-rca-agent (:mod:`kgcelery.demo.agent`), which puts on Kafka
what the real one does (``AGENT_FORMATS.md``; ``docs/AGENTS.md``): keys, topics and
values as the chart's jobs, the state-watcher, Vector and the alert-receiver write
them. Order: the install jobs' registrations first (flushed, so the bridge knows the
clients before their telemetry), then every cluster's informer snapshot, heartbeats
and Prometheus targets, then once a second each cluster's telemetry (``rate`` records
per second per client, roughly, before the agent fans them out into records), the
state-watcher's heartbeat and targets every 30 s and the CronJob's heartbeat every
minute, until ``stop`` is set or ``duration`` seconds have passed.

Topics are the agent's defaults, or the topic of the settings that ends with
``.<default>`` (a prefixed deployment); a topic kgcelery does not read is not played
(logged once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from confluent_kafka import KafkaError, Message, Producer

from kgcelery.clients import validate_client_id
from kgcelery.demo.agent import CRONJOB_HEARTBEAT_S, PROM_TARGETS_S, WATCHER_HEARTBEAT_S, Agent
from kgcelery.demo.agent_wire import AGENT_TOPICS, WireRecord
from kgcelery.demo.cluster import SimulatedCluster
from kgcelery.kafka import producer_config
from kgcelery.settings import Settings

log = logging.getLogger("kgcelery.demo")

#: The first simulated clients; more are called demo-4, demo-5, ...
DEMO_CLIENTS = (("acme-prod", "acme-eu-west-1"), ("globex-staging", "globex-staging-gke"),
                ("initech-dev", "initech-dev-kind"))
TICK_S = 1.0
REPORT_S = 10.0
#: A short pause after the registrations, so that a bridge already running has stored
#: them before the first telemetry of those clients reaches it.
REGISTRATION_GRACE_S = 1.0
_LOGGED_FAILURES = 10


def demo_clients(count: int) -> list[tuple[str, str]]:
    """(client id, cluster name) of the first ``count`` simulated clients."""
    clients = list(DEMO_CLIENTS[:count])
    clients += [(f"demo-{index}", f"demo-{index}-cluster")
                for index in range(len(DEMO_CLIENTS) + 1, count + 1)]
    return [(validate_client_id(client), cluster) for client, cluster in clients]


def agent_topics(settings: Settings) -> dict[str, str]:
    """The settings' topic for each of the agent's default topics that kgcelery reads."""
    topics: dict[str, str] = {}
    for topic in AGENT_TOPICS:
        if topic in settings.topics:
            topics[topic] = topic
            continue
        prefixed = [name for name in settings.topics if name.endswith("." + topic)]
        if len(prefixed) == 1:
            topics[topic] = prefixed[0]
    return topics


class _Output:
    """A producer that counts what it sends (by topic and client) and what failed."""

    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(producer_config(settings))
        self.topics = agent_topics(settings)
        unread = [topic for topic in AGENT_TOPICS if topic not in self.topics]
        if unread:
            log.warning("demo: the agent also writes %s, which KGCELERY_TOPICS does not "
                        "name; those records are not played", ", ".join(unread))
        self.by_topic: Counter[str] = Counter()
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

    def send(self, client: str, records: list[WireRecord], at: float) -> None:
        for record in records:
            topic = self.topics.get(record.topic)
            if topic is None:
                continue
            while True:
                try:
                    self.producer.produce(topic, key=record.key, value=record.value,
                                          timestamp=int(at * 1000),
                                          on_delivery=self._delivered)
                    break
                except BufferError:
                    # The local queue is full: let librdkafka deliver some first.
                    self.producer.poll(0.1)
            self.by_topic[record.topic] += 1
            self.by_client[client] += 1
        self.producer.poll(0)

    def report(self, prefix: str) -> None:
        topics = ", ".join(f"{topic} {count}" for topic, count in sorted(self.by_topic.items()))
        clients = ", ".join(f"{client} {count}" for client, count in self.by_client.items())
        log.info("demo %s: %d records (%s); by client: %s; %d delivery failures", prefix,
                 sum(self.by_topic.values()), topics, clients, self.failures)


class _Played:
    """One simulated cluster and its agent, with the agent's periodic duties."""

    def __init__(self, cluster: SimulatedCluster, start: float) -> None:
        self.cluster = cluster
        self.agent = Agent(cluster.client_id, cluster.cluster_name, region=cluster.region(start),
                           seed=cluster.seed)
        self.next_watcher_beat = self.next_cronjob_beat = self.next_targets = start

    def periodic(self, now: float) -> list[WireRecord]:
        """Heartbeats and target polls that are due."""
        out: list[WireRecord] = []
        if now >= self.next_watcher_beat:
            out.append(self.agent.watcher_heartbeat(now))
            self.next_watcher_beat += WATCHER_HEARTBEAT_S
        if now >= self.next_cronjob_beat:
            out.append(self.agent.cronjob_heartbeat(now))
            self.next_cronjob_beat += CRONJOB_HEARTBEAT_S
        if now >= self.next_targets:
            out += self.agent.prom_targets(self.cluster.nodes(now), now)
            self.next_targets += PROM_TARGETS_S
        return out


def run_demo(settings: Settings, *, clients: int, rate: float, duration: float,
             stop: threading.Event) -> None:
    """Play ``clients`` simulated clusters into Kafka until ``stop`` or ``duration``.

    :param settings: Kafka address and the topics kgcelery reads.
    :param clients: how many client clusters to play (each with its own seed).
    :param rate: telemetry records per second per client, roughly (each becomes one or
        more agent records: a pod change is a resource record and its edges).
    :param duration: seconds to run; 0 or less runs until ``stop`` is set.
    :param stop: set it to stop; the producer then flushes and returns.
    """
    start = time.time()
    played = [_Played(SimulatedCluster(client, cluster, seed=index), start)
              for index, (client, cluster) in enumerate(demo_clients(clients))]
    out = _Output(settings)
    for one in played:
        out.send(one.cluster.client_id, one.agent.install(start), start)
    out.producer.flush(30)
    log.info("demo: installed the agent in %s (its registration jobs ran)",
             ", ".join(one.cluster.client_id for one in played))
    stop.wait(REGISTRATION_GRACE_S)
    for one in played:
        now = time.time()
        out.send(one.cluster.client_id, one.agent.snapshot(one.cluster.snapshot(now)), now)
    next_tick = time.time()
    next_report = next_tick + REPORT_S
    owed = 0.0
    while not stop.is_set():
        now = time.time()
        if duration > 0 and now - start >= duration:
            break
        # Fractional rates add up over the ticks instead of being rounded away.
        owed += max(rate, 0.0) * TICK_S
        count, owed = int(owed), owed - int(owed)
        for one in played:
            records = one.agent.translate(one.cluster.tick(now, count))
            out.send(one.cluster.client_id, records + one.periodic(now), now)
        if now >= next_report:
            out.report("progress")
            next_report += REPORT_S
        next_tick += TICK_S
        stop.wait(max(0.0, next_tick - time.time()))
    left = out.producer.flush(30)
    out.report("done")
    if left:
        log.error("demo: %d records were still undelivered after 30 s", left)
