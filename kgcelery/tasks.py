"""The per-client ingest tasks, one per kind of record, and how one batch is run.

Names and signatures are the contract with the bridge:
``kgcelery.ingest_<kind>s(client_id, records, origins=None)`` where ``origins[i]`` is
``[topic, partition, offset, entity, produced_ms]`` of ``records[i]`` (the last is the
Kafka timestamp, from which :mod:`kgcelery.latency` measures produce-to-graph time).
A task takes one batch of one client (the client id once, never per record) and runs
on that client's queue.
A tombstone is a record ``None`` whose entity names what was deleted: an object
(``pod::<uid>``, ``pod:<uid>``, ``Pod/ns/name``), an edge (``edge:<from>-><to>``) or a
scrape target (``<cluster>|<job>|<namespace>|<service>|<instance>``).

Late acknowledgement (the app's default) plus ``acks_on_failure_or_timeout=False``:
a task that dies or fails without having written or dead-lettered its records stays
unacknowledged, and the broker delivers it again.

Every record leaves exactly one way:
- written to the client's graph;
- dead-lettered to ``dlq.normalized`` with the reason it could not be normalized (the
  rest of its batch is still written);
- retried with the whole batch while the graph is unavailable (exponential backoff
  with jitter, :class:`~kgcelery.retry.Backoff`), and dead-lettered as ``retries-exhausted`` once
  the retries are used up; a graph that refuses the batch outright (a bad query, a
  value it cannot store) dead-letters it as ``graph-error``.
Dead letters are sent only after the graph write, so that a retried batch does not
dead-letter its bad records twice. A dead letter that cannot be written fails the
task without acknowledging it: the broker redelivers it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from celery import Task, signals

from kgcelery import latency
from kgcelery.app import app, settings
from kgcelery.clients import validate_client_id
from kgcelery.deadletter import DeadLetter, DeadLetterWriter
from kgcelery.errors import (
    GraphConfigurationError,
    GraphUnavailableError,
    InvalidClientIdError,
    RejectedRecordError,
)
from kgcelery.graph import GraphStore, open_store
from kgcelery.graph.writer import write_alerts, write_logs, write_signals
from kgcelery.graph.writer_state import write_resources, write_targets, write_topology
from kgcelery.kinds import MERGED_TASK, MULTI_CLIENT_TASK, TASK_FOR_KIND
from kgcelery.normalize.alerts import is_alert, normalize_alert
from kgcelery.normalize.events import normalize_event
from kgcelery.normalize.logs import fold_logs, normalize_log
from kgcelery.normalize.resources import normalize_resource
from kgcelery.normalize.targets import normalize_target
from kgcelery.normalize.topology import normalize_topology
from kgcelery.retry import Backoff
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

#: Origin of a record: [topic, partition, offset, entity key, produced_ms].
Origin = list[Any]
RETRIES_EXHAUSTED = "retries-exhausted"


@dataclass(frozen=True, slots=True)
class Kind:
    """How to normalize and write one kind of record."""

    name: str
    #: (value, key entity, Kafka timestamp in s or None) -> records. The timestamp
    #: versions tombstones, which carry no time of their own.
    normalize: Callable[[Any, str, float | None], list[Any]]
    write: Callable[[GraphStore, str, list[Any], str], int]


@dataclass(slots=True)
class Rejected:
    record: Any
    origin: Origin | None
    reason: str
    detail: str


def produced_at(origin: Origin | None) -> float | None:
    """The Kafka timestamp of a record (seconds), when its origin carries one."""
    if origin and len(origin) > 4 and isinstance(origin[4], int | float) and origin[4] > 0:
        return float(origin[4]) / 1000.0
    return None


def batch_id(kind: str, records: list[Any], origins: list[Origin] | None) -> str:
    """A stable id of this batch: its Kafka positions, or else its content."""
    basis: Any = [o[:3] for o in origins] if origins else records
    try:
        text = orjson.dumps(basis, option=orjson.OPT_SORT_KEYS, default=str)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, in records
        text = json.dumps(basis, sort_keys=True, default=str).encode()
    digest = hashlib.sha1(text).hexdigest()
    return f"{kind}:{digest[:24]}"


def _letter(client_id: str, item: Rejected) -> DeadLetter:
    origin = item.origin
    key = f"{client_id}::{origin[3]}".encode() if origin and len(origin) > 3 else None
    where = (str(origin[0]), int(origin[1]), int(origin[2])) if origin else None
    value = None if item.record is None else json.dumps(item.record, default=str).encode()
    return DeadLetter(reason=item.reason, error=item.detail, key=key, value=value,
                      origin=where, client_id=client_id)


def _send(letters: DeadLetterWriter, client_id: str, items: list[Rejected]) -> None:
    if not items:
        return
    for item in items:
        letters.send(_letter(client_id, item))
    letters.flush()


@dataclass(slots=True)
class Part:
    """One kind's batch of records, as one ingest task of the bridge carries it."""

    kind: Kind
    records: list[Any]
    origins: list[Origin] | None

    def origin_of(self, index: int) -> Origin | None:
        return self.origins[index] if self.origins and index < len(self.origins) else None


