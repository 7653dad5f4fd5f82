"""The Redis transport the workers consume with: a message is taken and recorded as
unacknowledged in one step.

kombu's Redis transport takes a message with ``BRPOP`` and only then, from the worker,
writes it to the ``unacked`` hash (from which a lost message is restored after the
visibility timeout). Between the two the message exists only in the worker's socket
buffer: a worker killed there (``kill -9``), a broker restarting there, or a connection
cut there loses it for good, after the bridge has committed its Kafka offsets. The
fault tests saw it (tests/test_faults.py: a broker restart lost a 500-record task in
about one run in ten).

Here the worker first waits, without taking anything, until its first queue has a
message (``BLMOVE q q RIGHT RIGHT``: the last element is put back where it was), then a
script pops the oldest message of the first non-empty queue *and* records it in
``unacked`` / ``unacked_index`` exactly as kombu would. Both commands go out together,
so it is still one round trip. Whatever happens after the script, the message is in the
``unacked`` hash: acked when done, restored after the visibility timeout otherwise.
Needs Redis 6.2 (``BLMOVE``). Everything else (acks, rejects, restores, priorities,
fanout) is kombu's, but for two things of merged takes (:mod:`kgcelery.broker.merge`):
a task of several clients is restored as one task per client, each to its own queue,
and every queue a take took from moves to the end of the worker's cycle.

kombu keeps each queue in four lists, one per priority step, and its ``BRPOP`` names all
four of every queue consumed. kgcelery publishes at priority 0 only (the bridge's
envelope, Celery's retries and restores keep it), so the other lists are empty but for
a task someone else published with a priority. A take therefore names only the
priority-0 lists, and the four lists of each queue at most every
:data:`PRIORITY_RECHECK_S` (and on the synchronous path): a fleet worker consuming
1,000 client queues hands Redis 1,000 keys per take instead of 4,000, and a task in a
priority list is still taken, at most that much later (docs/BENCHMARKS.md, fleet take).

A full Redis (``maxmemory`` reached under ``noeviction``, where the bridge's writes are
refused and it pauses) refuses ``BLMOVE`` too, but not the take, which frees what it
moves: the workers then take without waiting, pausing between empty polls, and so
drain the queues that make room again, instead of failing on every poll.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import redis
from kombu.transport import TRANSPORT_ALIASES, _transport_cache, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from kgcelery.broker.layout import IN_FLIGHT_KEY, load_script
from kgcelery.broker.merge import merge, split
from kgcelery.fastjson import loads

log = logging.getLogger(__name__)

#: Pops a message and records it as unacknowledged in one step (lua/take.lua).
TAKE = load_script("take")
#: Records a merged message in place of those it carries (lua/replace.lua).
REPLACE = load_script("replace")
#: How long the workers take without waiting once Redis said it is full, and how long
#: they pause after a take that found nothing meanwhile.
FULL_RECHECK_S = 5.0
FULL_PAUSE_S = 0.5
#: How often a take also looks at kombu's priority lists (see the module docstring).
PRIORITY_RECHECK_S = 1.0
#: An idle worker of several queues (a fleet worker) waits on one of them; a task in
#: another is seen at its next take. So its wait is cut to this per queue it consumes,
#: at least WAIT_MIN_S and at most the poll timeout (1 s): on an idle fleet worker of a
#: few queues a task waits ~0.1 s, not 1 s, and the takes of an idle worker cost Redis
#: 0.4-6 ms per second from 5 to 1,000 queues (docs/BENCHMARKS.md, fleet-idle).
WAIT_PER_QUEUE_S = 0.001
WAIT_MIN_S = 0.1


def _queue_of(message: dict[str, Any]) -> str:
    """The queue a message was sent to (kgcelery's queues: the routing key)."""
    return str(message.get("properties", {}).get("delivery_info", {}).get("routing_key", ""))


def _is_full(exc: redis.ResponseError) -> bool:
    return str(exc).startswith(("OOM", "command not allowed when used memory"))


class QoS(kombu_redis.QoS):
    """kombu's QoS, minus the ``unacked`` write for messages the script recorded, and
    with the in-flight index entry removed wherever kombu removes the message from
    ``unacked`` (ack, reject, restore)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: set[str] = set()

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self.recorded:
            self.recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # in-memory bookkeeping only
            return
        super().append(message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        return super()._remove_from_indices(delivery_tag, pipe).hdel(IN_FLIGHT_KEY,
                                                                     delivery_tag)


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, taking messages with :data:`TAKE` instead of ``BRPOP``."""

    QoS = QoS
    # kombu declares it as None at class level; it holds the connection of the poll.
    _in_poll: Any = None
    # A queue the last take saw non-empty: waiting on it returns at once. Without it a
    # worker of several queues (a fleet worker: ``fleet.idle`` and its clients) would
    # wait the full poll timeout on an empty queue between two tasks of a busy one.
    _ready_key: str = ""
    # Until when Redis counts as full (see the module docstring), and whether the
    # commands in flight begin with a wait.
    _full_until: float = 0.0
    _waiting: bool = True
    # When a take next names the priority lists too (see the module docstring).
    _priorities_at: float = 0.0
    # The most records and bytes of small tasks taken at once and run as one, and of how
    # many clients (kgcelery.broker.merge); 0 records: one message per take, 1 client:
    # one client's tasks per take. Set by the app's transport options.
    merge_max_records: int = 0
    merge_max_bytes: int = 0
    merge_max_clients: int = 1
    from_transport_options: tuple[str, ...] = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options, "merge_max_records", "merge_max_bytes",
        "merge_max_clients")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Queues consumed without acknowledgements: what is taken from them is not
        # recorded (kombu records only what it will see acked).
        self._noack_queues: set[str] = set()
        self._get_no_ack = False
        super().__init__(*args, **kwargs)

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._noack_queues.add(queue)
        else:
            self._noack_queues.discard(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        self._get_no_ack = no_ack
        try:
            return super().basic_get(queue, no_ack, **kwargs)
        finally:
            self._get_no_ack = False

    def _steps_to_take_from(self, every_step: bool) -> list[int]:
        """Priority 0 only, or every step when asked or when the recheck is due."""
        now = time.monotonic()
        if every_step or now >= self._priorities_at:
            self._priorities_at = now + PRIORITY_RECHECK_S
            return list(self.priority_steps)
        return list(self.priority_steps[:1])

    def _take_command(self, queues: list[str], timeout: float, *,
                      every_step: bool = False) -> list[tuple[Any, ...]]:
        """The wait (when ``timeout`` and Redis is not full) and the take."""
        if self.global_keyprefix:
            raise ValueError("kgcelery's transport does not support global_keyprefix")
        pairs = [(self._q_for_pri(queue, pri), queue)
                 for pri in self._steps_to_take_from(every_step) for queue in queues]
        keys = [key for key, _queue in pairs]
        record = ["0" if self._get_no_ack or queue in self._noack_queues else "1"
                  for _key, queue in pairs]
        # Only one queue can be waited on without taking from it; the take then looks at
        # all of them, so a message elsewhere waits at most one wait (see WAIT_PER_QUEUE_S).
        watched = self._ready_key if self._ready_key in keys else keys[0]
        wait = ("BLMOVE", watched, watched, "RIGHT", "RIGHT", timeout)
        merging = ((self.merge_max_records, self.merge_max_bytes, self.merge_max_clients)
                   if timeout else (0, 0, 1))
        take = ("EVAL", TAKE, len(keys) + 3, self.unacked_key, self.unacked_index_key,
                IN_FLIGHT_KEY, *keys, *record, *merging)
        self._waiting = bool(timeout) and time.monotonic() >= self._full_until
        return [wait, take] if self._waiting else [take]

    def _accept(self, taken: Any) -> tuple[str, list[Any], list[str]]:
        """The queue and the decoded messages to deliver of the script's reply (one, or
        the merged one of several), and every queue they were taken from; notes what it
        recorded (and which queue is ready)."""
        queue, item, tag, self._ready_key, *more = (bytes_to_str(part) for part in taken)
        messages, tags = [loads(item), *map(loads, more[::2])], [tag, *more[1::2]]
        queue = queue.rsplit(self.sep, 1)[0]
        taken_from = [queue]
        if len(messages) > 1:
            taken_from = list(dict.fromkeys([queue, *(_queue_of(m) for m in messages[1:])]))
            try:
                merged = merge(messages)
            except Exception:  # a merge must never cost the messages: run them one by one
                log.exception("could not merge %d tasks of %s", len(messages), queue)
                merged = None
            if merged is not None and self._record_merged(merged, messages, tags):
                messages, tags = [merged], [merged["properties"]["delivery_tag"]]
        self.qos.recorded.update(t for t in tags if t)
        return queue, messages, taken_from

    def _record_merged(self, merged: dict[str, Any], messages: list[dict[str, Any]],
                       tags: list[str]) -> bool:
        """The merged message unacknowledged in place of the ones it carries (one step);
        False, and the messages delivered one by one, when Redis did not answer. The
        in-flight index names every queue it carries work of, space-separated."""
        info = merged["properties"]["delivery_info"]
        stored = orjson.dumps([merged, info["exchange"], info["routing_key"]])
        queues = dict.fromkeys(map(_queue_of, messages))
        try:
            with self.conn_or_acquire() as client:
                client.eval(REPLACE, 3, self.unacked_key, self.unacked_index_key,
                            IN_FLIGHT_KEY, merged["properties"]["delivery_tag"], stored,
                            " ".join(queues), *tags)
        except Exception as exc:  # noqa: BLE001 - the taken tasks must still run
            log.warning("could not record a merged task (%s: %s); running its %d tasks one "
                        "by one", type(exc).__name__, exc, len(tags))
            return False
        return True

    def _deliver_taken(self, taken: Any) -> list[str]:
        """Delivers what was taken; the queues it came from."""
        queue, messages, taken_from = self._accept(taken)
        if len(messages) == 1:
            self.connection._deliver(messages[0], queue)
            return taken_from
        for message in messages:  # several only when they could not be merged
            own = _queue_of(message)
            self.connection._deliver(message, own if own in self.active_queues else queue)
        return taken_from

    def _do_restore_message(self, payload: Any, exchange: str, routing_key: str,
                            pipe: Any, leftmost: bool = False) -> None:
        """kombu's restore, except that a task of several clients goes back as one task
        per client, each to its own queue (kgcelery.broker.merge.split)."""
        parts = split(payload) if isinstance(payload, dict) else None
        if not parts:
            super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)
            return
        for queue, message in parts:  # exchange "": straight to the queue named
            super()._do_restore_message(message, "", queue, pipe, leftmost)

    def _brpop_start(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        connection = self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        # Never 0 (BLMOVE would block for good): _brpop_read always reads two replies.
        wait = timeout or 1
        if len(queues) > 1:
            wait = min(wait, max(WAIT_MIN_S, len(queues) * WAIT_PER_QUEUE_S))
        connection.send_packed_command(
            connection.pack_commands(self._take_command(queues, wait)))

    def _brpop_read(self, **options: Any) -> bool:
        connection = self.client.connection
        try:
            try:
                waited = self._read_wait(connection, **options) if self._waiting else None
                taken = self.client.parse_response(connection, "EVAL", **options)
            except self.connection_errors:
                # As kombu does: a broken connection is dropped and made again.
                connection.disconnect()
                raise
            if taken:
                # Every queue taken from goes to the end of the cycle, as kombu moves the
                # one it took from: the next take begins with queues not served yet.
                for queue in self._deliver_taken(taken):
                    if queue in self.active_queues:
                        self._queue_cycle.rotate(queue)
                return True
            self._ready_key = ""
            if not self._waiting:
                time.sleep(FULL_PAUSE_S)  # Redis full: no blocking wait to pace the polls
            if waited is None and len(self.active_queues) > 1:
                # Waited on an empty queue: wait on the next one next time.
                first = self._queue_cycle.consume(1)
                if first:
                    self._queue_cycle.rotate(first[0])
            raise kombu_redis.Empty()
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _read_wait(self, connection: Any, **options: Any) -> Any:
        try:
            return self.client.parse_response(connection, "BLMOVE", **options)
        except redis.ResponseError as exc:
            if not _is_full(exc):
                # The take's reply is still to be read: drop the connection instead.
                connection.disconnect()
                raise
            if time.monotonic() >= self._full_until:
                log.warning("Redis is full (%s); taking tasks without waiting, which makes "
                            "room, until it is not", exc)
            self._full_until = time.monotonic() + FULL_RECHECK_S
            return None

    def _get(self, queue: str, timeout: Any = None) -> Any:
        """The synchronous path (``basic_get``, polling consumers): the same script."""
        with self.conn_or_acquire() as client:
            taken = client.execute_command(*self._take_command([queue], 0, every_step=True)[0])
            self._maybe_update_queues_expire(client, queue)
        if not taken:
            raise kombu_redis.Empty()
        return self._accept(taken)[1][0]  # one message: the synchronous path never merges


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`; :func:`install` selects it."""

    Channel = Channel


def install() -> None:
    """Make ``redis://`` and ``rediss://`` URLs use :class:`Transport` in this process.

    By kombu's alias table rather than Celery's ``broker_transport``: the URL keeps its
    scheme, so whatever reads it back (Flower's Broker page, ``Connection.as_uri()``,
    TLS for ``rediss``) sees a Redis broker, as it is.
    """
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = "kgcelery.broker.transport:Transport"
        # kombu caches what it resolved: a connection made before must not keep its own.
        _transport_cache.pop(scheme, None)
