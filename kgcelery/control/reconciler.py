"""The reconciler: makes actual workers = desired workers through a scaler backend.

Beat decides (``desired_workers`` in the registry); the reconciler acts. Where it runs
depends on the backend:

- ``local``: the scaler owns worker subprocesses, so the reconciler lives in a
  long-lived process: ``kgcelery up``'s supervisor loop, or ``kgcelery reconcile``.
- ``celery`` / ``kubernetes``: the state lives in the workers or the cluster, so one
  pass holds nothing; beat runs ``kgcelery.reconcile_worker_pools`` on the ``control``
  queue every ``RECONCILE_INTERVAL_S`` (which is also what re-asserts runtime queues
  on a fleet worker that restarted), and ``kgcelery reconcile`` can run it by hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import redis
from celery import Celery

from kgcelery.control.registry import Registry
from kgcelery.control.scalers.base import Scaler
from kgcelery.control.scalers.local import LocalScaler
from kgcelery.control.scalers.local_fleet import LocalFleetScaler, default_fleet_size
from kgcelery.control.workermode import FLEET, resolve_worker_mode
from kgcelery.settings import Settings

log = logging.getLogger(__name__)


def make_scaler(settings: Settings, *, app: Celery | None = None) -> Scaler:
    """The scaler backend that ``SCALER_BACKEND`` names, for ``celery`` and
    ``kubernetes``; the ``local`` one holds processes and is :func:`local_scaler`'s."""
    if settings.scaler_backend == "local":
        raise ValueError("the local scaler's workers live in the process that runs it: "
                         "use local_scaler() (kgcelery up, kgcelery reconcile)")
    if settings.scaler_backend == "celery":
        from kgcelery.app import create_app
        from kgcelery.control.scalers.fleet import FleetScaler

        return FleetScaler(app or create_app(settings), pattern=settings.fleet_worker_pattern,
                           timeout=settings.inspect_timeout_s)
    from kgcelery.control.scalers.k8s import KubernetesScaler

    return KubernetesScaler.from_settings(settings)


def local_scaler(settings: Settings, registry: Registry, state_dir: Path
                 ) -> tuple[Settings, LocalScaler | LocalFleetScaler]:
    """The local workers for the mode that ``WORKER_MODE`` resolves to now (``auto``:
    from the clients registered), and the settings of the processes started with them
    (the mode resolved; on a fleet, no client wants more workers than it has)."""
    registered = len(registry.registered_ids()) if settings.worker_mode == "auto" else 0
    mode = resolve_worker_mode(settings.worker_mode, registered=registered,
                               threshold=settings.fleet_threshold)
    run_dir, log_dir = state_dir / "run", state_dir / "logs"
    if mode != FLEET:
        settings = settings.model_copy(update={"scaler_backend": "local",
                                               "worker_mode": mode})
        return settings, LocalScaler(settings, run_dir=run_dir, log_dir=log_dir)
    size = default_fleet_size(settings)
    settings = settings.model_copy(update={
        "scaler_backend": "local", "worker_mode": mode, "fleet_size": size,
        "scale_max_workers": min(settings.scale_max_workers, size),
        "scale_min_workers": min(settings.scale_min_workers, size)})
    from kgcelery.app import create_app

    return settings, LocalFleetScaler(settings, create_app(settings), size=size,
                                      run_dir=run_dir, log_dir=log_dir)


class Reconciler:
    """One pass: read the desired counts, hand them to the scaler, return what it manages."""

    def __init__(self, registry: Registry, scaler: Scaler) -> None:
        self.registry = registry
        self.scaler = scaler

    def desired(self) -> dict[str, int]:
        """Desired workers per client; a client beat has not sized yet wants none."""
        return {record.client_id: record.desired_workers or 0 for record in self.registry.all()}

    def reconcile(self) -> dict[str, int]:
        return self.scaler.apply(self.desired())


def reconcile_until(stop: threading.Event, reconciler: Reconciler, interval: float, *,
                    once: bool = False, each_pass: Callable[[], None] | None = None) -> None:
    """Reconcile every ``interval`` s until ``stop`` (once with ``once``), then run
    ``each_pass`` (which must handle its own errors); Redis away is waited out."""
    while True:
        try:
            log.debug("workers per client: %s", reconciler.reconcile())
        except redis.ConnectionError as exc:
            log.warning("the registry's Redis is unreachable (%s); retrying", exc)
        if each_pass is not None:
            each_pass()
        if once or stop.wait(interval):
            break


def run_reconciler(settings: Settings, stop: threading.Event, *, once: bool = False) -> None:
    """``kgcelery reconcile``: reconcile every ``RECONCILE_INTERVAL_S`` until ``stop``."""
    registry = Registry.from_url(settings.registry_url)
    scaler: Scaler
    if settings.scaler_backend == "local":
        resolved, scaler = local_scaler(settings, registry, Path(settings.state_dir).resolve())
        if settings.worker_mode == "auto" and resolved.worker_mode == FLEET:
            # Beat sizes per-client pools unless it is told the mode too.
            log.warning("KGCELERY_WORKER_MODE=auto runs a fleet here (more clients "
                        "registered than KGCELERY_FLEET_THRESHOLD=%d): give beat "
                        "KGCELERY_WORKER_MODE=fleet as well", settings.fleet_threshold)
    else:
        scaler = make_scaler(settings)
    reconciler = Reconciler(registry, scaler)
    metrics_server = None
    if settings.control_metrics_port and not once:
        from kgcelery.control.metrics import serve_metrics

        metrics_server = serve_metrics(settings, registry)
    log.info("reconciler running (backend %s, every %g s)", scaler.name,
             settings.reconcile_interval_s)
    try:
        reconcile_until(stop, reconciler, settings.reconcile_interval_s, once=once)
    finally:
        # The local backend stops its workers here (warm shutdown); others hold nothing.
        scaler.close()
        registry.close()
        if metrics_server is not None:
            metrics_server.shutdown()
