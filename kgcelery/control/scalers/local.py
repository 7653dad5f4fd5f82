"""The ``local`` scaler: Celery worker subprocesses on this host, one set per client.

Each worker is ``celery -A kgcelery.app worker -Q client.<id>``; a worker that dies is
started again; one that is no longer wanted gets SIGTERM (Celery's warm shutdown: the
task in flight finishes, or is redelivered thanks to late acks).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from kgcelery.clients import queue_for, validate_client_id
from kgcelery.embedded.process import ManagedProcess, restart_dead, stop_together
from kgcelery.errors import StackError
from kgcelery.settings import Settings

log = logging.getLogger(__name__)


def worker_argv(client_id: str, index: int, settings: Settings) -> list[str]:
    """The command line of one worker of a client, at ``KGCELERY_WORKER_NICE``: on two
    cores, a loud client's workers at the bridge's priority pushed the quiet clients'
    p99 latency to 2.1 s once in six runs; niced by 5, 1.0-1.1 s (docs/BENCHMARKS.md)."""
    nice = ["nice", "-n", str(settings.worker_nice)] if settings.worker_nice else []
    return [*nice, sys.executable, "-m", "celery", "-A", "kgcelery.app", "worker",
            "-Q", queue_for(client_id), "-n", f"{client_id}-{index}@%h",
            "--concurrency", str(settings.worker_concurrency), "--loglevel", "INFO",
            "--without-mingle", "--without-gossip"]


class LocalScaler:
    """Runs worker subprocesses; :meth:`scale` sets how many a client has.

    It holds the processes, so it lives inside a long-lived process: the supervisor of
    ``kgcelery up`` or ``kgcelery reconcile``. Workers get SIGTERM if that process dies
    (PDEATHSIG), so none outlives it.
    """

    name = "local"

    def __init__(self, settings: Settings, *, run_dir: Path, log_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.log_dir = log_dir
        self._workers: dict[str, list[ManagedProcess]] = {}

    def actual(self) -> dict[str, int]:
        """Live workers per client."""
        return {client: sum(w.alive() for w in workers)
                for client, workers in self._workers.items() if workers}

    def scale(self, client_id: str, count: int) -> None:
        """Make ``count`` workers consume the client's queue (start or stop the difference)."""
        validate_client_id(client_id)
        workers = self._workers.setdefault(client_id, [])
        while len(workers) < count:
            index = len(workers) + 1
            worker = ManagedProcess(f"worker-{client_id}-{index}",
                                    worker_argv(client_id, index, self.settings),
                                    run_dir=self.run_dir, log_dir=self.log_dir,
                                    env=self.settings.child_env())
            worker.start()
            log.info("started worker %d of %s (pid %s)", index, client_id, worker.pid)
            workers.append(worker)
        surplus = []
        while len(workers) > count:
            surplus.append(workers.pop())
            log.info("stopping %s (warm shutdown)", surplus[-1].name)
        stop_together(surplus, timeout=self.settings.task_time_limit_s + 10)

    def apply(self, desired: Mapping[str, int]) -> dict[str, int]:
        """Scale every client to its desired count (0 if absent); restart dead workers.
        Shrinks first, then grows: a client's turn handed to another never has both
        running at once, so no more workers run than the budget beat planned."""
        clients = sorted(set(desired) | set(self._workers))
        for grow in (False, True):
            for client_id in clients:
                wanted = desired.get(client_id, 0)
                if (wanted > len(self._workers.get(client_id, []))) is not grow:
                    continue
                try:
                    self.scale(client_id, wanted)
                except StackError as exc:
                    # A worker left by an earlier run holds the pid file: say so, go on.
                    log.error("cannot scale %s: %s", client_id, exc)
        self.restart_dead()
        return self.actual()

    def close(self) -> None:
        self.stop_all()

    def restart_dead(self) -> list[str]:
        """Start again every worker that exited on its own; return their names."""
        return restart_dead(w for workers in self._workers.values() for w in workers)

    def stop_all(self) -> None:
        """Warm-shut-down every worker at once, then wait for each."""
        stop_together([w for workers in self._workers.values() for w in workers],
                      timeout=self.settings.task_time_limit_s + 10)
        self._workers.clear()
