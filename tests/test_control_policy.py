"""The control plane's pure core: expiry, lifecycle and the scaling plan, as tables."""

from __future__ import annotations

import math

import pytest

from kgcelery.control.expiry import Transition, is_expired, next_state, refuse_retirement
from kgcelery.control.policy import Decision, Pool, ScalingPolicy, plan
from kgcelery.control.registry import ACTIVE, DRAINING, RETIRED, STALE

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("now", "last_seen", "ttl", "expired"), [
    (NOW, None, 120, False),             # never seen: not started yet
    (NOW, NOW, 120, False),
    (NOW, NOW - 119.9, 120, False),
    (NOW, NOW - 120, 120, False),        # exactly the ttl: still alive
    (NOW, NOW - 120.001, 120, True),
    (NOW, NOW - 10_000, 120, True),
    (NOW, NOW + 3600, 120, False),       # clock skew: a future heartbeat is "just seen"
    (0.0, 0.0, 0.001, False),            # the epoch is a time like any other
    (NOW, 0.0, 120, True),
])
def test_is_expired(now: float, last_seen: float | None, ttl: float, expired: bool) -> None:
    assert is_expired(now, last_seen, ttl) is expired


def _next(state: str, *, registered: bool = True, seen_ago: float | None = 0.0,
          since_ago: float | None = 60.0, backlog: int = 0) -> Transition | None:
    return next_state(state=state, registered=registered,
                      last_seen=None if seen_ago is None else NOW - seen_ago,
                      state_since=None if since_ago is None else NOW - since_ago,
                      backlog=backlog, now=NOW, ttl=120, drain_grace=5)


@pytest.mark.parametrize(("kwargs", "to"), [
    ({"state": ACTIVE}, None),
    ({"state": ACTIVE, "seen_ago": 121}, STALE),
    ({"state": ACTIVE, "seen_ago": 121, "backlog": 50}, STALE),   # stale first, drained later
    ({"state": ACTIVE, "seen_ago": None}, None),                  # never seen
    ({"state": ACTIVE, "seen_ago": -500}, None),                  # skewed future heartbeat
    # Stale: retired only with nothing queued or in flight, after the grace.
    ({"state": STALE, "seen_ago": 200, "backlog": 1}, None),
    ({"state": STALE, "seen_ago": 200}, RETIRED),
    ({"state": STALE, "seen_ago": 200, "since_ago": 4.9}, None),  # within the grace
    ({"state": STALE, "seen_ago": 200, "since_ago": 5}, RETIRED),
    ({"state": STALE, "seen_ago": 200, "since_ago": -30}, RETIRED),  # skewed state_since
    ({"state": STALE, "seen_ago": 200, "since_ago": None}, RETIRED),
    ({"state": STALE, "seen_ago": 10}, ACTIVE),                   # a heartbeat came back
    # Draining (deregistered): same drain rule; heartbeats do not count.
    ({"state": DRAINING, "registered": False, "backlog": 3}, None),
    ({"state": DRAINING, "registered": False}, RETIRED),
    ({"state": DRAINING, "registered": False, "since_ago": 1}, None),
    # Retired.
    ({"state": RETIRED, "seen_ago": 500}, None),
    ({"state": RETIRED, "seen_ago": 500, "backlog": 4}, STALE),   # records came after all
    ({"state": RETIRED, "registered": False, "seen_ago": 500, "backlog": 4}, None),
    ({"state": RETIRED, "seen_ago": 5}, ACTIVE),
    ({"state": RETIRED, "registered": False, "seen_ago": 5}, None),  # retired by ops
])
def test_next_state(kwargs: dict, to: str | None) -> None:
    transition = _next(**kwargs)
    assert (transition.to if transition else None) == to


POLICY = ScalingPolicy(target_per_worker=1000, min_workers=1, max_workers=4, global_max=10,
                       cooldown_s=30, hysteresis=0.2)