@dataclass(slots=True)
class _Normalized:
    part: Part
    records: list[Any]
    #: The index in ``part.records`` of every record that normalized.
    sources: list[int]
    #: What the kind's writer reported written (lines, for logs).
    written: int = 0

    def rejected(self, reason: str, detail: str) -> list[Rejected]:
        return [Rejected(self.part.records[i], self.part.origin_of(i), reason, detail)
                for i in self.sources]

    def write(self, target: GraphStore, client_id: str) -> int:
        part = self.part
        self.written = part.kind.write(target, client_id, self.records,
                                       batch_id(part.kind.name, part.records, part.origins))
        return self.written


def _normalize(client_id: str, part: Part) -> tuple[_Normalized, list[Rejected]]:
    normalized = _Normalized(part, [], [])
    rejected: list[Rejected] = []
    for index, record in enumerate(part.records):
        origin = part.origin_of(index)
        entity = str(origin[3]) if origin and len(origin) > 3 else ""
        try:
            produced = part.kind.normalize(record, entity, produced_at(origin))
        except RejectedRecordError as error:
            rejected.append(Rejected(record, origin, error.reason, error.detail))
            continue
        except Exception as error:  # a normalizer bug must not lose the batch
            log.exception("normalizing a %s record of %s failed", part.kind.name, client_id)
            rejected.append(Rejected(record, origin, "normalize-error",
                                     f"{type(error).__name__}: {error}"))
            continue
        normalized.records.extend(produced)
        normalized.sources.append(index)
    return normalized, rejected


def _refused(client_id: str, item: _Normalized, exc: Exception) -> list[Rejected]:
    log.error("the graph refused a %s batch of %s", item.part.kind.name, client_id,
              exc_info=exc)
    return item.rejected("graph-error", f"{type(exc).__name__}: {exc}")


def _write(target: GraphStore, client_id: str,
           items: list[_Normalized]) -> tuple[list[_Normalized], list[Rejected]]:
    """Write every part in one unit (one Neo4j transaction); the parts written and the
    records of those the graph refused. A refused unit of several parts is written again
    part by part, so that only the refused part is dead-lettered.
    Raises :class:`GraphUnavailableError` (retry the whole task)."""
    try:
        target.write_unit(client_id, lambda: sum(item.write(target, client_id)
                                                 for item in items))
        return items, []
    except GraphUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - a refused batch is dead-lettered, not lost
        if len(items) == 1:
            return [], _refused(client_id, items[0], exc)
    written: list[_Normalized] = []
    rejected: list[Rejected] = []
    for item in items:
        try:
            target.write_unit(client_id, functools.partial(item.write, target, client_id))
            written.append(item)
        except GraphUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - dead-lettered with its reason
            rejected += _refused(client_id, item, exc)
    return written, rejected


def run_batches(task: Task, config: Settings, graph: Callable[[], GraphStore],
                letters: Callable[[], DeadLetterWriter], client_id: str,
                parts: list[Part], latencies: list[tuple[str, list[Origin]]] | None = None
                ) -> dict[str, int]:
    """Normalize, write and dead-letter the batches of one client, of one kind or several
    (see the module docstring): written in one unit, retried whole, dead letters sent
    once, after the write. The written records' latencies are recorded, or added to
    ``latencies`` for the caller to record with other clients' in one round trip."""
    try:
        validate_client_id(client_id)
    except InvalidClientIdError as exc:
        _send(letters(), str(client_id)[:64],
              [Rejected(r, part.origin_of(i), "invalid-client-id", str(exc))
               for part in parts for i, r in enumerate(part.records)])
        return {"written": 0, "rejected": sum(len(part.records) for part in parts)}
    items: list[_Normalized] = []
    rejected: list[Rejected] = []
    for part in parts:
        item, refused = _normalize(client_id, part)
        items.append(item)
        rejected += refused
    try:
        written, refused = _write(graph(), client_id, items)
        rejected += refused
    except GraphUnavailableError as exc:
        retries = task.request.retries or 0
        if retries < config.task_max_retries:
            delay = Backoff(config.task_retry_backoff_s,
                            config.task_retry_backoff_max_s).delay(retries)
            log.warning("graph unavailable for %s (%s); retry %d/%d in %.1f s", client_id,
                        exc, retries + 1, config.task_max_retries, delay)
            raise task.retry(exc=exc, countdown=delay) from exc
        for item in items:
            rejected += item.rejected(RETRIES_EXHAUSTED,
                                      f"graph unavailable after {retries} retries: {exc}")
        written = []
    _send(letters(), client_id, rejected)
    origins = [origin for item in written if item.written and item.part.origins
               for origin in item.part.origins]
    if origins and latencies is not None:
        latencies.append((client_id, origins))
    elif origins:
        _record_latencies([(client_id, origins)])
    return {"written": sum(item.written for item in written), "rejected": len(rejected)}


