"""bench/tenants_load.py, on a tiny load: it runs end to end on both kinds of workers,
prints its line, and every record produced reaches a graph (the figures themselves are
docs/BENCHMARKS.md's, never asserted here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.common import descendants
from kgcelery.embedded.process import pid_alive
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

BENCH = Path(__file__).parents[1] / "bench" / "tenants_load.py"


@pytest.mark.parametrize("mode", ["fleet", "local"])
def test_the_tenants_bench_runs_and_loses_nothing(mode: str) -> None:
    # Its processes die with it (PDEATHSIG, its forked helpers too), also when the
    # timeout kills it; SIGTERM stops them in order (the test below).
    done = subprocess.run(
        [sys.executable, str(BENCH), "--clients", "4", "--mode", mode, "--rate", "100",
         "--warmup", "8", "--seconds", "4", "--drain", "90", "--fleet", "1"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    line, result_json = done.stdout.splitlines()[-2:]
    assert line.startswith(f"tenants-4 ({mode}): ")
    result = json.loads(result_json)
    details = result["details"]
    assert details["produced"] > 0
    assert details["written"] == details["produced"]
    assert details["left_after_drain"] == {"quiet": 0, "loud": 0}
    assert 1 <= result["workers"] <= 16
    assert details["worker_cpu_ms_per_1000_records"] > 0, "the workers' CPU was not found"


def test_the_capacity_curve_prints_a_line_per_rate_and_the_capacity() -> None:
    # Once per --merge-clients value, each line tagged with it.
    done = subprocess.run(
        [sys.executable, str(BENCH.with_name("tenants.py")), "--modes", "fleet",
         "--sizes", "4", "--rates", "100", "--warmup", "8", "--seconds", "4",
         "--drain", "90", "--fleet", "1", "--merge-clients", "1,4"],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()[-4:]
    for (point, capacity), merge in zip((lines[:2], lines[2:]), ("1", "4"), strict=True):
        assert point.startswith("tenants-4 (fleet) offered 100/s: "), done.stdout[-2000:]
        assert "p99 quiet " in point and "workers' CPU " in point, point
        # At 100 records/s four clients are served in well under 5 s: a capacity is found.
        assert capacity.startswith("tenants-4 (fleet) capacity: "), capacity
        assert "with quiet p99 < 5 s (offered 100/s)" in capacity, capacity
        assert point.endswith(f"[merge-clients {merge}]") and capacity.endswith(
            f"[merge-clients {merge}]"), (point, capacity)


def test_a_tenants_bench_stopped_by_sigterm_leaves_nothing_running() -> None:
    bench = subprocess.Popen(
        [sys.executable, str(BENCH), "--clients", "4", "--mode", "fleet", "--rate", "100",
         "--warmup", "60", "--seconds", "60", "--fleet", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(bench.stdout or []), daemon=True)
    reader.start()
    tree: set[int] = set()
    try:
        # Once the workers have settled, the load and its producer run too.
        wait_for(lambda: any("settled" in line for line in lines), timeout=240,
                 what="the bench's workers settled")
        time.sleep(3)
        tree = descendants(bench.pid)
        assert len(tree) >= 6, tree   # servers, bridge, a worker and its child, forks
        bench.send_signal(signal.SIGTERM)
        bench.wait(timeout=240)
        wait_for(lambda: not [pid for pid in tree if pid_alive(pid)], timeout=60,
                 what="every process the bench started gone")
    finally:
        for pid in [bench.pid, *tree]:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        bench.wait(timeout=30)
        reader.join(timeout=10)
        if bench.stdout is not None:
            bench.stdout.close()
