"""The ``local`` scaler: Celery worker subprocesses on this host, one set per client.

Each worker is ``celery -A kgcelery.app worker -Q client.<id>``; a worker that dies is
started again; one that is no longer wanted gets SIGTERM (Celery's warm shutdown: the
task in flight finishes, or is redelivered thanks to late acks).
"""

from __future__ import annotations

import logging
import signal
import sys
import time
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
    """Runs worker subprocesses; :meth:`apply` sets how many each client has.

    It holds the processes, so it lives inside a long-lived process: the supervisor of
    ``kgcelery up`` or ``kgcelery reconcile``. Workers get SIGTERM if that process dies
    (PDEATHSIG), so none outlives it.

    A worker no longer wanted gets SIGTERM and is left to finish its task while the
    passes go on (killed after ``TASK_TIME_LIMIT_S`` + 10 s): waiting for each warm
    shutdown in turn held every other client's start behind them (six idle clients'
    stops, ~2 s each, delayed a woken client's worker by 12 s: bench/wake.py). The
    budget still holds: a worker starts only while those running and those stopping
    are fewer than the larger of ``SCALE_GLOBAL_MAX_WORKERS`` and the workers wanted
    (pins may ask for more); the others start at a later pass, as stops end.
    """

    name = "local"

    def __init__(self, settings: Settings, *, run_dir: Path, log_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.log_dir = log_dir
        self._workers: dict[str, list[ManagedProcess]] = {}
        #: Workers told to stop, and when they get killed if still running.
        self._stopping: list[tuple[ManagedProcess, float]] = []

    def actual(self) -> dict[str, int]:
        """Live workers per client (not those stopping)."""
        return {client: sum(w.alive() for w in workers)
                for client, workers in self._workers.items() if workers}

    def processes(self) -> int:
        """Worker processes alive, running or stopping."""
        return (sum(w.alive() for workers in self._workers.values() for w in workers)
                + sum(w.alive() for w, _ in self._stopping))

    def scale(self, client_id: str, count: int, *, room: int | None = None) -> int:
        """Move the client towards ``count`` workers: start up to ``room`` more (None: no
        limit), tell the surplus to stop without waiting; return how many started."""
        validate_client_id(client_id)
        workers = self._workers.setdefault(client_id, [])
        started = 0
        while len(workers) < count and (room is None or started < room):
            # A stopping worker of this client may still hold its name (and pid file).
            held = {w.name for w in workers} | {w.name for w, _ in self._stopping}
            index = next(i for i in range(1, len(held) + 2)
                         if f"worker-{client_id}-{i}" not in held)
            worker = ManagedProcess(f"worker-{client_id}-{index}",
                                    worker_argv(client_id, index, self.settings),
                                    run_dir=self.run_dir, log_dir=self.log_dir,
                                    env=self.settings.child_env())
            worker.start()
            log.info("started worker %d of %s (pid %s)", index, client_id, worker.pid)
            workers.append(worker)
            started += 1
        kill_at = time.monotonic() + self.settings.task_time_limit_s + 10
        while len(workers) > count:
            worker = workers.pop()
            log.info("stopping %s (warm shutdown)", worker.name)
            worker.send_signal(signal.SIGTERM)
            self._stopping.append((worker, kill_at))
        return started

    def apply(self, desired: Mapping[str, int]) -> dict[str, int]:
        """Scale every client to its desired count (0 if absent); restart dead workers.
        Stops first, then starts within the budget (see the class docstring)."""
        self._reap()
        clients = sorted(set(desired) | set(self._workers))
        for client_id in clients:
            if desired.get(client_id, 0) < len(self._workers.get(client_id, [])):
                self._scale_logged(client_id, desired.get(client_id, 0))
        budget = max(self.settings.scale_global_max_workers, sum(desired.values()))
        room = budget - self.processes()
        for client_id in clients:
            if room <= 0:
                break
            if desired.get(client_id, 0) > len(self._workers.get(client_id, [])):
                room -= self._scale_logged(client_id, desired[client_id], room=room)
        self.restart_dead()
        return self.actual()

    def _scale_logged(self, client_id: str, count: int, *, room: int | None = None) -> int:
        try:
            return self.scale(client_id, count, room=room)
        except StackError as exc:
            # A worker left by an earlier run holds the pid file: say so, go on.
            log.error("cannot scale %s: %s", client_id, exc)
            return 0

    def _reap(self) -> None:
        """Forget the stopped workers (their pid files too); kill those past their time."""
        now, still = time.monotonic(), []
        for worker, kill_at in self._stopping:
            if worker.alive() and now < kill_at:
                still.append((worker, kill_at))
                continue
            if worker.alive():
                log.warning("%s still running %.0f s after SIGTERM; killing it", worker.name,
                            self.settings.task_time_limit_s + 10)
            worker.stop(timeout=0.1)  # gone: its group and pid file; else killed
        self._stopping = still

    def close(self) -> None:
        self.stop_all()

    def restart_dead(self) -> list[str]:
        """Start again every worker that exited on its own; return their names."""
        return restart_dead(w for workers in self._workers.values() for w in workers)

    def stop_all(self) -> None:
        """Warm-shut-down every worker at once (and those already stopping), then wait
        for each."""
        stop_together([*(w for workers in self._workers.values() for w in workers),
                       *(w for w, _ in self._stopping)],
                      timeout=self.settings.task_time_limit_s + 10)
        self._workers.clear()
        self._stopping.clear()
