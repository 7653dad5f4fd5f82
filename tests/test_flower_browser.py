"""Flower in a real browser: headless Chromium shows the client queues and their workers.

Chromium is Debian's ``chromium`` (``make test`` installs it). It runs with a fresh
profile and the flags that keep it from reaching for the network, which stalls it on a
closed machine. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from celery import Celery

from kgcelery.control.registry import Registry
from kgcelery.embedded.stack import free_port
from kgcelery.settings import Settings
from tests.control_support import plain_worker, send_events
from tests.helpers import Processes, wait_for

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Debian's chromium is not installed ('make test' installs it)")
    return found


def _browse(tmp_path: Path, url: str, *action: str, timeout: float = 60) -> str:
    """Run headless Chromium on ``url``; stop its whole process group, whatever happens."""
    profile = tmp_path / f"chromium-{free_port()}"
    argv = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
            "--virtual-time-budget=3000", *action, url]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        # The browser leaves helpers (zygote, renderer) in its group: stop them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    assert process.returncode == 0, f"chromium exited with {process.returncode} on {url}"
    return out.decode(errors="replace")


def test_flower_lists_the_client_queues_and_their_workers(
        settings: Settings, processes: Processes, app: Celery, client_ids: list[str],
        tmp_path: Path) -> None:
    _chromium()
    clients = client_ids[:2]
    registry = Registry.from_url(settings.registry_url)
    try:
        for client in clients:
            registry.register(client, cluster_name=f"{client}-cluster")
    finally:
        registry.close()
    workers = [f"{client}-1" for client in clients]
    for client, name in zip(clients, workers, strict=True):
        plain_worker(processes, settings, client, name=name)
        send_events(app, client, 10, per_task=5)
    port = free_port()
    processes.start("flower", [sys.executable, "-m", "kgcelery", "flower",
                               f"--port={port}"], settings)
    base = f"http://127.0.0.1:{port}"

    def page(path: str) -> str:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            return ""  # not serving yet

    # Flower learns the workers from their events and its inspect calls, and the queues
    # of its Broker page from the workers' replies (each asked with a 1 s timeout, which
    # a loaded machine can miss: the page is asked again until it lists them).
    wait_for(lambda: all(f"{name}@" in page("/workers") for name in workers), timeout=30,
             what="Flower listing both workers")
    wait_for(lambda: all(f"client.{client}" in page("/broker") for client in clients),
             timeout=30, what="Flower's Broker page listing both client queues")
    ARTIFACTS.mkdir(exist_ok=True)

    broker_dom = _browse(tmp_path, base + "/broker", "--dump-dom")
    for client in clients:
        assert f"client.{client}" in broker_dom, "the Broker page lists every client queue"
    workers_dom = _browse(tmp_path, base + "/workers", "--dump-dom")
    for name in workers:
        assert f"{name}@" in workers_dom, "the Workers page lists every client's worker"
    worker_dom = _browse(tmp_path, f"{base}/worker/{workers[0]}@{socket.gethostname()}",
                         "--dump-dom")
    assert f"client.{clients[0]}" in worker_dom, "a worker's page names the queue it consumes"

    for path, name in (("/broker", "flower-broker.png"), ("/workers", "flower-workers.png")):
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        _browse(tmp_path, base + path, f"--screenshot={shot}", "--window-size=1280,800")
        assert shot.stat().st_size > 10_000, f"{shot} is not a real screenshot"