def _one(pool: Pool, policy: ScalingPolicy = POLICY, now: float = NOW) -> Decision:
    return plan({"a": pool}, policy, now)["a"]


@pytest.mark.parametrize(("pool", "desired", "reason"), [
    # First decision: straight from the work, within [min, max].
    (Pool(records=0), 1, "policy"),
    (Pool(records=1), 1, "policy"),
    (Pool(records=1000), 1, "policy"),
    (Pool(records=1001), 2, "policy"),
    (Pool(records=10_000), 4, "policy"),                          # max
    # Growth is immediate once the cooldown is over.
    (Pool(records=2500, desired=1, changed_at=NOW - 31), 3, "policy: more work"),
    # Hysteresis: 3 workers shrink to 2 only below 2 * 1000 * 0.8 = 1600 records.
    (Pool(records=2000, desired=3, changed_at=NOW - 60), 3, "policy: steady"),
    (Pool(records=1601, desired=3, changed_at=NOW - 60), 3, "policy: steady"),
    (Pool(records=1600, desired=3, changed_at=NOW - 60), 2, "policy: less work"),
    (Pool(records=0, desired=3, changed_at=NOW - 60), 1, "policy: less work"),
    # ...and 2 go back to 3 only above 2000: the band in between holds either size.
    (Pool(records=2000, desired=2, changed_at=NOW - 60), 2, "policy: steady"),
    (Pool(records=2001, desired=2, changed_at=NOW - 60), 3, "policy: more work"),
    # Cooldown holds both directions, measured from the last change.
    (Pool(records=5000, desired=1, changed_at=NOW - 10), 1, "cooldown"),
    (Pool(records=0, desired=4, changed_at=NOW - 29.9), 4, "cooldown"),
    (Pool(records=0, desired=4, changed_at=NOW - 30), 1, "policy: less work"),
    (Pool(records=0, desired=4, changed_at=NOW + 600), 1, "policy: less work"),  # skew
    (Pool(records=0, desired=4, changed_at=None), 1, "policy: less work"),
    # A previous decision outside new bounds is brought back into them.
    (Pool(records=0, desired=9, changed_at=NOW - 1), 4, "cooldown"),
    # Pins override the policy, the max and the cooldown.
    (Pool(records=10_000, pinned=1), 1, "pinned"),
    (Pool(records=0, pinned=7, desired=1, changed_at=NOW), 7, "pinned"),
    (Pool(records=50_000, pinned=0), 0, "pinned"),
    # Stale and draining keep one worker until retired, even when pinned to 0.
    (Pool(state=STALE, records=0), 1, "stale: draining"),
    (Pool(state=STALE, records=3500), 4, "stale: draining"),
    (Pool(state=DRAINING, records=0, pinned=0), 1, "draining: drains despite pin 0"),
    (Pool(state=DRAINING, records=0, pinned=2), 2, "pinned"),
    # Retired: no workers, whatever the pin or the queue.
    (Pool(state=RETIRED, records=9000, pinned=3, desired=3), 0, RETIRED),
])
def test_plan_one_pool(pool: Pool, desired: int, reason: str) -> None:
    assert _one(pool) == Decision(desired, reason)


def test_min_zero_lets_an_idle_client_have_no_workers() -> None:
    policy = ScalingPolicy(target_per_worker=1000, min_workers=0, max_workers=2, cooldown_s=0)
    assert _one(Pool(records=0), policy).desired == 0
    assert _one(Pool(records=1, desired=0, changed_at=NOW), policy).desired == 1
    assert _one(Pool(state=STALE, records=0), policy).desired == 1


