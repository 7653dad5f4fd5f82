"""The client registry in Redis, shared by every bridge process, beat and the CLI.

Keys (all under ``kgcelery:``):
    ``clients``            set of every client ever registered (for listings)
    ``registered``         set of clients whose records the bridge accepts
    ``client:<id>``        hash: cluster_name, version, region, metadata (JSON), registered_at (the
                           client's clock), seen_at (ours, at registration), last_heartbeat,
                           state, state_since, desired_workers, desired_reason, desired_at,
                           pinned_workers, actual_workers, actual_at (when that count was
                           first seen), idle_since (no work since then; absent: has work)
    ``transitions``        capped list of state transitions (JSON), newest first
    ``decisions``          capped list of changes of desired workers and pins (JSON)
    ``passes:<task>``      capped list of the start times of the control plane's completed
                           passes (``expire``, ``scale``), newest first
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from kgcelery.clients import validate_client_id
from kgcelery.errors import UnknownClientError

log = logging.getLogger(__name__)

PREFIX = "kgcelery:"
CLIENTS_KEY = PREFIX + "clients"
REGISTERED_KEY = PREFIX + "registered"
TRANSITIONS_KEY = PREFIX + "transitions"
DECISIONS_KEY = PREFIX + "decisions"
TRANSITIONS_KEPT = 1000
PASSES_KEPT = 100

ACTIVE, STALE, DRAINING, RETIRED = "active", "stale", "draining", "retired"
STATES = (ACTIVE, STALE, DRAINING, RETIRED)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def client_key(client_id: str) -> str:
    return f"{PREFIX}client:{validate_client_id(client_id)}"


#: Every client's hash in one step (beat's passes read them all): a pipeline of 1,000
#: HGETALL cost more in redis-py's packing and parsing than in Redis (bench/tenants.py).
#: KEYS: the set of clients. ARGV: the prefix of their hashes. Returns id, hash, id, ...
_ALL_CLIENTS = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. id)
end
return out
"""


@dataclass(frozen=True)
class ClientRecord:
    """What the registry knows of one client."""

    client_id: str
    cluster_name: str = ""
    version: str = ""
    region: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    registered_at: float | None = None
    seen_at: float | None = None
    last_heartbeat: float | None = None
    state: str = ACTIVE
    state_since: float | None = None
    desired_workers: int | None = None
    desired_reason: str = ""
    desired_at: float | None = None
    pinned_workers: int | None = None
    actual_workers: int | None = None
    actual_at: float | None = None
    idle_since: float | None = None

    @property
    def last_seen(self) -> float | None:
        """The latest sign of life on our clock: a heartbeat, or else the registration.

        ``registered_at`` is the client's own clock; it counts only for records written
        before ``seen_at`` existed.
        """
        registration = self.seen_at if self.seen_at is not None else self.registered_at
        seen = [t for t in (self.last_heartbeat, registration) if t is not None]
        return max(seen) if seen else None

    @classmethod
    def from_hash(cls, client_id: str, raw: Mapping[Any, Any]) -> ClientRecord:
        # Inline decoding: beat's passes parse 1,000 of these twice every 10 s
        # (bench/tenants.py); Redis answers bytes, so that is the fast path.
        try:
            values: dict[str, str] = {k.decode(): v.decode() for k, v in raw.items()}
        except AttributeError:
            values = {(k.decode() if isinstance(k, bytes) else str(k)):
                      (v.decode() if isinstance(v, bytes) else str(v)) for k, v in raw.items()}
        get = values.get

        def number(name: str) -> float | None:
            text = get(name)
            return float(text) if text else None

        def count(name: str) -> int | None:
            text = get(name)
            return int(text) if text else None

        metadata = get("metadata")
        return cls(
            client_id=client_id,
            cluster_name=get("cluster_name", ""),
            version=get("version", ""),
            region=get("region", ""),
            metadata=json.loads(metadata) if metadata and metadata != "{}" else {},
            registered_at=number("registered_at"),
            seen_at=number("seen_at"),
            last_heartbeat=number("last_heartbeat"),
            state=get("state", ACTIVE),
            state_since=number("state_since"),
            desired_workers=count("desired_workers"),
            desired_reason=get("desired_reason", ""),
            desired_at=number("desired_at"),
            pinned_workers=count("pinned_workers"),
            actual_workers=count("actual_workers"),
            actual_at=number("actual_at"),
            idle_since=number("idle_since"),
        )


