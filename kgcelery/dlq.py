"""Dead-letter topics for people: list them by reason and client, and replay them.

Replay re-drives a dead letter's original key and value into its source topic (the
``kg-source-topic`` header), e.g. after its client registered. It re-drives every
matching letter each time it runs; graph writes are idempotent, so replaying twice
costs work, not correctness. Replayed records carry a ``kg-replay-of`` header.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from kgcelery.client_topics import ClientTopics
from kgcelery.deadletter import REASON_HEADER, headers_of
from kgcelery.errors import ReplayError
from kgcelery.kafka import common_config, producer_config
from kgcelery.settings import Settings

READ_TIMEOUT_S = 60.0
IDLE_S = 1.0


@dataclass(frozen=True)
class Letter:
    """One dead letter as stored in its topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers.get(REASON_HEADER, "unknown")

    @property
    def client(self) -> str:
        if self.headers.get("kg-client"):
            return self.headers["kg-client"]
        key = (self.key or b"").decode("utf-8", "replace")
        return key.partition("::")[0] if "::" in key else "-"

    @property
    def source_topic(self) -> str:
        return self.headers.get("kg-source-topic", "")

    def summary(self) -> dict[str, Any]:
        value = (self.value or b"").decode("utf-8", "replace")
        return {"offset": f"{self.topic}/{self.partition}/{self.offset}",
                "key": (self.key or b"").decode("utf-8", "replace"),
                "error": self.headers.get("kg-error", ""),
                "source": f"{self.source_topic}/{self.headers.get('kg-source-partition', '')}/"
                          f"{self.headers.get('kg-source-offset', '')}",
                "value": value if len(value) <= 200 else value[:200] + "…"}


def read_letters(settings: Settings, topic: str, *, timeout: float = READ_TIMEOUT_S,
                 idle: float = IDLE_S) -> Iterator[Letter]:
    """Every letter of ``topic``, from the beginning until the topic goes quiet.

    XXX: reading stops once every partition has passed the high watermark it had at the
    start *and* nothing arrived for ``idle`` seconds. The watermark alone is not trusted:
    Tansu 0.6 reports it as the last record batch's base offset + 1.
    """
    consumer = Consumer({**common_config(settings), "group.id": "kgcelery-dlq-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return
        ends = {partition: consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10)[1]
                for partition in metadata.partitions}
        if not any(end > 0 for end in ends.values()):
            return
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            messages = consumer.consume(1000, 0.2)
            for message in messages:
                if message.error() is not None:
                    continue
                partition, offset = message.partition() or 0, message.offset() or 0
                ends[partition] = max(ends.get(partition, 0), offset + 1)
                yield Letter(topic, partition, offset, message.key(), message.value(),
                             headers_of(message))
            if messages:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= idle and _reached(consumer, topic, ends):
                return
    finally:
        consumer.close()


def _reached(consumer: Consumer, topic: str, ends: dict[int, int]) -> bool:
    positions = consumer.position([TopicPartition(topic, p) for p in ends])
    return all(tp.offset >= ends[tp.partition] or ends[tp.partition] == 0 for tp in positions)


def select(letters: Iterable[Letter], *, reasons: tuple[str, ...] = (),
           clients: tuple[str, ...] = (),
           source_topics: tuple[str, ...] = ()) -> Iterator[Letter]:
    for letter in letters:
        if reasons and letter.reason not in reasons:
            continue
        if clients and letter.client not in clients:
            continue
        if source_topics and letter.source_topic not in source_topics:
            continue
        yield letter


def summarize(letters: Iterable[Letter], samples: int = 3) -> list[dict[str, Any]]:
    """Counts per (reason, client, source topic), with a few samples each; the biggest
    group first. Records that name no client (client ``-``) are grouped by the topic
    they came from, which tells which producer to fix."""
    groups: dict[tuple[str, str, str], list[Letter]] = defaultdict(list)
    for letter in letters:
        groups[(letter.reason, letter.client, letter.source_topic)].append(letter)
    rows = [{"reason": reason, "client": client, "source_topic": topic, "count": len(group),
             "samples": [letter.summary() for letter in group[:samples]]}
            for (reason, client, topic), group in groups.items()]
    return sorted(rows, key=lambda row: (-row["count"], row["reason"], row["client"],
                                         row["source_topic"]))


def replay(settings: Settings, letters: Iterable[Letter], *, dry_run: bool) -> dict[str, int]:
    """Produce each letter's key and value to its source topic; counts per target topic.

    Letters without a source topic are skipped (counted under ``"(no source)"``).
    """
    counts: dict[str, int] = defaultdict(int)
    client_topics = ClientTopics.of(settings.client_topics)
    producer = None if dry_run else Producer(producer_config(settings))
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for letter in letters:
        target = letter.source_topic
        if not target or (target not in settings.topics and not client_topics.match(target)):
            counts["(no source)" if not target else f"(unknown topic {target})"] += 1
            continue
        counts[target] += 1
        if producer is not None:
            producer.produce(target, key=letter.key, value=letter.value,
                             headers=[("kg-replay-of",
                                       f"{letter.topic}/{letter.partition}/{letter.offset}")],
                             on_delivery=delivered)
            producer.poll(0)
    if producer is not None and (producer.flush(30) or failures):
        raise ReplayError(f"replay incomplete: {failures[:3] or 'flush timed out'}; "
                          "replaying again is safe (graph writes are idempotent)")
    return dict(counts)
