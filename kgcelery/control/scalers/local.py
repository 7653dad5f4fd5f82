"""The ``local`` scaler: Celery worker subprocesses on this host, one set per client.

Each worker is ``celery -A kgcelery.app worker -Q client.<id>``; a worker that dies is
started again; one that is no longer wanted gets SIGTERM (Celery's warm shutdown: the
task in flight finishes, or is redelivered thanks to late acks).
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from kgcelery.clients import queue_for, validate_client_id
from kgcelery.embedded.process import ManagedProcess
from kgcelery.settings import Settings

log = logging.getLogger(__name__)


def worker_argv(client_id: str, index: int, settings: Settings) -> list[str]:
    """The command line of one worker of a client."""
    return [sys.executable, "-m", "celery", "-A", "kgcelery.app", "worker",
            "-Q", queue_for(client_id), "-n", f"{client_id}-{index}@%h",
            "--concurrency", str(settings.worker_concurrency), "--loglevel", "INFO",
            "--without-mingle", "--without-gossip"]


class LocalScaler:
    """Runs worker subprocesses; :meth:`scale` sets how many a client has."""

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
        while len(workers) > count:
            worker = workers.pop()
            log.info("stopping %s (warm shutdown)", worker.name)
            worker.stop(timeout=60)

    def restart_dead(self) -> list[str]:
        """Start again every worker that exited on its own; return their names."""
        restarted = []
        for workers in self._workers.values():
            for worker in workers:
                if not worker.alive():
                    log.warning("%s exited (code %s); starting it again", worker.name,
                                worker.returncode())
                    worker.start()
                    restarted.append(worker.name)
        return restarted

    def stop_all(self) -> None:
        """Warm-shut-down every worker at once, then wait for each."""
        every = [worker for workers in self._workers.values() for worker in workers]
        for worker in every:
            worker.send_signal(signal.SIGTERM)
        for worker in every:
            worker.stop(timeout=60)
        self._workers.clear()
