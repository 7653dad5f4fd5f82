"""The local scaler's process handling, with stand-in workers: real subprocesses that,
like a Celery worker's warm shutdown, take a second to leave after SIGTERM."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgcelery.control.scalers import local
from kgcelery.control.scalers.local import LocalScaler
from kgcelery.settings import Settings
from tests.helpers import wait_for

SLOW_TO_STOP = """
import signal, sys, time
told = []
signal.signal(signal.SIGTERM, lambda *_: told.append(1))
print("handling " + "SIGTERM", flush=True)  # not in the command line
while not told:
    time.sleep(0.02)
time.sleep(1.0)  # the task in flight
"""


@pytest.fixture
def scaler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalScaler]:
    monkeypatch.setattr(local, "worker_argv",
                        lambda client_id, index, settings: [sys.executable, "-c", SLOW_TO_STOP])
    settings = Settings(state_dir=tmp_path, scale_global_max_workers=2)
    s = LocalScaler(settings, run_dir=tmp_path / "run", log_dir=tmp_path / "logs")
    yield s
    s.close()


def started(scaler: LocalScaler) -> None:
    """Wait until every worker handles SIGTERM (a Celery worker does once it runs)."""
    for workers in scaler._workers.values():
        for worker in workers:
            wait_for(lambda w=worker: "handling SIGTERM" in w.tail(), timeout=10,  # type: ignore[misc]
                     what=f"{worker.name} started")


def test_stops_do_not_hold_the_pass_and_starts_keep_to_the_budget(scaler: LocalScaler) -> None:
    assert scaler.apply({"a-1": 1, "b-1": 1}) == {"a-1": 1, "b-1": 1}
    started(scaler)
    # a and b go idle, c and d get work: the pass returns while a and b finish their
    # tasks (it used to wait for each in turn)...
    scaler.apply({"c-1": 1, "d-1": 1})
    assert scaler.processes() == 2, "the pass waited for a and b to leave"
    # ...and c and d start only as they leave: never more than the budget of 2.
    most = 0
    deadline = time.monotonic() + 15
    while scaler.actual() != {"c-1": 1, "d-1": 1} and time.monotonic() < deadline:
        scaler.apply({"c-1": 1, "d-1": 1})
        most = max(most, scaler.processes())
        time.sleep(0.05)
    assert scaler.actual() == {"c-1": 1, "d-1": 1}
    assert most <= 2
    assert sorted(p.name for p in (scaler.run_dir).glob("*.pid")) == [
        "worker-c-1-1.pid", "worker-d-1-1.pid"]  # a's and b's were cleaned up


def test_a_client_woken_while_its_worker_stops_gets_a_new_one_at_once(
        scaler: LocalScaler) -> None:
    scaler.apply({"a-1": 1})
    started(scaler)
    scaler.apply({})
    assert scaler.apply({"a-1": 1}) == {"a-1": 1}  # its old worker still holds "-1"
    assert scaler.processes() == 2
    wait_for(lambda: scaler.apply({"a-1": 1}) and scaler.processes() == 1, timeout=15,
             what="the old worker gone")
    assert [p.name for p in scaler.run_dir.glob("*.pid")] == ["worker-a-1-2.pid"]
