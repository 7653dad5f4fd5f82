"""The bridge loop: Kafka → (client, kind) batches → Celery tasks on ``client.<id>``.

One consumer group reads every input topic once. Each record leaves exactly one way:
published in a batch, applied to the registry, or dead-lettered with its reason. No
source can stop the bridge: dead letters are judged per topic and client
(:mod:`kgcelery.bridge.guard`), and a flooding source is reported, never obeyed. An
offset is committed only when every record at or below it has left (see
:mod:`kgcelery.bridge.offsets`), and never before the dead letters are written. When
Redis is unreachable, or too much is unpublished, the bridge pauses its partitions
(staying in the group) and retries with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from celery import Celery
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from kgcelery.bridge.batcher import Batch, Batcher
from kgcelery.bridge.control_records import apply_heartbeat, apply_registry
from kgcelery.bridge.guard import UNKEYED, SourceGuard
from kgcelery.bridge.metrics import BridgeMetrics, publish_snapshot
from kgcelery.bridge.offsets import OffsetTracker, Segment
from kgcelery.bridge.quota import QueueQuota
from kgcelery.bridge.routing import CONTROL_KINDS, Routed, classify
from kgcelery.bridge.wake import Wake
from kgcelery.broker import Durability, open_broker
from kgcelery.client_topics import ClientTopics
from kgcelery.clients import CONTROL_QUEUE
from kgcelery.control.registry import Registry
from kgcelery.deadletter import DeadLetter, DeadLetterWriter
from kgcelery.errors import BrokerUnavailableError, RejectedRecordError
from kgcelery.kafka import consumer_config
from kgcelery.kinds import TASK_FOR_KIND, WAKE_TASK
from kgcelery.liveness import Heartbeat
from kgcelery.retry import Backoff
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

POLL_RECORDS = 5000
COMMIT_INTERVAL_S = 0.5
REPORT_INTERVAL_S = 5.0
#: Waits between attempts to publish while the broker is away.
PUBLISH_BACKOFF = Backoff(base_s=0.5, max_s=10.0)
FLUSH_TIMEOUT_S = 30.0
#: A wake still queued after this long (the control worker was away) is dropped: beat's
#: own runs have long since done what it asked for.
WAKE_EXPIRES_S = 60.0
# The registry's Redis away (registrations, heartbeats), or the broker (tasks).
_PUBLISH_ERRORS = (redis.RedisError, OSError, BrokerUnavailableError)


@dataclass(frozen=True, slots=True)
class _Held:
    """A record of a client not registered (yet), and since when its client is held."""

    routed: Routed
    segment: Segment
    message: Message
    since: float


class RegisteredClients:
    """The set of registered clients, re-read from Redis at most every ``refresh`` s."""

    def __init__(self, registry: Registry, refresh: float) -> None:
        self.registry = registry
        self.refresh = refresh
        self._ids: set[str] = set()
        self._read_at = float("-inf")
        self._loaded = False

    def __contains__(self, client_id: object) -> bool:
        if client_id in self._ids:
            return True
        now = time.monotonic()
        if now - self._read_at >= self.refresh:
            try:
                self._ids = self.registry.registered_ids()
                self._loaded = True
            except _PUBLISH_ERRORS as exc:
                if not self._loaded:
                    raise  # never read: nothing to decide with
                # The registry's Redis is away: decide with what was last read (a client
                # registered since came through Kafka and was added), read again later.
                log.warning("registry unreadable (%s); using the last %d clients read",
                            exc, len(self._ids))
            self._read_at = now
        return client_id in self._ids

    def read_soon(self) -> None:
        """Read the registry at the next question (another bridge may have registered
        the client), but not more often than every ``refresh`` s."""
        self._read_at = min(self._read_at, time.monotonic() - self.refresh + 0.2)

    def added(self, client_id: str) -> None:
        self._ids.add(client_id)

    def removed(self, client_id: str) -> None:
        self._ids.discard(client_id)
        self._read_at = float("-inf")


class Bridge:
    """Consumes the input topics and routes every record; see the module docstring."""

    def __init__(self, settings: Settings, *, app: Celery, registry: Registry,
                 consumer: Consumer | None = None,
                 dead_letters: DeadLetterWriter | None = None,
                 metrics: BridgeMetrics | None = None) -> None:
        self.settings = settings
        self.app = app
        handled = set(TASK_FOR_KIND) | CONTROL_KINDS
        self.kinds = {topic: kind for topic, kind in settings.topics.items() if kind in handled}
        self.control_topics = frozenset(t for t, k in self.kinds.items() if k in CONTROL_KINDS)
        self.client_topics = ClientTopics.of(settings.client_topics)
        self.registry = registry
        self.registered = RegisteredClients(registry, settings.registry_refresh_s)
        self.publisher = open_broker(app, settings.broker_url, Durability(
            settings.bridge_durable, settings.bridge_durable_timeout_ms,
            settings.bridge_durable_replicas))
        self.dead_letters = dead_letters or DeadLetterWriter(settings, settings.dlq_raw_topic)
        self.consumer = consumer or Consumer(consumer_config(settings))
        self.batcher = Batcher(max_records=settings.batch_max_records,
                               max_bytes=settings.batch_max_bytes,
                               max_wait=settings.batch_max_wait_s,
                               backlog_wait=settings.batch_backlog_wait_s)
        self.offsets = OffsetTracker()
        self.metrics = metrics or BridgeMetrics()
        self.guard = SourceGuard(max_ratio=settings.dlq_guard_ratio,
                                 window=settings.dlq_guard_window)
        self._kcat_clients: set[str] = set()
        self.wake = Wake(quiet_after_s=settings.scale_idle_grace_s, every_s=settings.scale_wake_s)
        self.quota = QueueQuota(self.publisher.queue_depths,
                                ceiling=settings.client_queue_ceiling,
                                hard_limit=settings.client_queue_hard_limit)
        self._undelivered: list[Batch] = []
        self._attempts = 0  # failed attempts to publish in a row
        # Records of clients not registered (yet), held for UNREGISTERED_GRACE_S: an
        # agent's registration and its first records arrive on different topics, in
        # either order. Unsettled, so nothing past them is committed meanwhile.
        self._held: dict[str, list[_Held]] = {}
        self._held_bytes = 0
        self._held_since = 0.0
        self._retry_at = 0.0
        self._paused = False
        self._last_commit = 0.0
        self._last_report = 0.0
        self.alive = Heartbeat(settings.liveness_dir, "bridge")

    # -- the loop -----------------------------------------------------------------
    def run(self, stop: threading.Event | Callable[[], bool]) -> None:
        """Consume until ``stop`` is set; then flush, commit and leave the group."""
        should_stop = stop.is_set if isinstance(stop, threading.Event) else stop
        self.subscribe()
        try:
            while not should_stop():
                self.step()
        finally:
            self.shutdown()

    def subscribe(self) -> None:
        patterns = self.client_topics.patterns()
        self.consumer.subscribe([*self.kinds, *patterns], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        log.info("bridge consuming %s as group %s", ", ".join([*sorted(self.kinds), *patterns]),
                 self.settings.consumer_group)

    def step(self, timeout: float = 0.1) -> int:
        """One round: consume, route, publish what is ready, commit. Returns records read."""
        messages = self.consumer.consume(POLL_RECORDS, timeout)
        now = time.monotonic()
        self.offsets.next_poll()
        if messages:
            control = [m for m in messages if m.topic() in self.control_topics]
            if control:
                # Registrations first: a client's registration and first records often
                # arrive in the same poll.
                self._route(control, now, [])
                self._deliver(self.batcher.drain_kinds(CONTROL_KINDS))
            ready: list[Batch] = []
            self._route([m for m in messages if m.topic() not in self.control_topics]
                        if control else messages, now, ready)
            self._deliver(ready)
        if self._held:
            released: list[Batch] = []
            self._release_held(now, released)
            self._deliver(released)
        for level, notice in self.guard.end_poll(now):
            log.log(level, notice)
        due = self.batcher.due(now, self.quota.backlogged)
        for batch in due:
            self.quota.published(batch.client_id)
        self._deliver(due)
        self._retry_undelivered(now)
        if self.wake.due(time.monotonic()):
            self._send_wake()
        self._pause_if_full()
        if now - self._last_commit >= COMMIT_INTERVAL_S:
            self.commit()
        if now - self._last_report >= REPORT_INTERVAL_S:
            self._report()
        return len(messages)

    def _route(self, messages: list[Message], now: float, ready: list[Batch]) -> None:
        kinds, limit, client_topics = self.kinds, self.settings.max_value_bytes, self.client_topics
        hard_limit = self.settings.client_queue_hard_limit
        accepted, watched = self.guard.accepted, self.guard.watched
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka: %s", error)
                continue
            topic, partition, offset = message.topic() or "", message.partition(), message.offset()
            segment = self.offsets.consumed((topic, partition or 0), offset or 0)
            try:
                routed = classify(topic, message.key(), message.value(), kinds=kinds,
                                  max_value_bytes=limit, client_topics=client_topics)
                client = routed.client_id
                if routed.kcat_joined:
                    self._kcat_joined(topic, client)
                elif routed.kind not in CONTROL_KINDS:
                    if client in self._held or (client not in self.registered
                                                and self.settings.unregistered_grace_s > 0):
                        self._hold_record(client, _Held(routed, segment, message, now))
                        continue
                    if client not in self.registered:
                        raise RejectedRecordError(
                            "unregistered-client", f"client {client!r} is not registered "
                            "(replay with 'kgcelery dlq replay' once it is)", client_id=client)
                    if hard_limit and self.quota.refuses(client):
                        raise RejectedRecordError(
                            "client-over-quota", f"client {client!r} has more than "
                            f"{hard_limit} tasks queued (KGCELERY_CLIENT_QUEUE_HARD_LIMIT)",
                            client_id=client)
            except RejectedRecordError as rejection:
                self._dead_letter(rejection, message.key(), message.value(),
                                  (topic, partition or 0, offset or 0))
                segment.settle()
                continue
            if watched and client in watched.get(topic, ()):
                accepted[(topic, client)] += 1  # a source with recent dead letters
            self._batch(routed, segment, message, now, ready)

    def _batch(self, routed: Routed, segment: Segment, message: Message, now: float,
               ready: list[Batch]) -> None:
        full = self.batcher.add(routed, segment, message.offset() or 0, now,
                                message.timestamp()[1])
        if full is not None:
            ready.append(full)
            self.quota.published(full.client_id)

    def _hold_record(self, client: str, held: _Held) -> None:
        if client not in self._held:
            log.info("holding records of %s, not registered (yet), for up to %g s",
                     client, self.settings.unregistered_grace_s)
            self.registered.read_soon()
        self._held.setdefault(client, []).append(held)
        self._held_bytes += len(held.message.value() or b"")

    def _release_held(self, now: float, ready: list[Batch]) -> None:
        """Route the held records of clients registered since; dead-letter those of
        clients still unknown after the grace."""
        grace = self.settings.unregistered_grace_s
        for client in list(self._held):
            records = self._held[client]
            registered = client in self.registered
            if not registered and now - records[0].since < grace:
                continue
            del self._held[client]
            self._held_bytes -= sum(len(h.message.value() or b"") for h in records)
            for held in records:
                message = held.message
                if registered:
                    self._batch(held.routed, held.segment, message, now, ready)
                    continue
                self._dead_letter(RejectedRecordError(
                    "unregistered-client", f"client {client!r} is not registered (held "
                    f"{grace:g} s for its registration; replay with 'kgcelery dlq replay' "
                    "once it is)", client_id=client), message.key(), message.value(),
                    (message.topic() or "", message.partition() or 0, message.offset() or 0))
                held.segment.settle()
            if registered:
                log.info("%s registered: routing its %d held records", client, len(records))

    def _dead_letter(self, rejection: RejectedRecordError, key: bytes | None,
                     value: bytes | None, origin: tuple[str, int, int]) -> None:
        """Dead-letter one record, counted for its source topic and client."""
        topic = origin[0]
        self.metrics.dead_lettered(rejection.reason, topic)
        self.guard.dead_lettered((topic, rejection.client_id or UNKEYED), rejection.reason,
                                 rejection.detail)
        self.dead_letters.send(DeadLetter(
            reason=rejection.reason, error=rejection.detail, key=key, value=value,
            origin=origin, client_id=rejection.client_id), quiet=True)

    def _kcat_joined(self, topic: str, client_id: str) -> None:
        self.metrics.kcat_record(topic)
        if client_id not in self._kcat_clients:
            self._kcat_clients.add(client_id)
            log.warning("a control record of %s on %s arrived split at its first ':' (kcat "
                        "-K: in the agent chart's register-cluster-job); accepted whole by the "
                        "kcat compatibility rule. Fix the chart: kcat -K:: (or no -K) with "
                        "-k %s", client_id, topic, client_id)

    # -- delivery -----------------------------------------------------------------
    def _deliver(self, batches: list[Batch]) -> None:
        if not batches:
            return
        if self._undelivered:
            self._undelivered.extend(batches)  # keep order behind earlier failures
            return
        tasks = [batch for batch in batches if batch.kind not in CONTROL_KINDS]
        # Read before publishing (at most once a second per client, all in one round
        # trip): what waits from earlier tasks, for the ceiling report and backlog-aware
        # batching (batcher.py).
        self.quota.refresh({batch.client_id for batch in tasks})
        try:
            for batch in batches:
                if batch.kind in CONTROL_KINDS:
                    self._apply_control(batch)
            if tasks:
                self.publisher.publish(tasks)
        except _PUBLISH_ERRORS as exc:
            self._undelivered.extend(b for b in batches if b.segments)
            self._hold(exc)
            return
        now = time.monotonic()
        for batch in tasks:
            batch.settle()
            self.metrics.routed_batch(batch.client_id, batch.kind, len(batch.records),
                                      now - batch.started_at)
            self.wake.published(batch.client_id, now)

    def _send_wake(self) -> None:
        """Ask the control plane for a scaling run now (kgcelery.bridge.wake)."""
        try:
            self.app.send_task(WAKE_TASK, queue=CONTROL_QUEUE, retry=False,
                               expires=WAKE_EXPIRES_S)
        except Exception as exc:  # noqa: BLE001 - only sooner: beat's next run does the same
            log.warning("could not ask for a scaling run (%s); beat's next run will do", exc)
            return
        self.metrics.woke()

    def _apply_control(self, batch: Batch) -> None:
        """Apply registry and heartbeat records; settle the batch (idempotent to repeat)."""
        for raw, record, (topic, partition, offset, entity, *_) in zip(
                batch.records, batch.values(), batch.origins, strict=True):
            try:
                if batch.kind == "registry":
                    apply_registry(self.registry, batch.client_id, record)
                    if record is None:
                        self.registered.removed(batch.client_id)
                        self.wake.forget(batch.client_id)
                    else:
                        self.registered.added(batch.client_id)
                else:
                    apply_heartbeat(self.registry, batch.client_id, record)
            except RejectedRecordError as rejection:
                self._dead_letter(rejection, f"{batch.client_id}::{entity}".encode(),
                                  None if record is None else raw, (topic, partition, offset))
        self.metrics.routed_batch(batch.client_id, batch.kind, len(batch.records), 0.0)
        batch.settle()

    def _hold(self, exc: Exception) -> None:
        """Redis is unreachable: pause consumption and retry with backoff."""
        now = time.monotonic()
        if not self._attempts:
            self._held_since = now
        delay = PUBLISH_BACKOFF.delay(self._attempts)
        self._attempts += 1
        self._retry_at = now + delay
        log.warning("cannot publish (%s); holding %d batches, retrying in %.1f s", exc,
                    len(self._undelivered), delay)

    def _retry_undelivered(self, now: float) -> None:
        if not self._undelivered or now < self._retry_at:
            return
        waiting, self._undelivered = self._undelivered, []
        self._deliver(waiting)
        if not self._undelivered:
            log.info("publishing again after %.1f s of backoff", now - self._held_since)
            self._attempts = 0

    def _pause_if_full(self) -> None:
        held = (self.batcher.pending_bytes + self._held_bytes
                + sum(b.size for b in self._undelivered))
        full = bool(self._undelivered) or held > self.settings.bridge_max_pending_bytes
        if full == self._paused:
            return
        assignment = self.consumer.assignment()
        if full:
            self.consumer.pause(assignment)
            log.warning("paused consumption (%d bytes held, %d batches undelivered)", held,
                        len(self._undelivered))
        else:
            self.consumer.resume(assignment)
            log.info("resumed consumption")
        self._paused = full
        self.metrics.paused.set(int(full))

    # -- commits and rebalances ----------------------------------------------------
    def commit(self) -> None:
        """Commit every partition's watermark, once its dead letters are written."""
        self._last_commit = time.monotonic()
        ready = self.offsets.committable()
        if not ready:
            return
        if not self.publisher.make_durable():
            return  # the tasks below these offsets are not durable yet: a later round
        self.dead_letters.flush()
        self.consumer.commit(offsets=[TopicPartition(topic, partition, offset)
                                      for (topic, partition), offset in ready.items()],
                             asynchronous=False)
        self.offsets.committed(ready)

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Publish every open batch and commit; used before letting partitions go."""
        self._deliver(self.batcher.drain())
        deadline = time.monotonic() + timeout
        while self._undelivered and time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.05, self._retry_at - time.monotonic())))
            self._retry_undelivered(time.monotonic())
        self.commit()
        if self._undelivered:
            log.error("%d batches could not be published; their records stay uncommitted "
                      "and will be read again", len(self._undelivered))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        if self._paused:
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        try:
            self.flush(timeout=10.0)
        except Exception:
            log.exception("could not flush before the rebalance; the new owner re-reads")
        self._forget_held(partitions)
        self.offsets.forget([(p.topic, p.partition) for p in partitions])

    def _forget_held(self, partitions: list[TopicPartition]) -> None:
        """Held records of partitions that go are re-read by their next owner."""
        gone = {(p.topic, p.partition) for p in partitions}
        for client in list(self._held):
            kept = [h for h in self._held[client] if h.segment.tp not in gone]
            self._held_bytes -= sum(len(h.message.value() or b"")
                                    for h in self._held[client] if h.segment.tp in gone)
            if kept:
                self._held[client] = kept
            else:
                del self._held[client]

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %d partitions; their uncommitted records will be re-read",
                    len(partitions))
        self._forget_held(partitions)
        self.offsets.forget([(p.topic, p.partition) for p in partitions])

    def shutdown(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("final flush failed; uncommitted records will be re-read")
        finally:
            self.consumer.close()
            self._report()

    # -- observability --------------------------------------------------------------
    def _report(self) -> None:
        self._last_report = time.monotonic()
        self.alive.beat()  # the loop turns, whether or not Redis takes the snapshot
        try:
            assignment = self.consumer.assignment()
            for tp in self.consumer.position(assignment) if assignment else []:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    self.metrics.set_lag(tp.topic, tp.partition, max(0, high - tp.offset))
        except Exception:
            log.debug("could not read consumer lag", exc_info=True)
        self.metrics.over_ceiling.set(len(self.quota.over_ceiling))
        self.metrics.set_floods(self.guard.floods())
        snapshot = self.metrics.snapshot(paused=self._paused,
                                         pending=self.offsets.pending_count(),
                                         over_ceiling=self.quota.over_ceiling)
        with contextlib.suppress(redis.RedisError):
            publish_snapshot(self.registry.redis, snapshot)
        log.info("routed %d records in %d tasks; dead-lettered %s; pending %d; lag %d",
                 sum(self.metrics.routed.values()), self.metrics.task_count,
                 dict(self.metrics.rejected) or 0, snapshot["pending"],
                 sum(self.metrics.lags.values()))

