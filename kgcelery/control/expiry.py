"""When a client counts as gone, and where its lifecycle goes next: pure, table-tested.

The lifecycle::

    active ──no heartbeat for ttl──► stale ──┐
       ▲                                     ├─ queue empty, nothing in flight,
       │ heartbeat / registration            │  for drain_grace ──► retired
       └──────────────────── deregistered ─► draining ──┘

A stale or draining client keeps at least one worker until it is retired (see
:mod:`kgcelery.control.policy`), so its backlog is written before its workers stop. The
graph is never touched: a client that comes back finds it as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from kgcelery.control.registry import ACTIVE, DRAINING, RETIRED, STALE


def is_expired(now: float, last_seen: float | None, ttl: float) -> bool:
    """True when nothing was heard of a client for longer than ``ttl`` seconds.

    A client never seen is not expired (it has not started yet); a time in the future
    (clock skew between hosts) counts as just seen.
    """
    if last_seen is None:
        return False
    return now - last_seen > ttl


@dataclass(frozen=True)
class Transition:
    """A state change that the lifecycle asks for, and why (logged and kept)."""

    to: str
    reason: str


def next_state(*, state: str, registered: bool, last_seen: float | None,
               state_since: float | None, backlog: int, now: float, ttl: float,
               drain_grace: float) -> Transition | None:
    """Where a client's lifecycle goes next, or None to stay.

    :param state: the client's state now.
    :param registered: whether the bridge accepts its records (False once deregistered).
    :param last_seen: its last heartbeat or registration, on our clock.
    :param state_since: when it entered ``state``.
    :param backlog: tasks queued for it plus tasks in flight (delivered, not acked).
    :param now: the time of this decision.
    :param ttl: silence after which an active client is stale.
    :param drain_grace: least time in stale/draining, queue empty, before retirement;
        records the bridge routed just before the change may still be on their way.
    """
    expired = is_expired(now, last_seen, ttl)
    if state == ACTIVE:
        return Transition(STALE, f"no heartbeat for {ttl:g} s") if expired else None
    if state in (STALE, RETIRED) and registered and not expired:
        # Registry.heartbeat flips this itself; this catches a race with that write.
        return Transition(ACTIVE, "heartbeat resumed")
    if state in (STALE, DRAINING):
        if backlog > 0:
            return None
        # A state_since in the future is clock skew between hosts; it must not hold a
        # drained client for that long, so it counts as elapsed.
        waited = now - state_since if state_since is not None else drain_grace
        if waited >= drain_grace or waited < 0:
            return Transition(RETIRED, "drained: queue empty, nothing in flight")
        return None
    if state == RETIRED and registered and backlog > 0:
        # The bridge still accepts a silent client's records: work them off again.
        return Transition(STALE, "records arrived after retirement")
    return None


def refuse_retirement(client_id: str, *, queued: int, in_flight: int,
                      force: bool) -> str | None:
    """Why ops may not retire a client now (None if they may): retiring with tasks left
    stops the workers that would write them; ``drain`` retires once they are written."""
    if force or queued + in_flight == 0:
        return None
    return (f"{client_id} still has {queued} tasks queued and {in_flight} in flight; "
            f"'kgcelery drain {client_id}' retires it once they are written, or use --force")