def test_global_max_caps_the_extra_workers_busiest_first() -> None:
    policy = ScalingPolicy(target_per_worker=1000, min_workers=1, max_workers=4, global_max=6)
    pools = {"a": Pool(records=4000), "b": Pool(records=4000), "c": Pool(records=0),
             "d": Pool(records=9000, pinned=1)}
    decisions = plan(pools, policy, NOW)
    # Floors first: a 1, b 1, c 1, d (pin) 1 = 4; two extra for a and b, one each.
    assert {c: d.desired for c, d in decisions.items()} == {"a": 2, "b": 2, "c": 1, "d": 1}
    assert decisions["a"].reason == decisions["b"].reason == "global max 6"
    assert decisions["c"].reason == "policy" and decisions["d"].reason == "pinned"
    assert sum(d.desired for d in decisions.values()) == 6


def test_global_max_favours_the_most_records_per_worker() -> None:
    policy = ScalingPolicy(target_per_worker=1000, min_workers=1, max_workers=4, global_max=4)
    decisions = plan({"big": Pool(records=4000), "small": Pool(records=2000)}, policy, NOW)
    assert {c: d.desired for c, d in decisions.items()} == {"big": 3, "small": 1}


def test_the_global_max_is_a_budget_for_all_but_pins() -> None:
    policy = ScalingPolicy(target_per_worker=1000, min_workers=1, max_workers=4, global_max=3)
    pools = {"a": Pool(records=5000), "b": Pool(state=STALE, records=5000),
             "c": Pool(pinned=2), "d": Pool(state=RETIRED, records=100),
             "e": Pool(records=0)}
    decisions = plan(pools, policy, NOW)
    # c's pin stands (ops asked for it); one worker is left: a and b have work, e none,
    # so a (first by id among equals) gets it and b waits for its turn.
    assert {c: d.desired for c, d in decisions.items()} == {
        "a": 1, "b": 0, "c": 2, "d": 0, "e": 0}
    assert decisions["b"].reason == decisions["e"].reason == "global max 3"


@pytest.mark.parametrize(("pool", "desired", "reason"), [
    (Pool(records=0, desired=1, idle_since=NOW - 300), 0, "idle"),
    (Pool(records=0, desired=1, idle_since=NOW - 299), 1, "policy: steady"),
    (Pool(records=0, desired=None, idle_since=NOW - 3000), 0, "idle"),
    (Pool(records=0, desired=0, idle_since=NOW - 3000), 0, "idle"),
    # Records after idleness: a worker at once, whatever the cooldown.
    (Pool(records=10, desired=0, changed_at=NOW - 1), 1, "policy: work arrived"),
    (Pool(records=9000, desired=0, changed_at=NOW - 1), 4, "policy: work arrived"),
    # Draining and pinned clients are not idled away.
    (Pool(state=STALE, records=0, idle_since=NOW - 3000), 1, "stale: draining"),
    (Pool(records=0, pinned=2, idle_since=NOW - 3000), 2, "pinned"),
])
def test_idle_clients_hold_no_worker(pool: Pool, desired: int, reason: str) -> None:
    assert _one(pool) == Decision(desired, reason)


def _rounds(pools: dict[str, Pool], policy: ScalingPolicy, *, rounds: int,
            step: float) -> list[dict[str, Decision]]:
    """Run plan() as beat does, feeding each decision back (records stay as they are)."""
    history = []
    now = NOW
    for _ in range(rounds):
        decisions = plan(pools, policy, now)
        history.append(decisions)
        for client_id, decision in decisions.items():
            pool = pools[client_id]
            changed = pool.desired != decision.desired
            pools[client_id] = Pool(
                records=pool.records, desired=decision.desired,
                changed_at=now if changed else pool.changed_at,
                idle_since=(pool.idle_since or now) if pool.records == 0 else None)
        now += step
    return history


