"""Registry and heartbeat records: applied to the Redis registry by the bridge itself."""

from __future__ import annotations

import time
from typing import Any

from kgcelery.control.registry import Registry
from kgcelery.errors import RejectedRecordError
from kgcelery.normalize.timeparse import first_epoch


def apply_registry(registry: Registry, client_id: str, value: Any) -> None:
    """A registration, or a tombstone (None) that deregisters the client."""
    if value is None:
        registry.deregister(client_id)
        return
    if not isinstance(value, dict):
        raise RejectedRecordError("bad-registry-record", "a registration must be a JSON object")
    metadata = value.get("metadata")
    registry.register(
        client_id,
        cluster_name=str(value.get("cluster_name") or ""),
        version=str(value.get("version") or ""),
        metadata=metadata if isinstance(metadata, dict) else {},
        registered_at=first_epoch(value.get("registered_at")),
    )


def apply_heartbeat(registry: Registry, client_id: str, value: Any,
                    now: float | None = None) -> None:
    """A heartbeat: the client was seen now (our clock, not the client's)."""
    if not registry.heartbeat(client_id, time.time() if now is None else now):
        raise RejectedRecordError("unregistered-client",
                                  f"heartbeat of client {client_id!r}, which is not registered")
