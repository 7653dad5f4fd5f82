"""Classify one Kafka record: which client and kind it is, or why it is rejected.

Pure: no I/O. Whether the client is registered is the runner's business (it needs the
registry); everything that can be decided from the record alone is decided here.
A record's JSON is parsed once to validate it, and then travels on as the producer's
own bytes whenever nothing had to change — re-encoding is the bridge's largest cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import simdjson

from kgcelery.clients import RecordKey, parse_key
from kgcelery.errors import BadKeyError, InvalidClientIdError, RejectedRecordError

#: Kinds whose null value (a Kafka tombstone) is meaningful.
TOMBSTONE_KINDS = frozenset({"resource", "registry"})
#: Webhook fields worth keeping on each alert when a payload is exploded.
_WEBHOOK_CONTEXT = ("receiver", "groupKey", "externalURL")
_CLIENT_ID_FIELD = b'"client_id"'
# Validates without building Python objects; reused (the bridge routes in one thread).
_validator = simdjson.Parser()
NULL = b"null"


@dataclass(frozen=True, slots=True)
class Routed:
    """A record accepted for routing, without a client id of its own.

    ``payloads`` holds the JSON of one value, or of several when one Kafka record
    carries several (an Alertmanager webhook payload is exploded into its alerts);
    they travel in one batch so that the record's offset is finished only when all
    of them are.
    """

    client_id: str
    kind: str
    entity: str
    payloads: tuple[bytes, ...]
    size: int

    def values(self) -> list[Any]:
        return [orjson.loads(payload) for payload in self.payloads]


def explode_alerts(value: Any) -> list[Any] | None:
    """A webhook payload (``alerts`` list) or an API v2 list into single alerts.

    None when ``value`` is a single alert already.
    """
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and isinstance(value.get("alerts"), list):
        context = {name: value[name] for name in _WEBHOOK_CONTEXT if name in value}
        return [{**context, **alert} if isinstance(alert, dict) else alert
                for alert in value["alerts"]]
    return None


#: Valid client prefixes seen so far: keys of one client repeat endlessly, so each
#: prefix is validated once. Bounded: cleared when it grows past _PREFIXES_KEPT.
_valid_prefixes: dict[bytes, str] = {}
_PREFIXES_KEPT = 100_000


def parse_record_key(key: bytes | None) -> RecordKey:
    """:func:`kgcelery.clients.parse_key`, with each client prefix validated once."""
    if key is not None:
        prefix, separator, entity = key.partition(b"::")
        client_id = _valid_prefixes.get(prefix)
        if client_id is not None and separator:
            return RecordKey(client_id, entity.decode("utf-8", "replace"))
    parsed = parse_key(key)  # validates, or raises the precise error
    if len(_valid_prefixes) >= _PREFIXES_KEPT:
        _valid_prefixes.clear()
    _valid_prefixes[parsed.client_id.encode()] = parsed.client_id
    return parsed


def _is_json(value: bytes) -> bool:
    try:
        _validator.parse(value, False)
    except (ValueError, RuntimeError):  # RuntimeError: a parser still in use; not here
        return False
    return True


def classify(topic: str, key: bytes | None, value: bytes | None, *,
             kinds: Mapping[str, str], max_value_bytes: int) -> Routed:
    """Route a record or raise :class:`RejectedRecordError` with a stable reason code."""
    kind = kinds.get(topic)
    if kind is None:
        raise RejectedRecordError("unknown-topic", f"topic {topic!r} is not in KGCELERY_TOPICS")
    try:
        parsed = parse_record_key(key)
    except InvalidClientIdError as exc:
        raise RejectedRecordError("invalid-client-id", str(exc)) from exc
    except BadKeyError as exc:
        raise RejectedRecordError("bad-key", str(exc)) from exc
    size = len(value) if value is not None else 0
    if size > max_value_bytes:
        raise RejectedRecordError(
            "oversized",
            f"value of {size} bytes exceeds KGCELERY_MAX_VALUE_BYTES={max_value_bytes}")
    if value is None:
        if kind not in TOMBSTONE_KINDS:
            raise RejectedRecordError("undecodable-json", f"null value on a {kind} topic")
        return Routed(parsed.client_id, kind, parsed.entity, (NULL,), 0)
    needs_content = kind == "alert" or _CLIENT_ID_FIELD in value
    if needs_content or not _is_json(value):
        # orjson decides (and words the error) whenever simdjson refused.
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RejectedRecordError("undecodable-json", f"value is not JSON: {exc}") from exc
    payload = value
    if not needs_content:
        return Routed(parsed.client_id, kind, parsed.entity, (payload,), size)
    if isinstance(decoded, dict) and "client_id" in decoded:
        # Older agents repeat the client in the payload: fine if it agrees, never kept.
        claimed = decoded.pop("client_id")
        if claimed != parsed.client_id:
            raise RejectedRecordError(
                "client-id-mismatch",
                f"payload client_id {str(claimed)[:64]!r} disagrees with key client "
                f"{parsed.client_id!r}")
        payload = orjson.dumps(decoded)
    if kind == "alert":
        alerts = explode_alerts(decoded)
        if alerts is not None:
            return Routed(parsed.client_id, kind, parsed.entity,
                          tuple(orjson.dumps(alert) for alert in alerts), size)
    return Routed(parsed.client_id, kind, parsed.entity, (payload,), size)
