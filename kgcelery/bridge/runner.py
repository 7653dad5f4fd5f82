"""The bridge loop: Kafka → (client, kind) batches → Celery tasks on ``client.<id>``.

One consumer group reads every input topic once. Each record leaves exactly one way:
published in a batch, applied to the registry, or dead-lettered with its reason. An
offset is committed only when every record at or below it has left (see
:mod:`kgcelery.bridge.offsets`). When Redis is unreachable the bridge pauses its
partitions and retries with backoff, holding a bounded amount of data.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import redis
from celery import Celery
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from kgcelery.bridge.batcher import Batch, Batcher
from kgcelery.bridge.control_records import apply_heartbeat, apply_registry
from kgcelery.bridge.offsets import OffsetTracker
from kgcelery.bridge.publisher import TASK_FOR_KIND, TaskPublisher
from kgcelery.bridge.routing import Routed, classify
from kgcelery.control.registry import Registry
from kgcelery.deadletter import DeadLetter, DeadLetterWriter
from kgcelery.errors import RejectedRecordError
from kgcelery.kafka import consumer_config
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

CONTROL_KINDS = frozenset({"registry", "heartbeat"})
POLL_RECORDS = 2000
COMMIT_INTERVAL_S = 0.5
STATS_INTERVAL_S = 10.0
MAX_BACKOFF_S = 10.0


class RegisteredClients:
    """The set of registered clients, re-read from Redis at most every ``refresh`` s."""

    def __init__(self, registry: Registry, refresh: float) -> None:
        self.registry = registry
        self.refresh = refresh
        self._ids: set[str] = set()
        self._read_at = float("-inf")

    def __contains__(self, client_id: object) -> bool:
        now = time.monotonic()
        if client_id not in self._ids and now - self._read_at >= self.refresh:
            self._ids = self.registry.registered_ids()
            self._read_at = now
        return client_id in self._ids

    def added(self, client_id: str) -> None:
        self._ids.add(client_id)

    def removed(self, client_id: str) -> None:
        self._ids.discard(client_id)


class Bridge:
    """Consumes the input topics and routes every record; see the module docstring.

    :param settings: topics, group, batching limits.
    :param app: the Celery app whose broker receives the tasks.
    :param registry: the client registry.
    """

    def __init__(self, settings: Settings, *, app: Celery, registry: Registry,
                 consumer: Consumer | None = None,
                 dead_letters: DeadLetterWriter | None = None) -> None:
        self.settings = settings
        handled = set(TASK_FOR_KIND) | CONTROL_KINDS
        self.kinds = {topic: kind for topic, kind in settings.topics.items() if kind in handled}
        skipped = sorted(set(settings.topics) - set(self.kinds))
        if skipped:
            log.info("not consuming %s: no task for their kind yet", ", ".join(skipped))
        self.registry = registry
        self.registered = RegisteredClients(registry, settings.registry_refresh_s)
        self.publisher = TaskPublisher(app)
        self.dead_letters = dead_letters or DeadLetterWriter(settings, settings.dlq_raw_topic)
        self.consumer = consumer or Consumer(consumer_config(settings))
        self.batcher = Batcher(max_records=settings.batch_max_records,
                               max_bytes=settings.batch_max_bytes,
                               max_wait=settings.batch_max_wait_s)
        self.offsets = OffsetTracker()
        self.routed: Counter[tuple[str, str]] = Counter()
        self.rejected: Counter[str] = Counter()
        self.published_tasks = 0
        self._undelivered: list[Batch] = []
        self._backoff = 0.0
        self._retry_at = 0.0
        self._paused = False
        self._last_commit = 0.0
        self._last_stats = time.monotonic()

    # -- the loop -----------------------------------------------------------------
    def run(self, stop: threading.Event | Callable[[], bool]) -> None:
        """Consume until ``stop`` is set; then flush, commit and leave the group."""
        should_stop = stop.is_set if isinstance(stop, threading.Event) else stop
        self.consumer.subscribe(list(self.kinds), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        log.info("bridge consuming %s as group %s", ", ".join(sorted(self.kinds)),
                 self.settings.consumer_group)
        try:
            while not should_stop():
                self.step()
        finally:
            self.shutdown()

    def step(self, timeout: float = 0.1) -> int:
        """One round: consume, route, publish what is ready, commit. Returns records read."""
        messages = self.consumer.consume(POLL_RECORDS, timeout)
        now = time.monotonic()
        control = [m for m in messages if self.kinds.get(m.topic() or "") in CONTROL_KINDS]
        data = [m for m in messages if self.kinds.get(m.topic() or "") not in CONTROL_KINDS]
        # Registrations first: a client's registration and first records often come together.
        for message in control:
            self._take(message, now)
        self._deliver(self.batcher.drain_kinds(CONTROL_KINDS))
        for message in data:
            self._take(message, now)
        self._deliver(self.batcher.due(now))
        self._retry_undelivered(now)
        if now - self._last_commit >= COMMIT_INTERVAL_S:
            self.commit()
        if now - self._last_stats >= STATS_INTERVAL_S:
            self._log_stats()
        return len(messages)

    def _take(self, message: Message, now: float) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("kafka: %s", error)
            return
        topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
        tp = (topic, partition)
        self.offsets.consumed(tp, offset)
        try:
            routed = classify(topic, message.key(), message.value(), kinds=self.kinds,
                              max_value_bytes=self.settings.max_value_bytes)
            if routed.kind not in CONTROL_KINDS and routed.client_id not in self.registered:
                raise RejectedRecordError("unregistered-client",
                                          f"client {routed.client_id!r} is not registered")
        except RejectedRecordError as rejection:
            self._dead_letter(message, rejection)
            self.offsets.finished(tp, offset)
            return
        full = self.batcher.add(routed, tp, offset, now)
        if full is not None:
            self._deliver([full])

    def _dead_letter(self, message: Message, rejection: RejectedRecordError,
                     client_id: str = "") -> None:
        self.rejected[rejection.reason] += 1
        self.dead_letters.send(DeadLetter(
            reason=rejection.reason, error=rejection.detail, key=message.key(),
            value=message.value(), client_id=client_id,
            origin=(message.topic() or "", message.partition() or 0, message.offset() or 0)))

    # -- delivery -----------------------------------------------------------------
    def _deliver(self, batches: list[Batch]) -> None:
        for batch in batches:
            if self._undelivered:
                self._undelivered.append(batch)  # keep order behind earlier failures
                continue
            try:
                self._deliver_one(batch)
            except (redis.RedisError, OSError, ConnectionError) as exc:
                self._undelivered.append(batch)
                self._hold(exc)

    def _deliver_one(self, batch: Batch) -> None:
        if batch.kind in CONTROL_KINDS:
            self._apply_control(batch)
        else:
            self.publisher.publish(batch)
            self.published_tasks += 1
            self.routed[(batch.client_id, batch.kind)] += len(batch.records)
        for tp, offset in batch.offsets():
            self.offsets.finished(tp, offset)

    def _apply_control(self, batch: Batch) -> None:
        for record, (topic, partition, offset, entity) in zip(batch.records, batch.origins,
                                                              strict=True):
            try:
                if batch.kind == "registry":
                    apply_registry(self.registry, batch.client_id, record)
                    if record is None:
                        self.registered.removed(batch.client_id)
                    else:
                        self.registered.added(batch.client_id)
                else:
                    apply_heartbeat(self.registry, batch.client_id, record)
                self.routed[(batch.client_id, batch.kind)] += 1
            except RejectedRecordError as rejection:
                self.rejected[rejection.reason] += 1
                self.dead_letters.send(DeadLetter(
                    reason=rejection.reason, error=rejection.detail,
                    key=f"{batch.client_id}::{entity}".encode(),
                    value=None if record is None else json.dumps(record).encode(),
                    origin=(topic, partition, offset), client_id=batch.client_id))

    def _hold(self, exc: Exception) -> None:
        """Redis is unreachable: pause consumption and retry with backoff."""
        self._backoff = min(MAX_BACKOFF_S, max(0.5, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        log.warning("cannot publish (%s); pausing consumption, retrying in %.1f s",
                    exc, self._backoff)
        if not self._paused:
            self.consumer.pause(self.consumer.assignment())
            self._paused = True

    def _retry_undelivered(self, now: float) -> None:
        if not self._undelivered or now < self._retry_at:
            return
        waiting, self._undelivered = self._undelivered, []
        self._deliver(waiting)
        if not self._undelivered:
            log.info("publishing again; resuming consumption")
            self._backoff = 0.0
            if self._paused:
                self.consumer.resume(self.consumer.assignment())
                self._paused = False

    # -- commits and rebalances ----------------------------------------------------
    def commit(self) -> None:
        """Commit every partition's watermark, once its dead letters are written."""
        self._last_commit = time.monotonic()
        ready = self.offsets.committable()
        if not ready:
            return
        self.dead_letters.flush()
        self.consumer.commit(offsets=[TopicPartition(topic, partition, offset)
                                      for (topic, partition), offset in ready.items()],
                             asynchronous=False)
        self.offsets.committed(ready)

    def flush(self) -> None:
        """Publish every open batch and commit; used before letting partitions go."""
        self._deliver(self.batcher.drain())
        deadline = time.monotonic() + 30
        while self._undelivered and time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, self._retry_at - time.monotonic())))
            self._retry_undelivered(time.monotonic())
        self.commit()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        if self._paused:
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        try:
            self.flush()
        except Exception:
            log.exception("could not flush before the rebalance; the new owner re-reads")
        self.offsets.forget([(p.topic, p.partition) for p in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %d partitions; their uncommitted records will be re-read",
                    len(partitions))
        self.offsets.forget([(p.topic, p.partition) for p in partitions])

    def shutdown(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("final flush failed; uncommitted records will be re-read")
        finally:
            self.consumer.close()
            self._log_stats()

    def _log_stats(self) -> None:
        self._last_stats = time.monotonic()
        total = sum(self.routed.values())
        log.info("routed %d records in %d tasks; dead-lettered %s; pending %d",
                 total, self.published_tasks, dict(self.rejected) or 0,
                 self.offsets.pending_count())
