"""How many workers each client should have: a pure function, table-tested.

``plan(pools, policy, now)`` takes what beat gathered (state, records waiting or in
flight, the previous decision and when it changed, an ops pin) and returns a decision
per client. Rules, in order:

1. retired: 0 workers.
2. pinned (``kgcelery scale af-9 3``): the pin, whatever the policy says; only a
   stale or draining client is lifted to 1 so that its backlog is still written.
3. stale or draining: what the work needs, at least 1 (drain before retirement).
4. active: ``ceil(records / target_per_worker)`` within [min, max]; grows at once,
   shrinks only when the work is ``hysteresis`` below the smaller pool's capacity, and
   changes at most once per ``cooldown_s``.
5. the global max caps the workers above each client's floor (min, pin, drain): extra
   workers go one at a time to the client with the most records per worker.
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

    def __post_init__(self) -> None:
        if self.target_per_worker < 1:
            raise ValueError("target_per_worker must be at least 1")
        if not 0 <= self.min_workers <= self.max_workers:
            raise ValueError("need 0 <= min_workers <= max_workers")
        if not 0 <= self.hysteresis < 1:
            raise ValueError("hysteresis is a fraction in [0, 1)")


@dataclass(frozen=True)
class Pool:
    """What beat knows of one client's pool."""

    state: str = ACTIVE
    records: int = 0
    desired: int | None = None
    changed_at: float | None = None
    pinned: int | None = None


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str


def _needed(records: int, per_worker: float) -> int:
    return math.ceil(records / per_worker) if records > 0 else 0


def _decide(pool: Pool, policy: ScalingPolicy, now: float) -> tuple[Decision, int]:
    """The decision for one pool before the global max, and its floor."""
    if pool.state == RETIRED:
        return Decision(0, RETIRED), 0
    draining = pool.state in (STALE, DRAINING)
    if pool.pinned is not None:
        if draining and pool.pinned < 1:
            return Decision(1, f"{pool.state}: drains despite pin {pool.pinned}"), 1
        return Decision(pool.pinned, "pinned"), pool.pinned
    target = policy.target_per_worker
    if draining:
        workers = min(max(_needed(pool.records, target), 1), policy.max_workers)
        return Decision(workers, f"{pool.state}: draining"), 1
    up = min(max(_needed(pool.records, target), policy.min_workers), policy.max_workers)
    previous = pool.desired
    if previous is None:
        return Decision(up, "policy"), policy.min_workers
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
            return Decision(previous, "cooldown"), policy.min_workers
    return Decision(wanted, why), policy.min_workers


def plan(pools: Mapping[str, Pool], policy: ScalingPolicy, now: float) -> dict[str, Decision]:
    """Desired workers per client; see the module docstring for the rules."""
    decisions: dict[str, Decision] = {}
    floors: dict[str, int] = {}
    for client_id, pool in pools.items():
        decisions[client_id], floors[client_id] = _decide(pool, policy, now)
    floors = {c: min(f, decisions[c].desired) for c, f in floors.items()}
    budget = policy.global_max - sum(floors.values())
    extra = {c: d.desired - floors[c] for c, d in decisions.items()}
    if sum(extra.values()) <= max(budget, 0):
        return decisions
    granted = dict(floors)
    wanting = {c for c, n in extra.items() if n > 0}
    for _ in range(max(budget, 0)):
        # The busiest pool per worker gets the next one; ties by client id.
        client_id = max(sorted(wanting),
                        key=lambda c: pools[c].records / max(granted[c], 1) if granted[c]
                        else math.inf)
        granted[client_id] += 1
        if granted[client_id] == decisions[client_id].desired:
            wanting.discard(client_id)
    for client_id in extra:
        if granted[client_id] < decisions[client_id].desired:
            decisions[client_id] = Decision(granted[client_id],
                                            f"global max {policy.global_max}")
    return decisions