class Registry:
    """Read and change the registry; every method is one short Redis round trip or two."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @classmethod
    def from_url(cls, url: str) -> Registry:
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5))

    def close(self) -> None:
        self.redis.close()

    def register(self, client_id: str, *, cluster_name: str = "", version: str = "",
                 region: str = "", metadata: dict[str, Any] | None = None,
                 registered_at: float | None = None,
                 now: float | None = None) -> ClientRecord:
        """Register (or re-register) a client; it becomes active."""
        key = client_key(client_id)
        now = time.time() if now is None else now
        previous = self.get(client_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={
            "cluster_name": cluster_name,
            "version": version,
            "region": region,
            "metadata": json.dumps(metadata or {}, sort_keys=True, default=str),
            "registered_at": registered_at if registered_at is not None else now,
            "seen_at": now,
        })
        pipe.sadd(CLIENTS_KEY, client_id)
        pipe.sadd(REGISTERED_KEY, client_id)
        pipe.execute()
        if previous is None or previous.state != ACTIVE:
            self.set_state(client_id, ACTIVE, reason="registered", now=now)
        record = self.get(client_id)
        assert record is not None
        return record

    def deregister(self, client_id: str, *, now: float | None = None) -> ClientRecord | None:
        """A registry tombstone: stop accepting records; the client drains, then retires."""
        if self.get(client_id) is None:
            return None
        self.redis.srem(REGISTERED_KEY, client_id)
        self.set_state(client_id, DRAINING, reason="deregistered", now=now)
        return self.get(client_id)

    def heartbeat(self, client_id: str, at: float) -> bool:
        """Record a sign of life (monotonic); False if the client is not registered."""
        key = client_key(client_id)
        if not self.redis.sismember(REGISTERED_KEY, client_id):
            return False
        # Monotonic max: a replayed old heartbeat never moves the time back.
        current = self.redis.hget(key, "last_heartbeat")
        if current is None or float(current) < at:
            self.redis.hset(key, "last_heartbeat", at)
        if _text(self.redis.hget(key, "state")) in (STALE, RETIRED):
            self.set_state(client_id, ACTIVE, reason="heartbeat resumed")
        return True

    def set_state(self, client_id: str, state: str, *, reason: str,
                  now: float | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown client state {state!r}")
        now = time.time() if now is None else now
        key = client_key(client_id)
        old_state = _text(self.redis.hget(key, "state"))
        if old_state == state:
            return
        transition = {"client_id": client_id, "from": old_state, "to": state,
                      "reason": reason, "at": now}
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"state": state, "state_since": now})
        pipe.lpush(TRANSITIONS_KEY, json.dumps(transition))
        pipe.ltrim(TRANSITIONS_KEY, 0, TRANSITIONS_KEPT - 1)
        pipe.execute()
        log.info("client %s: %s -> %s (%s)", client_id, old_state, state, reason)

    def get(self, client_id: str) -> ClientRecord | None:
        raw = self.redis.hgetall(client_key(client_id))
        return ClientRecord.from_hash(client_id, raw) if raw else None

    def all(self) -> list[ClientRecord]:
        """Every client, by id; one round trip."""
        flat = self.redis.eval(_ALL_CLIENTS, 1, CLIENTS_KEY, PREFIX + "client:")
        hashes = {str(_text(flat[i])): dict(zip(flat[i + 1][::2], flat[i + 1][1::2],
                                                strict=True))
                  for i in range(0, len(flat), 2) if flat[i + 1]}
        return [ClientRecord.from_hash(client_id, hashes[client_id])
                for client_id in sorted(hashes)]

    def states(self, client_ids: list[str]) -> dict[str, str]:
        """Each client's lifecycle state now, as :meth:`all` reads it; one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for client_id in client_ids:
            pipe.hget(client_key(client_id), "state")
        return {client_id: _text(raw) or ACTIVE
                for client_id, raw in zip(client_ids, pipe.execute(), strict=True)}

    def registered_ids(self) -> set[str]:
        """Clients whose records the bridge accepts."""
        return {str(_text(member)) for member in self.redis.smembers(REGISTERED_KEY)}

    def transitions(self, limit: int = 50) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(TRANSITIONS_KEY, 0, limit - 1)]

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(DECISIONS_KEY, 0, limit - 1)]

    def passes(self, task: str, limit: int = PASSES_KEPT) -> list[float]:
        """Start times of the last completed passes of a control task, newest first."""
        return [float(raw) for raw in self.redis.lrange(f"{PREFIX}passes:{task}", 0, limit - 1)]

    # -- the control plane's writes ---------------------------------------------------
    def passed(self, task: str, started_at: float) -> None:
        """Record a completed pass of a control task (``expire``, ``scale``)."""
        key = f"{PREFIX}passes:{task}"
        pipe = self.redis.pipeline()
        pipe.lpush(key, started_at)
        pipe.ltrim(key, 0, PASSES_KEPT - 1)
        pipe.execute()

    def require(self, client_id: str) -> ClientRecord:
        """The client's record; :class:`UnknownClientError` (with what to do) if there is none."""
        record = self.get(client_id)
        if record is None:
            raise UnknownClientError(f"unknown client {client_id!r}: it never registered. "
                                     "List clients with 'kgcelery clients', or register it "
                                     f"with 'kgcelery register {client_id} --cluster <name>'")
        return record

    def retire(self, client_id: str, *, reason: str, now: float | None = None) -> None:
        """Retire now: records are no longer accepted and the workers stop at once."""
        self.redis.srem(REGISTERED_KEY, client_id)
        self.set_state(client_id, RETIRED, reason=reason, now=now)
        self.set_desired(client_id, 0, reason=RETIRED, now=now)

    def pin(self, client_id: str, workers: int | None, *, now: float | None = None) -> None:
        """Pin the client's pool at ``workers`` (ops override), or release it with None."""
        key = client_key(client_id)
        if workers is None:
            self.redis.hdel(key, "pinned_workers")
        else:
            self.redis.hset(key, "pinned_workers", workers)
        self._log_decision({"client_id": client_id, "pin": workers,
                            "at": time.time() if now is None else now})

    def set_desired(self, client_id: str, workers: int, *, reason: str,
                    now: float | None = None) -> bool:
        """Record the pool size the control plane wants; True if it changed."""
        return client_id in self.set_desired_many({client_id: (workers, reason)}, now=now)

    def set_desired_many(self, wanted: Mapping[str, tuple[int, str]], *,
                         now: float | None = None,
                         known: Mapping[str, tuple[int | None, str]] | None = None) -> set[str]:
        """Record the pool size (and why) the control plane wants for each client; returns
        the clients whose size changed. ``known``: each one's (desired, reason) as just
        read (:meth:`all`), or else read here (a second round trip). A client whose size
        and reason stay as they were is not written (beat's pass over 1,000 mostly steady
        clients: bench/tenants.py)."""
        now = time.time() if now is None else now
        clients = list(wanted)
        pipe = self.redis.pipeline()
        if known is None:
            for client_id in clients:
                pipe.hmget(client_key(client_id), "desired_workers", "desired_reason")
            known = {client_id: (None if raw[0] is None else int(raw[0]), _text(raw[1]) or "")
                     for client_id, raw in zip(clients, pipe.execute(), strict=True)}
        changed = set()
        for client_id, (workers, reason) in wanted.items():
            before, reason_before = known.get(client_id, (None, ""))
            moved = before is None or int(before) != workers
            if not moved and reason_before == reason:
                continue
            # desired_at is the start of the cooldown: only real changes move it.
            pipe.hset(client_key(client_id), mapping={
                "desired_workers": workers, "desired_reason": reason,
                **({"desired_at": now} if moved else {})})
            if moved:
                changed.add(client_id)
                log.info("client %s: desired workers %s -> %d (%s)", client_id, before,
                         workers, reason)
                pipe.lpush(DECISIONS_KEY, json.dumps({
                    "client_id": client_id, "from": before and int(before), "to": workers,
                    "reason": reason, "at": now}))
        if changed:
            pipe.ltrim(DECISIONS_KEY, 0, TRANSITIONS_KEPT - 1)
        pipe.execute()
        return changed

    def mark_idle(self, idle: Mapping[str, bool], known: Mapping[str, float | None], *,
                  now: float | None = None) -> dict[str, float | None]:
        """Record which clients have no work; returns since when each has been idle
        (None for those with work). ``known``: each one's ``idle_since`` as just read
        (:meth:`all`); only what changes is written, in one round trip."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline()
        since: dict[str, float | None] = {}
        for client_id, is_idle in idle.items():
            was = known.get(client_id)
            if is_idle:
                since[client_id] = now if was is None else was
                if was is None:
                    pipe.hset(client_key(client_id), "idle_since", now)
            else:
                since[client_id] = None
                if was is not None:
                    pipe.hdel(client_key(client_id), "idle_since")
        pipe.execute()
        return since

    def set_actual(self, counts: Mapping[str, int], known: Mapping[str, int | None], *,
                   now: float | None = None) -> None:
        """Record how many workers were seen consuming each client's queue; ``known``: the
        counts as just read (:meth:`all`), so that only those that changed are written."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline()
        for client_id, workers in counts.items():
            if client_id in known and known[client_id] == workers:
                continue
            pipe.hset(client_key(client_id), mapping={"actual_workers": workers,
                                                      "actual_at": now})
        pipe.execute()

    def _log_decision(self, entry: dict[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.lpush(DECISIONS_KEY, json.dumps(entry))
        pipe.ltrim(DECISIONS_KEY, 0, TRANSITIONS_KEPT - 1)
        pipe.execute()
