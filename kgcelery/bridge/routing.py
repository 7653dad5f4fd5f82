"""Classify one Kafka record: which client and kind it is, or why it is rejected.

Pure: no I/O. Whether the client is registered is the runner's business (it needs the
registry); everything that can be decided from the record alone is decided here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kgcelery.clients import parse_key
from kgcelery.errors import BadKeyError, InvalidClientIdError, RejectedRecordError

#: Kinds whose null value (a Kafka tombstone) is meaningful.
TOMBSTONE_KINDS = frozenset({"resource", "registry"})


@dataclass(frozen=True, slots=True)
class Routed:
    """A record accepted for routing: decoded, without a client id of its own."""

    client_id: str
    kind: str
    entity: str
    value: Any
    size: int


def classify(topic: str, key: bytes | None, value: bytes | None, *,
             kinds: Mapping[str, str], max_value_bytes: int) -> Routed:
    """Route a record or raise :class:`RejectedRecordError` with a stable reason code."""
    kind = kinds.get(topic)
    if kind is None:
        raise RejectedRecordError("unknown-topic", f"topic {topic!r} is not in KGCELERY_TOPICS")
    try:
        parsed = parse_key(key)
    except InvalidClientIdError as exc:
        raise RejectedRecordError("invalid-client-id", str(exc)) from exc
    except BadKeyError as exc:
        raise RejectedRecordError("bad-key", str(exc)) from exc
    size = len(value) if value is not None else 0
    if size > max_value_bytes:
        raise RejectedRecordError(
            "oversized", f"value of {size} bytes exceeds KGCELERY_MAX_VALUE_BYTES={max_value_bytes}")
    if value is None:
        if kind not in TOMBSTONE_KINDS:
            raise RejectedRecordError("undecodable-json", f"null value on a {kind} topic")
        return Routed(parsed.client_id, kind, parsed.entity, None, 0)
    try:
        decoded = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RejectedRecordError("undecodable-json", f"value is not JSON: {exc}") from exc
    if isinstance(decoded, dict) and "client_id" in decoded:
        # Older agents repeat the client in the payload: fine if it agrees, never kept.
        claimed = decoded.pop("client_id")
        if claimed != parsed.client_id:
            raise RejectedRecordError(
                "client-id-mismatch",
                f"payload client_id {str(claimed)[:64]!r} disagrees with key client "
                f"{parsed.client_id!r}")
    return Routed(parsed.client_id, kind, parsed.entity, decoded, size)