def test_200_busy_clients_share_a_budget_of_8_in_turns() -> None:
    """Every client keeps having work: each still gets its turn, and a turn lasts at
    least the cooldown (no worker is started and stopped at once)."""
    policy = ScalingPolicy(target_per_worker=1000, min_workers=1, max_workers=4,
                           global_max=8, cooldown_s=30, idle_grace_s=60)
    pools = {f"c{i:03}": Pool(records=500 + 10 * i) for i in range(200)}
    history = _rounds(pools, policy, rounds=25 * 3 + 3, step=10)
    assert max(sum(d.desired for d in h.values()) for h in history) == 8
    served = {c for h in history for c, d in h.items() if d.desired >= 1}
    assert served == set(pools), f"{200 - len(served)} clients never got a worker"
    for client_id in pools:
        turns = [h[client_id].desired for h in history]
        held = [n for n in "".join("1" if t else "0" for t in turns).split("0") if n]
        assert all(len(run) >= 3 for run in held[:-1]), (client_id, turns)


def test_200_idle_clients_hold_a_bounded_number_of_workers_then_none() -> None:
    policy = ScalingPolicy(target_per_worker=1000, min_workers=1, max_workers=4,
                           global_max=16, cooldown_s=30, idle_grace_s=60)
    pools = {f"c{i:03}": Pool(records=0) for i in range(200)}
    history = _rounds(pools, policy, rounds=12, step=10)
    assert all(sum(d.desired for d in h.values()) <= 16 for h in history)
    assert sum(d.desired for d in history[-1].values()) == 0
    assert {d.reason for d in history[-1].values()} == {"idle"}


def test_under_the_global_max_nothing_is_cut() -> None:
    pools = {f"c{i}": Pool(records=2500) for i in range(3)}
    decisions = plan(pools, POLICY, NOW)
    assert all(d == Decision(3, "policy") for d in decisions.values())


@pytest.mark.parametrize("kwargs", [
    {"target_per_worker": 0}, {"min_workers": 5, "max_workers": 4}, {"min_workers": -1},
    {"hysteresis": 1.0}, {"hysteresis": -0.1},
])
def test_policy_refuses_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ScalingPolicy(**kwargs)


def test_a_steady_load_does_not_flap() -> None:
    """Work wobbling around a boundary changes the pool at most once."""
    desired, changed_at, changes = None, None, 0
    for step in range(60):
        records = 2000 + int(150 * math.sin(step))       # 1850 .. 2150 around 2 workers
        decision = _one(Pool(records=records, desired=desired, changed_at=changed_at),
                        now=NOW + step * 10)
        if decision.desired != desired:
            changes += 1
            desired, changed_at = decision.desired, NOW + step * 10
    assert changes <= 2, f"{changes} changes for a steady load"


@pytest.mark.parametrize(("backend", "entries"), [
    ("local", {"expire-stale-clients", "scale-worker-pools"}),
    ("celery", {"expire-stale-clients", "scale-worker-pools", "reconcile-worker-pools"}),
    ("kubernetes", {"expire-stale-clients", "scale-worker-pools", "reconcile-worker-pools"}),
])
def test_beat_entries_run_on_control_and_expire(backend: str, entries: set[str]) -> None:
    from beat_schedule import build_schedule
    from kgcelery.settings import Settings

    settings = Settings(scaler_backend=backend, expiry_interval_s=7, scale_interval_s=11)
    schedule = build_schedule(settings)
    assert set(schedule) == entries
    for entry in schedule.values():
        assert entry["options"]["queue"] == "control"
        # A run not started within one interval is dropped: the next one is due anyway.
        assert entry["options"]["expires"] == entry["schedule"]
    assert schedule["scale-worker-pools"]["schedule"] == 11


@pytest.mark.parametrize(("queued", "in_flight", "force", "refused"), [
    (0, 0, False, False), (3, 0, False, True), (0, 1, False, True), (3, 1, True, False)])
def test_ops_retire_only_a_drained_client_unless_forced(queued: int, in_flight: int,
                                                        force: bool, refused: bool) -> None:
    refusal = refuse_retirement("af-9", queued=queued, in_flight=in_flight, force=force)
    assert bool(refusal) is refused
    if refusal:
        assert "kgcelery drain af-9" in refusal and f"{queued} tasks queued" in refusal
