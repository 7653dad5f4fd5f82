"""Registry and heartbeat records: applied to the Redis registry by the bridge itself.

A registration carries the fields the agent charts write (``AGENT_FORMATS.md`` rows 1
and 2): ``cluster_name``; ``version`` or ``chart_version``; ``registered_at`` or
``timestamp`` (the client's clock); ``region``; ``metadata``. Fields kgcelery does not
know are kept in the metadata, never refused: newer charts add fields.
"""

from __future__ import annotations

import time
from typing import Any

from kgcelery.control.registry import Registry
from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import first_epoch

#: The registration fields read into the registry's own fields.
REGISTRATION_FIELDS = frozenset({"client_id", "cluster_name", "version", "chart_version",
                                 "registered_at", "timestamp", "region", "metadata"})


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def apply_registry(registry: Registry, client_id: str, value: Any) -> None:
    """A registration, or a tombstone (None) that deregisters the client."""
    if value is None:
        registry.deregister(client_id)
        return
    if not isinstance(value, dict):
        raise RejectedRecordError("bad-registry-record", "a registration must be a JSON object",
                                  client_id=client_id)
    metadata = value.get("metadata")
    unknown = {name: field for name, field in value.items() if name not in REGISTRATION_FIELDS}
    registry.register(
        client_id,
        cluster_name=_text(value.get("cluster_name")),
        version=_text(value.get("version") or value.get("chart_version")),
        region=_text(value.get("region")),
        metadata={**unknown, **(metadata if isinstance(metadata, dict) else {})},
        registered_at=first_epoch(value.get("registered_at"), value.get("timestamp")),
    )


def apply_heartbeat(registry: Registry, client_id: str, value: Any,
                    now: float | None = None) -> None:
    """A heartbeat: the client was seen now (our clock, not the client's).

    Its content (the state-watcher's ``status`` and ``metrics``) is not needed to know
    that the client is alive, and is not judged.
    """
    if not registry.heartbeat(client_id, time.time() if now is None else now):
        raise RejectedRecordError("unregistered-client",
                                  f"heartbeat of client {client_id!r}, which is not registered",
                                  client_id=client_id)
