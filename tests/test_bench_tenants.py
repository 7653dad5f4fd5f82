"""bench/tenants_load.py, on a tiny load: it runs end to end on both kinds of workers,
prints its line, and every record produced reaches a graph (the figures themselves are
docs/BENCHMARKS.md's, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).parents[1] / "bench" / "tenants_load.py"


@pytest.mark.parametrize("mode", ["fleet", "local"])
def test_the_tenants_bench_runs_and_loses_nothing(mode: str) -> None:
    # Its processes die with it (PDEATHSIG), also when the timeout kills it.
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
