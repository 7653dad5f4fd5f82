"""The ``local`` fleet: generic worker subprocesses on this host, client queues handed
to them by the fleet scaler.

``kgcelery up`` in fleet mode (``KGCELERY_WORKER_MODE``) runs ``size`` workers named
``fleet-<n>@<host>``, each started on :data:`FLEET_IDLE_QUEUE` only; every pass restarts
the ones that died and lets :class:`FleetScaler` (Celery remote control) make the client
queues they consume match beat's decisions. A worker that restarted comes back with its
idle queue only; the next pass gives it its client queues again. Workers get SIGTERM if
the process holding this dies (PDEATHSIG), as the local scaler's do.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from celery import Celery

from kgcelery.control.scalers.fleet import FLEET_IDLE_QUEUE, FleetScaler
from kgcelery.embedded.process import ManagedProcess, restart_dead, stop_together
from kgcelery.settings import Settings

log = logging.getLogger(__name__)


def default_fleet_size(settings: Settings, cpus: int | None = None) -> int:
    """``FLEET_SIZE``, or one worker per CPU core (at least 2, so that one long task
    does not hold every queue), never more than ``SCALE_GLOBAL_MAX_WORKERS``."""
    if settings.fleet_size:
        return settings.fleet_size
    cores = cpus if cpus is not None else os.cpu_count() or 1
    return max(1, min(max(cores, 2), settings.scale_global_max_workers))


def fleet_worker_argv(index: int, settings: Settings) -> list[str]:
    """The command line of fleet worker ``index``, niced as the client workers are."""
    nice = ["nice", "-n", str(settings.worker_nice)] if settings.worker_nice else []
    return [*nice, sys.executable, "-m", "celery", "-A", "kgcelery.app", "worker",
            "-Q", FLEET_IDLE_QUEUE, "-n", f"fleet-{index}@%h",
            "--concurrency", str(settings.worker_concurrency), "--loglevel", "INFO",
            "--without-mingle", "--without-gossip"]


class LocalFleetScaler:
    """Runs ``size`` fleet workers here; :meth:`apply` assigns the client queues."""

    name = "local-fleet"

    def __init__(self, settings: Settings, app: Celery, *, size: int, run_dir: Path,
                 log_dir: Path) -> None:
        if size < 1:
            raise ValueError("a fleet needs at least one worker")
        self.settings = settings
        self.size = size
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.assigner = FleetScaler(app, pattern="fleet-*@*",
                                    timeout=settings.inspect_timeout_s)
        self.workers: list[ManagedProcess] = []
        self._actual: dict[str, int] = {}

    def start(self) -> None:
        """Start the workers that are not running yet."""
        while len(self.workers) < self.size:
            index = len(self.workers) + 1
            worker = ManagedProcess(f"fleet-{index}", fleet_worker_argv(index, self.settings),
                                    run_dir=self.run_dir, log_dir=self.log_dir,
                                    env=self.settings.child_env())
            worker.start()
            log.info("started fleet worker %d (pid %s)", index, worker.pid)
            self.workers.append(worker)

    def alive(self) -> int:
        """Fleet workers running now."""
        return sum(worker.alive() for worker in self.workers)

    def actual(self) -> dict[str, int]:
        """Fleet workers consuming each client's queue, as of the last pass."""
        return dict(self._actual)

    def apply(self, desired: Mapping[str, int]) -> dict[str, int]:
        self.start()
        restart_dead(self.workers)
        self._actual = self.assigner.apply(desired)
        return self.actual()

    def close(self) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        """Warm-shut-down every fleet worker at once, then wait for each."""
        stop_together(self.workers, timeout=self.settings.task_time_limit_s + 10)
        self.workers.clear()
        self.assigner.app.close()
