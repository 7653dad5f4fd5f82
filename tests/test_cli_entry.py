"""Every way of starting the CLI offers every command."""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = {"up", "down", "demo", "bridge", "dlq", "clients", "scale", "drain", "retire",
            "register", "reconcile", "flower", "check", "topics", "deploy", "graph",
            "timeline"}


@pytest.mark.parametrize("module", ["kgcelery", "kgcelery.cli"])
def test_python_dash_m_lists_every_command(module: str) -> None:
    shown = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    listed = {line.split()[0] for line in shown.split("Commands:")[1].splitlines()
              if line.strip()}
    assert listed == COMMANDS
