"""The Kubernetes probes' liveness files, on a real Redis, Celery worker and beat.

Each role's own loop touches ``kgcelery-<role>.alive`` (kgcelery/liveness.py); the probe
is ``python -m kgcelery.liveness ROLE --max-age N``. What matters: the files stay fresh
while Redis refuses writes (``maxmemory`` reached under ``noeviction``, the bridge's
backpressure), so a full Redis restarts no pod, and they go stale when the loop stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kgcelery.embedded.binaries import redis_server_binary
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port, port_in_use
from kgcelery.liveness import Heartbeat, main
from kgcelery.settings import Settings
from tests.helpers import redis_pings, serving, wait_for

pytestmark = pytest.mark.integration


def probe(directory: Path, role: str, max_age: float) -> int:
    return subprocess.run([sys.executable, "-m", "kgcelery.liveness", role, "--max-age",
                           str(max_age), "--dir", str(directory)],
                          capture_output=True, timeout=30).returncode


def test_the_probe_reads_the_files_age(tmp_path: Path) -> None:
    assert main(["bridge", "--dir", str(tmp_path)]) == 1, "no file: not alive"
    Heartbeat(tmp_path, "bridge").beat()
    assert probe(tmp_path, "bridge", 30) == 0
    os.utime(tmp_path / "kgcelery-bridge.alive", (time.time() - 100, time.time() - 100))
    assert probe(tmp_path, "bridge", 30) == 1
    Heartbeat(None, "bridge").beat()  # off: touches nothing
    with pytest.raises(ValueError):
        Heartbeat(tmp_path, "flower")


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    port = free_port()
    with serving("liveness-redis", [redis_server_binary(Settings()), "--port", str(port),
                                    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                    "--maxmemory", "64mb", "--maxmemory-policy", "noeviction"],
                 port, tmp_path, what="redis-server"):
        client = redis.Redis(port=port)
        try:
            wait_for(lambda: redis_pings(client), timeout=20, what="redis-server answering")
            yield f"redis://127.0.0.1:{port}/0", client
        finally:
            client.close()


def _fill(client: redis.Redis) -> None:
    """Redis above its maxmemory under noeviction: every write is refused."""
    client.set("filler", b"x" * 4_000_000)
    client.config_set("maxmemory", "2mb")


CELERY = [sys.executable, "-m", "celery", "-A", "kgcelery.app"]
ROLE_ARGS = {
    "worker": ["worker", "-Q", "control", "-n", "liveness@%h", "--pool", "solo",
               "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
    "beat": ["beat", "--loglevel", "INFO"],
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("role", ["worker", "beat"])
def test_a_role_stays_alive_while_redis_refuses_writes(
        role: str, tmp_path: Path, full_redis: tuple[str, redis.Redis]) -> None:
    url, client = full_redis
    alive = tmp_path / "alive"
    alive.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KGCELERY_")},
           "KGCELERY_BROKER_URL": url, "KGCELERY_LIVENESS_DIR": str(alive),
           # beat's jobs and the control worker need nothing but Redis then.
           "KGCELERY_SCALER_BACKEND": "celery"}
    argv = [*CELERY, *ROLE_ARGS[role]]
    if role == "beat":
        argv += ["--schedule", str(tmp_path / "beat-schedule")]
    process = ManagedProcess(f"liveness-{role}", argv, run_dir=tmp_path, log_dir=tmp_path,
                             env=env)
    process.start()
    try:
        process.wait_until(lambda: probe(alive, role, 10) == 0, timeout=60,
                           what=f"{role}'s liveness file")
        # The loop touches it again and again, not once at start.
        time.sleep(12)
        assert probe(alive, role, 10) == 0, process.tail(30)
        _fill(client)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.lpush("client.af-9", "a task")
        # Longer than the probe's max age: only a loop that keeps turning passes.
        time.sleep(15)
        assert process.alive(), f"{role} died while Redis was full:\n{process.tail(30)}"
        assert probe(alive, role, 10) == 0, f"{role} stopped turning:\n{process.tail(30)}"
        # And a loop that stops goes stale.
        process.send_signal(signal.SIGSTOP)
        time.sleep(12)
        assert probe(alive, role, 10) == 1
        process.send_signal(signal.SIGCONT)
    finally:
        process.stop()


@pytest.mark.timeout(120)
def test_the_control_worker_serves_the_control_metrics(
        tmp_path: Path, full_redis: tuple[str, redis.Redis]) -> None:
    """On Kubernetes the control worker is where the control plane's metrics come from
    (KGCELERY_CONTROL_METRICS_PORT; deploy/ scrapes it): a client worker serves none."""
    import urllib.request

    url, _ = full_redis
    from kgcelery.control.registry import Registry

    registry = Registry.from_url(url)
    registry.register("af-9", cluster_name="af-9")
    registry.close()
    ports = {"control": free_port(), "client.af-9": free_port()}
    processes = []
    for queue, port in ports.items():
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("KGCELERY_")},
               "KGCELERY_BROKER_URL": url, "KGCELERY_SCALER_BACKEND": "celery",
               "KGCELERY_CONTROL_METRICS_PORT": str(port)}
        process = ManagedProcess(f"metrics-{queue}", [
            *CELERY, "worker", "-Q", queue, "-n", f"{queue}@%h", "--pool", "solo",
            "--without-mingle", "--without-gossip"], run_dir=tmp_path, log_dir=tmp_path,
            env=env)
        process.start()
        processes.append(process)
    try:
        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['control']}/metrics",
                                            timeout=5) as answer:
                    return str(answer.read().decode())
            except OSError:
                return ""

        text = wait_for(scrape, timeout=60, what="the control worker's metrics")
        assert 'client="af-9"' in text and "kgcelery_" in text
        time.sleep(2)
        assert not port_in_use(ports["client.af-9"]), "a client worker serves no metrics"
    finally:
        for process in processes:
            process.stop()
