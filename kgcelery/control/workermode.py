"""Per-client workers or a shared fleet: what ``KGCELERY_WORKER_MODE`` resolves to.

A worker process of a client's own costs ~170 MB whether the client sends much or
little, and past ``SCALE_GLOBAL_MAX_WORKERS`` clients with work take turns for one; a
fleet of a few generic workers consumes any number of client queues, shared fairly
(the transport takes from its queues in turn). So ``auto`` runs per-client workers up
to ``FLEET_THRESHOLD`` registered clients and a fleet beyond. ``kgcelery up`` decides
once, at start: switching live would have a client's queue consumed by both kinds of
worker while one set stops and the other starts, for no gain a restart does not give.
"""

from __future__ import annotations

from typing import Literal

WorkerMode = Literal["per-client", "fleet"]
PER_CLIENT: WorkerMode = "per-client"
FLEET: WorkerMode = "fleet"


def resolve_worker_mode(mode: str, *, registered: int, threshold: int) -> WorkerMode:
    """The mode to run: ``mode`` itself, or for ``auto`` the fleet once more than
    ``threshold`` clients are registered."""
    if mode == PER_CLIENT:
        return PER_CLIENT
    if mode == FLEET:
        return FLEET
    if mode != "auto":
        raise ValueError(f"unknown worker mode {mode!r}: auto, per-client or fleet")
    return FLEET if registered > threshold else PER_CLIENT
