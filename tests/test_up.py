"""``kgcelery up`` as an operator runs it: the demo's clients fill their graphs, the
status says so, and Ctrl-C leaves nothing running; with per-client workers (what
``auto`` picks for the demo's three clients) and with a fleet."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kgcelery.embedded.process import pid_alive, read_pid
from kgcelery.embedded.stack import free_port
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

#: A status row: client, state, queue, in flight, workers, events, objects, p99.
STATUS_ROW = re.compile(r"^\s+(\S+)\s+active\s+\d+\s+\d+\s+\d+/\d+\s+(\d+)\s+(\d+)\s", re.M)


def _clients_with_graphs(log: Path) -> set[str]:
    text = log.read_text(errors="replace")
    return {client for client, events, objects in STATUS_ROW.findall(text)
            if int(events) > 0 and int(objects) > 0}


@contextmanager
def running_up(state: Path, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``kgcelery up --status-interval 2 <args>`` on free ports, its output in ``log``;
    killed with its process group if still running at the end (a failed test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGCELERY_")}
    env.update(KGCELERY_STATE_DIR=str(state),
               KGCELERY_EMBEDDED_KAFKA_PORT=str(free_port()),
               KGCELERY_EMBEDDED_BROKER_PORT=str(free_port()),
               KGCELERY_EMBEDDED_GRAPH_PORT=str(free_port()),
               KGCELERY_FLOWER_PORT=str(free_port()))
    with log.open("wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "kgcelery", "up", "--status-interval", "2",
                               *args],
                              stdout=out, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    try:
        yield up
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


def still_running(state: Path) -> list[str]:
    """The pid files of the state directory whose processes live."""
    return [pid_file.name for pid_file in (state / "run").glob("*.pid")
            if (pid := read_pid(pid_file)) is not None and pid_alive(pid)]


@pytest.mark.parametrize("mode", ["auto", "fleet"])
def test_up_fills_the_demo_clients_graphs_and_ctrl_c_stops_everything(tmp_path: Path,
                                                                       mode: str) -> None:
    state, log = tmp_path / "state", tmp_path / "up.log"
    with running_up(state, log, "--worker-mode", mode, "--fleet-size", "2") as up:
        wait_for(lambda: len(_clients_with_graphs(log)) >= 3 or up.poll() is not None,
                 timeout=240, interval=1.0, what="three demo clients with graphs")
        assert up.poll() is None, log.read_text()[-3000:]
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=120) == 0, log.read_text()[-3000:]
    shown = log.read_text()
    assert "stopped; nothing left running." in shown
    if mode == "fleet":
        # The two fleet workers consumed the three clients' queues.
        assert "a fleet of 2" in shown and "fleet: 2/2 workers, 3 client queues" in shown
    else:
        assert "fleet:" not in shown and "per client, sized by beat" in shown
    left = still_running(state)
    assert not left, f"still running after Ctrl-C: {left}"


def _events_of(log: Path, client: str) -> int:
    """The client's event count in the last status that showed it."""
    counts = [int(events) for shown, events, _objects in
              STATUS_ROW.findall(log.read_text(errors="replace")) if shown == client]
    return counts[-1] if counts else 0


def test_up_starts_a_server_that_died_again_and_the_graphs_fill_on(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "up.log"
    graph_pid_file = state / "run" / "graph.pid"
    with running_up(state, log, "--no-flower") as up:
        wait_for(lambda: _clients_with_graphs(log) or up.poll() is not None,
                 timeout=240, interval=1.0, what="a demo client with a graph")
        assert up.poll() is None, log.read_text()[-3000:]
        client = sorted(_clients_with_graphs(log))[0]
        crashed = read_pid(graph_pid_file)
        assert crashed is not None and pid_alive(crashed)
        os.kill(crashed, signal.SIGKILL)  # FalkorDB crashes
        written_before = _events_of(log, client)

        def restarted() -> bool:
            pid = read_pid(graph_pid_file)
            return pid not in (None, crashed) and pid_alive(pid)

        wait_for(restarted, timeout=60, what="FalkorDB started again")
        assert "graph exited with code -9; starting it again" in log.read_text()
        # The workers' retries and the next records reach the graph that came back.
        wait_for(lambda: _events_of(log, client) > written_before or up.poll() is not None,
                 timeout=120, interval=1.0, what=f"{client}'s graph growing again")
        assert up.poll() is None, log.read_text()[-3000:]
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=120) == 0, log.read_text()[-3000:]
    left = still_running(state)
    assert not left, f"still running after Ctrl-C: {left}"
