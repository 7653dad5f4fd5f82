"""Control-plane tasks that beat schedules on the ``control`` queue."""

from __future__ import annotations

import logging
import time

from kgcelery.app import app, settings
from kgcelery.control.expiry import is_expired
from kgcelery.control.registry import ACTIVE, STALE, Registry

log = logging.getLogger(__name__)

_registry: Registry | None = None


def registry() -> Registry:
    """The registry of this worker process (one connection pool per process)."""
    global _registry
    if _registry is None:
        _registry = Registry.from_url(settings.registry_url)
    return _registry


@app.task(name="kgcelery.expire_stale_clients", ignore_result=True)
def expire_stale_clients() -> list[str]:
    """Mark active clients with no heartbeat for ``heartbeat_ttl_s`` as stale."""
    now = time.time()
    expired = []
    for record in registry().all():
        if record.state == ACTIVE and is_expired(now, record.last_seen, settings.heartbeat_ttl_s):
            registry().set_state(record.client_id, STALE, reason="no heartbeat", now=now)
            expired.append(record.client_id)
    return expired