def run_batch(task: Task, kind: Kind, config: Settings, graph: Callable[[], GraphStore],
              letters: Callable[[], DeadLetterWriter], client_id: str, records: list[Any],
              origins: list[Origin] | None) -> dict[str, int]:
    """One kind's batch: :func:`run_batches` of one part."""
    return run_batches(task, config, graph, letters, client_id,
                       [Part(kind, records, origins)])


def _record_latencies(written: list[tuple[str, list[Origin]]]) -> None:
    """The latencies of the records written, per client, in one round trip."""
    # Informative only: a Redis hiccup here must never fail a batch already written.
    try:
        pipe = latency_redis().pipeline(transaction=False)
        now = time.time()
        if sum(latency.add(pipe, client_id, latency.ages(origins, now), now_s=now)
               for client_id, origins in written):
            pipe.execute()
    except redis.RedisError as exc:
        log.debug("could not record latency for %s: %s", [c for c, _o in written], exc)


_store: GraphStore | None = None
_dead_letters: DeadLetterWriter | None = None


def store() -> GraphStore:
    """This worker process's graph connection."""
    global _store
    if _store is None:
        _store = open_store(settings)
    return _store


@signals.worker_init.connect
def _refuse_an_unworkable_graph(**_: Any) -> None:
    """A graph configuration that cannot work (tenancy ``database`` on Neo4j Community)
    stops the worker at start with exit code 2, instead of dead-lettering every batch.
    Only that: a graph that is merely down now is the tasks' retries' business."""
    try:
        open_store(settings).close()  # in the main process: the pool opens its own
    except GraphConfigurationError as exc:
        log.critical("%s", exc)
        raise SystemExit(2) from exc
    except Exception as exc:  # noqa: BLE001 - unreachable now; the tasks will retry
        log.warning("graph not checked at start (%s: %s)", type(exc).__name__, exc)


_latency_redis: redis.Redis | None = None


def latency_redis() -> redis.Redis:
    """This worker process's connection to the registry Redis (latency histograms)."""
    global _latency_redis
    if _latency_redis is None:
        _latency_redis = redis.Redis.from_url(settings.registry_url, socket_timeout=5,
                                              socket_connect_timeout=5)
    return _latency_redis


def dead_letters() -> DeadLetterWriter:
    """This worker process's producer of ``dlq.normalized``."""
    global _dead_letters
    if _dead_letters is None:
        _dead_letters = DeadLetterWriter(settings, settings.dlq_normalized_topic)
    return _dead_letters


def _event_or_alert(value: Any, _entity: str, _at: float | None) -> list[Any]:
    """Event topics also carry alerts (Vector's ``prom.alert`` twin on events.normalized)."""
    return normalize_alert(value) if is_alert(value) else normalize_event(value)


EVENTS = Kind("event", _event_or_alert,
              lambda s, client, records, _: write_signals(s, client, records))
LOGS = Kind("log", lambda value, _entity, _at: normalize_log(value),
            lambda s, client, records, batch: write_logs(s, client, fold_logs(records), batch))
RESOURCES = Kind("resource", normalize_resource,
                 lambda s, client, records, _: write_resources(s, client, records))
TOPOLOGY = Kind("topology", normalize_topology,
                lambda s, client, records, _: write_topology(s, client, records))
ALERTS = Kind("alert", lambda value, _entity, _at: normalize_alert(value),
              lambda s, client, records, _: write_alerts(s, client, records))
TARGETS = Kind("target", normalize_target,
               lambda s, client, records, _: write_targets(s, client, records))

#: Every kind by its name (the bridge's kinds), for code that runs a kind in-process.
KINDS: dict[str, Kind] = {kind.name: kind for kind in (EVENTS, LOGS, RESOURCES, TOPOLOGY,
                                                       ALERTS, TARGETS)}

_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True,
                            "acks_on_failure_or_timeout": False, "max_retries": None}


def _run(task: Task, kind: Kind, client_id: str, records: list[Any],
         origins: list[Origin] | None) -> dict[str, int]:
    return run_batch(task, kind, settings, store, dead_letters, client_id, records, origins)


