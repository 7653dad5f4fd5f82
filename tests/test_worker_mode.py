"""Per-client workers or a fleet: the choice of ``KGCELERY_WORKER_MODE``, the local
fleet's size and command line, and the scaling budget on a fleet (pure functions)."""

from __future__ import annotations

import fnmatch

import pytest

from kgcelery.control.policy import Pool, plan
from kgcelery.control.scalers.fleet import FLEET_IDLE_QUEUE
from kgcelery.control.scalers.local_fleet import default_fleet_size, fleet_worker_argv
from kgcelery.control.tasks import policy_of
from kgcelery.control.workermode import resolve_worker_mode
from kgcelery.settings import Settings


@pytest.mark.parametrize(("mode", "registered", "expected"), [
    ("auto", 0, "per-client"),
    ("auto", 8, "per-client"),
    ("auto", 9, "fleet"),
    ("auto", 1000, "fleet"),
    ("per-client", 1000, "per-client"),
    ("fleet", 0, "fleet"),
])
def test_auto_runs_a_fleet_past_the_threshold(mode: str, registered: int,
                                              expected: str) -> None:
    assert resolve_worker_mode(mode, registered=registered, threshold=8) == expected


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown worker mode"):
        resolve_worker_mode("both", registered=1, threshold=8)


def test_the_settings_name_the_modes_and_a_threshold() -> None:
    settings = Settings()
    assert (settings.worker_mode, settings.fleet_threshold, settings.fleet_size) == (
        "auto", 8, 0)
    assert Settings(worker_mode="fleet").worker_mode == "fleet"
    with pytest.raises(ValueError):
        Settings(worker_mode="both")  # type: ignore[arg-type]


@pytest.mark.parametrize(("cpus", "fleet_size", "global_max", "expected"), [
    (1, 0, 16, 2),     # at least two: one long task does not hold every queue
    (2, 0, 16, 2),
    (8, 0, 16, 8),     # one per core
    (64, 0, 16, 16),   # never above the global max
    (8, 0, 1, 1),
    (2, 5, 16, 5),     # FLEET_SIZE as given
])
def test_the_default_fleet_size(cpus: int, fleet_size: int, global_max: int,
                                expected: int) -> None:
    settings = Settings(fleet_size=fleet_size, scale_global_max_workers=global_max)
    assert default_fleet_size(settings, cpus=cpus) == expected


def test_fleet_workers_are_named_for_the_fleet_scaler_and_start_idle() -> None:
    argv = fleet_worker_argv(3, Settings())
    assert argv[argv.index("-Q") + 1] == FLEET_IDLE_QUEUE
    name = argv[len(argv) - argv[::-1].index("-n")].replace("%h", "host")  # nice's -n first
    assert fnmatch.fnmatchcase(name, Settings().fleet_worker_pattern)
    assert argv[:3] == ["nice", "-n", "5"]


def test_on_a_fleet_every_client_with_work_has_its_queue_consumed() -> None:
    # 40 clients with work, a budget of 8 processes: per client, 8 of them get a worker
    # (the others wait their turn); on a fleet, the budget is the fleet's processes and
    # every queue is consumed, shared in turn.
    pools = {f"c-{i:02}": Pool(records=100) for i in range(40)}
    per_client = policy_of(Settings(scale_global_max_workers=8))
    assert sum(d.desired for d in plan(pools, per_client, now=0.0).values()) == 8
    for fleet in (Settings(scale_global_max_workers=8, scaler_backend="celery"),
                  Settings(scale_global_max_workers=8, worker_mode="fleet")):
        decisions = plan(pools, policy_of(fleet), now=0.0)
        assert all(d.desired == 1 for d in decisions.values())
