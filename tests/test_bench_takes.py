"""bench/takes.py, on a few takes: it runs, prints its lines, and its two modes differ
in what they should (statements; the CPU figures are docs/BENCHMARKS.md's, never
asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).parents[1] / "bench" / "takes.py"


def test_the_takes_bench_runs_and_joins_a_resource_takes_statements() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--clients", "2", "--warm", "1", "--rounds", "2",
         "--passes", "1", "--kinds", "resource,log", "--no-neo4j"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines()
             if line.startswith("takes-")}
    assert set(lines) == {"takes-resource", "takes-log"}, done.stdout
    statements = {}
    for kind, line in lines.items():
        found = re.search(r"joined ([\d.]+) statements.* one by one ([\d.]+),", line)
        assert found, line
        statements[kind] = (float(found[1]), float(found[2]))
    joined, apart = statements["takes-resource"]
    assert 0 < joined < apart, lines["takes-resource"]
    assert statements["takes-log"] == (1.0, 1.0)
