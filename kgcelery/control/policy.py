"""How many workers each client should have: a pure function, table-tested.

``plan(pools, policy, now)`` takes what beat gathered (state, records waiting or in
flight, the previous decision and when it changed, an ops pin) and returns a decision
per client. Rules, in order:

1. retired: 0 workers.
2. pinned (``kgcelery scale af-9 3``): the pin, whatever the policy says; only a
   stale or draining client is lifted to 1 so that its backlog is still written.
3. stale or draining: what the work needs, at least 1 (drain before retirement).
4. active and idle (nothing queued or in flight) for ``idle_grace_s``: 0 workers. An
   idle client costs nothing; its first records bring a worker back at the next run,
   without waiting for the cooldown.
5. active: ``ceil(records / target_per_worker)`` within [min, max]; grows at once,
   shrinks only when the work is ``hysteresis`` below the smaller pool's capacity, and
   changes at most once per ``cooldown_s``.
6. the global max is a budget for everything but pins (ops asked for those by hand).
   When the pools want more, every client with work gets one worker before any gets a
   second, in turns: a worker granted less than ``cooldown_s`` ago is kept, then the
   clients that waited longest (oldest decision) come first, so with more busy clients
   than workers each gets its turn and none waits forever. Extra workers then go one at
   a time to the client with the most records per worker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kgcelery.control.registry import ACTIVE, DRAINING, RETIRED, STALE


@dataclass(frozen=True)
class ScalingPolicy:
    """The knobs of :func:`plan` (``KGCELERY_SCALE_*``)."""

    target_per_worker: int = 5000
    min_workers: int = 1
    max_workers: int = 4
    global_max: int = 16
    cooldown_s: float = 30.0
    hysteresis: float = 0.2
    idle_grace_s: float = 300.0

    def __post_init__(self) -> None:
        if self.target_per_worker < 1:
            raise ValueError("target_per_worker must be at least 1")
        if not 0 <= self.min_workers <= self.max_workers:
            raise ValueError("need 0 <= min_workers <= max_workers")
        if not 0 <= self.hysteresis < 1:
            raise ValueError("hysteresis is a fraction in [0, 1)")
        if self.idle_grace_s < 0:
            raise ValueError("idle_grace_s must not be negative")


@dataclass(frozen=True)
class Pool:
    """What beat knows of one client's pool."""

    state: str = ACTIVE
    records: int = 0
    desired: int | None = None
    changed_at: float | None = None
    pinned: int | None = None
    #: Since when nothing was queued or in flight (None: there is work, or not known).
    idle_since: float | None = None


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str


def _needed(records: int, per_worker: float) -> int:
    return math.ceil(records / per_worker) if records > 0 else 0


def _decide(pool: Pool, policy: ScalingPolicy, now: float) -> Decision:
    """The decision for one pool before the global max."""
    if pool.state == RETIRED:
        return Decision(0, RETIRED)
    draining = pool.state in (STALE, DRAINING)
    if pool.pinned is not None:
        if draining and pool.pinned < 1:
            return Decision(1, f"{pool.state}: drains despite pin {pool.pinned}")
        return Decision(pool.pinned, "pinned")
    target = policy.target_per_worker
    if draining:
        workers = min(max(_needed(pool.records, target), 1), policy.max_workers)
        return Decision(workers, f"{pool.state}: draining")
    if (pool.records <= 0 and pool.idle_since is not None
            and now - pool.idle_since >= policy.idle_grace_s):
        return Decision(0, "idle")
    up = min(max(_needed(pool.records, target), policy.min_workers), policy.max_workers)
    previous = pool.desired
    if previous is None:
        return Decision(up, "policy")
    if previous == 0 and pool.records > 0:
        # Waking up is never held back: the first records must not wait for a cooldown.
        return Decision(up, "policy: work arrived")
    previous = min(max(previous, policy.min_workers), policy.max_workers)
    if up > previous:
        wanted, why = up, "policy: more work"
    else:
        # Shrink only to a pool that would still be `hysteresis` below its capacity.
        down = _needed(pool.records, target * (1 - policy.hysteresis))
        wanted = max(min(down, previous), policy.min_workers)
        why = "policy: less work" if wanted < previous else "policy: steady"
    if wanted != previous and pool.changed_at is not None:
        elapsed = now - pool.changed_at
        # A change stamped in the future is clock skew between hosts: not a cooldown.
        if 0 <= elapsed < policy.cooldown_s:
            return Decision(previous, "cooldown")
    return Decision(wanted, why)


def plan(pools: Mapping[str, Pool], policy: ScalingPolicy, now: float) -> dict[str, Decision]:
    """Desired workers per client; see the module docstring for the rules."""
    decisions = {client_id: _decide(pool, policy, now) for client_id, pool in pools.items()}
    if sum(d.desired for d in decisions.values()) <= policy.global_max:
        return decisions
    return _share(decisions, pools, policy, now)


def _share(decisions: dict[str, Decision], pools: Mapping[str, Pool], policy: ScalingPolicy,
           now: float) -> dict[str, Decision]:
    """Cut the decisions down to the global max (rule 6)."""
    pinned = {c for c, d in decisions.items() if d.reason == "pinned"}
    granted = {c: decisions[c].desired if c in pinned else 0 for c in decisions}
    budget = policy.global_max - sum(granted.values())

    def turn(client_id: str) -> tuple[bool, bool, float, bool, str]:
        pool = pools[client_id]
        holding = (pool.desired or 0) >= 1
        since = pool.changed_at if pool.changed_at is not None else -math.inf
        fresh = holding and 0 <= now - since < policy.cooldown_s
        return (not fresh, pool.records <= 0, since, holding, client_id)

    first = sorted((c for c in decisions if c not in pinned and decisions[c].desired > 0),
                   key=turn)
    for client_id in first[:max(budget, 0)]:
        granted[client_id] = 1
    budget -= min(len(first), max(budget, 0))
    wanting = {c for c in first if granted[c] and granted[c] < decisions[c].desired}
    for _ in range(max(budget, 0)):
        if not wanting:
            break
        # The busiest pool per worker gets the next one; ties by client id.
        client_id = max(sorted(wanting), key=lambda c: pools[c].records / granted[c])
        granted[client_id] += 1
        if granted[client_id] == decisions[client_id].desired:
            wanting.discard(client_id)
    return {c: d if granted[c] == d.desired else Decision(granted[c],
                                                          f"global max {policy.global_max}")
            for c, d in decisions.items()}