@app.task(name=TASK_FOR_KIND["event"], **_OPTIONS)
def ingest_events(self: Task, client_id: str, records: list[Any],
                  origins: list[Origin] | None = None) -> dict[str, int]:
    """Kubernetes events -> Event nodes ABOUT their objects."""
    return _run(self, EVENTS, client_id, records, origins)


@app.task(name=TASK_FOR_KIND["log"], **_OPTIONS)
def ingest_logs(self: Task, client_id: str, records: list[Any],
                origins: list[Origin] | None = None) -> dict[str, int]:
    """Log records -> line counts and LogPattern nodes EMITTED by containers/pods."""
    return _run(self, LOGS, client_id, records, origins)


@app.task(name=TASK_FOR_KIND["resource"], **_OPTIONS)
def ingest_resources(self: Task, client_id: str, records: list[Any],
                     origins: list[Origin] | None = None) -> dict[str, int]:
    """Resource state records, full objects and tombstones -> object nodes and edges."""
    return _run(self, RESOURCES, client_id, records, origins)


@app.task(name=TASK_FOR_KIND["topology"], **_OPTIONS)
def ingest_topology(self: Task, client_id: str, records: list[Any],
                    origins: list[Origin] | None = None) -> dict[str, int]:
    """Topology edge records and cluster snapshots."""
    return _run(self, TOPOLOGY, client_id, records, origins)


@app.task(name=TASK_FOR_KIND["alert"], **_OPTIONS)
def ingest_alerts(self: Task, client_id: str, records: list[Any],
                  origins: list[Origin] | None = None) -> dict[str, int]:
    """Alertmanager webhook payloads or single alerts -> Alert nodes ABOUT objects."""
    return _run(self, ALERTS, client_id, records, origins)


@app.task(name=TASK_FOR_KIND["target"], **_OPTIONS)
def ingest_targets(self: Task, client_id: str, records: list[Any],
                   origins: list[Origin] | None = None) -> dict[str, int]:
    """Prometheus scrape targets and their tombstones -> PromTarget nodes SCRAPES objects."""
    return _run(self, TARGETS, client_id, records, origins)


def _unknown_kind(name: str) -> Kind:
    """A kind no worker knows: its records are dead-lettered like any unusable record
    (by :func:`run_batches`, once, after the write)."""

    def refuse(_value: Any, _entity: str, _at: float | None) -> list[Any]:
        raise RejectedRecordError("unknown-kind", f"no kind {name!r}")

    return Kind(name, refuse, lambda _s, _client, _records, _batch: 0)


def _parts(batches: list[list[Any]]) -> list[Part]:
    return [Part(KINDS.get(kind) or _unknown_kind(kind), records, origins)
            for kind, records, origins in batches]


@app.task(name=MERGED_TASK, **_OPTIONS)
def ingest_batches(self: Task, client_id: str, batches: list[list[Any]]) -> dict[str, int]:
    """Several batches of one client, ``[[kind, records, origins], ...]``: the small tasks
    of a backlog that a worker took at once (:mod:`kgcelery.broker.merge`), written as one
    unit."""
    return run_batches(self, settings, store, dead_letters, client_id, _parts(batches))


class _RetriedAlone(Exception):
    """A client's part of an ``ingest_clients`` task was sent again on its own."""


@dataclass(slots=True)
class _AloneOnRetry:
    """What :func:`run_batches` sees as its task for one client of an ``ingest_clients``
    task: a retry sends that client's batches again as its own ``ingest_batches`` task
    (on its own queue, counted as a first retry), and the other clients go on."""

    client_id: str
    batches: list[list[Any]]

    class request:  # Celery's ``task.request``: a first attempt
        retries = 0

    def retry(self, exc: Exception, countdown: float) -> Exception:
        ingest_batches.apply_async((self.client_id, self.batches), countdown=countdown,
                                   retries=1)
        return _RetriedAlone(str(exc))


@app.task(name=MULTI_CLIENT_TASK, **_OPTIONS)
def ingest_clients(self: Task, clients: list[list[Any]]) -> dict[str, int]:
    """Batches of several clients, ``[[client_id, [[kind, records, origins], ...]], ...]``:
    the heads of several client queues that a fleet worker took at once
    (:mod:`kgcelery.broker.merge`). Each client is run as ``ingest_batches`` runs it, in
    its own unit; a client whose graph is unavailable is retried alone."""
    done = {"written": 0, "rejected": 0, "retried": 0}
    latencies: list[tuple[str, list[Origin]]] = []
    try:
        for client_id, batches in clients:
            try:
                counts = run_batches(_AloneOnRetry(client_id, batches), settings, store,
                                     dead_letters, client_id, _parts(batches), latencies)
            except _RetriedAlone:
                done["retried"] += 1
                continue
            done["written"] += counts["written"]
            done["rejected"] += counts["rejected"]
    finally:
        _record_latencies(latencies)
    return done
