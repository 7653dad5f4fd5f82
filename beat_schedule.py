"""The beat schedule of kgcelery; ``kgcelery.app`` loads it.

Every entry runs on the ``control`` queue and carries ``expires``, so that runs do
not pile up while the control worker is down: a late run is dropped, the next one
comes soon enough. Beat only triggers; the tasks gather inputs, ask the pure
decision functions and record the answers (``kgcelery/control/tasks.py``).
"""

from __future__ import annotations

from typing import Any

from kgcelery.clients import CONTROL_QUEUE
from kgcelery.settings import Settings


def _entry(task: str, interval: float) -> dict[str, Any]:
    return {"task": task, "schedule": interval,
            "options": {"queue": CONTROL_QUEUE, "expires": interval}}


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    schedule = {
        # Heartbeat expiry: stale after HEARTBEAT_TTL_S, retired once drained.
        "expire-stale-clients": _entry("kgcelery.expire_stale_clients",
                                       settings.expiry_interval_s),
        # Desired workers per client from queued + in-flight work, pins and the policy.
        "scale-worker-pools": _entry("kgcelery.scale_worker_pools", settings.scale_interval_s),
    }
    if settings.scaler_backend != "local":
        # Fleet and cluster reconcile from a task; it also re-adds queues that a fleet
        # worker lost when it restarted. The local backend reconciles in its own process.
        schedule["reconcile-worker-pools"] = _entry("kgcelery.reconcile_worker_pools",
                                                    settings.reconcile_interval_s)
    return schedule
