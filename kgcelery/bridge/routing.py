"""Classify one Kafka record: which client and kind it is, or why it is rejected.

Pure: no I/O. Whether the client is registered is the runner's business (it needs the
registry); everything that can be decided from the record alone is decided here.
A record's JSON is parsed once to validate it, and then travels on as the producer's
own bytes whenever nothing had to change — re-encoding is the bridge's largest cost.

Keys: data records name their client as ``<client>::<entity>``; control records
(registry, heartbeat) by the bare client id or ``<client>::<anything>``, as the agents
send them (:func:`kgcelery.clients.parse_control_key`). One compatibility rule: the
agent chart's register-cluster-job pipes its JSON line through ``kcat -K:``, which splits
it at the first ``:`` (key ``{"client_id"``, value the rest); when key + ``:`` + value is
a JSON object whose ``client_id`` is a valid id, that object is the registration
(:attr:`Routed.kcat_joined`; the bridge counts and logs it).

Topics that name their client (``KGCELERY_CLIENT_TOPICS``, :mod:`kgcelery.client_topics`)
carry keys that need not: there the topic names the client, and a key's ``<client>::``
prefix, where it has one, must be the same client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import simdjson

from kgcelery.client_topics import ClientTopics
from kgcelery.clients import (
    CLIENT_ID_PATTERN,
    KEY_SEPARATOR,
    RecordKey,
    parse_control_key,
    parse_key,
    validate_client_id,
)
from kgcelery.errors import BadKeyError, InvalidClientIdError, RejectedRecordError

#: Kinds the bridge applies to the registry itself instead of publishing as tasks.
CONTROL_KINDS = frozenset({"registry", "heartbeat"})
#: Kinds whose null value (a Kafka tombstone) is meaningful: a deregistration, or the
#: deletion of the object, edge or target the key names (handled by the worker).
TOMBSTONE_KINDS = frozenset({"resource", "registry", "topology", "target"})
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
    #: A control record whose JSON line kcat split at its first ':' (see the module).
    kcat_joined: bool = False

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
            try:
                return RecordKey(client_id, entity.decode("utf-8"))
            except UnicodeDecodeError:
                pass  # not UTF-8: parse_key refuses it, whatever the cache holds
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


def _json(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RejectedRecordError("undecodable-json", f"value is not JSON: {exc}") from exc


def kcat_joined(key: bytes | None, value: bytes | None) -> dict[str, Any] | None:
    """The object a ``kcat -K:`` split apart, if key + ``:`` + value is one with a valid
    ``client_id``; else None."""
    if not key or not value or not key.startswith(b"{"):
        return None
    try:
        joined = orjson.loads(key + b":" + value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(joined, dict):
        claimed = joined.get("client_id")
        if isinstance(claimed, str) and CLIENT_ID_PATTERN.fullmatch(claimed):
            return joined
    return None


def _control_key_error(key: bytes | None, error: BadKeyError) -> RejectedRecordError:
    if key is not None and key.startswith(b"{"):
        return RejectedRecordError(
            "bad-key", f"key {key[:64]!r} is the start of a JSON line that kcat -K: split at "
            "its first ':', and key + ':' + value is not a JSON object with a valid "
            "client_id; fix the chart: send the JSON with kcat -K:: (or without -K) and "
            "-k <client>, so that the key is the client id and the value the whole line")
    return RejectedRecordError("bad-key", str(error))


def classify_control(kind: str, key: bytes | None, value: bytes | None, *,
                     max_value_bytes: int) -> Routed:
    """A registry or heartbeat record; see the module docstring for the keys accepted."""
    joined: dict[str, Any] | None = None
    try:
        parsed = parse_control_key(key)
    except InvalidClientIdError as exc:
        raise RejectedRecordError("invalid-client-id", str(exc)) from exc
    except BadKeyError as exc:
        joined = kcat_joined(key, value)
        if joined is None:
            raise _control_key_error(key, exc) from exc
        parsed = RecordKey(joined["client_id"], "")
    client_id = parsed.client_id
    size = len(value) if value else 0
    if size > max_value_bytes:
        raise RejectedRecordError(
            "oversized", f"value of {size} bytes exceeds KGCELERY_MAX_VALUE_BYTES="
            f"{max_value_bytes}", client_id=client_id)
    if not value:  # null, or empty as a console producer's null.marker leaves it
        if kind != "registry":
            raise RejectedRecordError("undecodable-json", f"empty value on a {kind} topic",
                                      client_id=client_id)
        return Routed(client_id, kind, parsed.entity, (NULL,), 0)
    decoded = joined if joined is not None else _json(value)
    if isinstance(decoded, dict) and "client_id" in decoded:
        claimed = decoded.pop("client_id")
        if claimed != client_id:
            raise RejectedRecordError(
                "client-id-mismatch", f"payload client_id {str(claimed)[:64]!r} disagrees "
                f"with key client {client_id!r}", client_id=client_id)
    return Routed(client_id, kind, parsed.entity, (orjson.dumps(decoded),), size,
                  kcat_joined=joined is not None)


def classify(topic: str, key: bytes | None, value: bytes | None, *,
             kinds: Mapping[str, str], max_value_bytes: int,
             client_topics: ClientTopics | None = None) -> Routed:
    """Route a record or raise :class:`RejectedRecordError` with a stable reason code."""
    kind = kinds.get(topic)
    if kind is None:
        named = client_topics.match(topic) if client_topics else None
        if named is None:
            also = " nor of a KGCELERY_CLIENT_TOPICS shape" if client_topics else ""
            raise RejectedRecordError("unknown-topic",
                                      f"topic {topic!r} is not in KGCELERY_TOPICS{also}")
        client_id, kind = named
        return _classify_data(kind, _key_on_client_topic(topic, client_id, key), value,
                              max_value_bytes)
    if kind in CONTROL_KINDS:
        return classify_control(kind, key, value, max_value_bytes=max_value_bytes)
    try:
        parsed = parse_record_key(key)
    except InvalidClientIdError as exc:
        raise RejectedRecordError("invalid-client-id", str(exc)) from exc
    except BadKeyError as exc:
        raise RejectedRecordError("bad-key", str(exc)) from exc
    return _classify_data(kind, parsed, value, max_value_bytes)


def _key_on_client_topic(topic: str, client_id: str, key: bytes | None) -> RecordKey:
    """The record key of a topic that names its client ``client_id``: the whole key is
    the entity (an Event's uid), unless it starts with a valid ``<client>::``, which must
    then be that client."""
    try:
        validate_client_id(client_id)
    except InvalidClientIdError as exc:
        raise RejectedRecordError("invalid-client-id",
                                  f"topic {topic!r} names an invalid client: {exc}") from exc
    if key is None:
        return RecordKey(client_id, "")
    text = key.decode("utf-8", errors="replace")
    prefix, separator, entity = text.partition(KEY_SEPARATOR)
    if not separator or not CLIENT_ID_PATTERN.fullmatch(prefix):
        return RecordKey(client_id, text)
    if prefix != client_id:
        raise RejectedRecordError(
            "client-id-mismatch", f"key {text[:128]!r} names client {prefix!r} on topic "
            f"{topic!r} of client {client_id!r}", client_id=client_id)
    return RecordKey(client_id, entity)


def _classify_data(kind: str, parsed: RecordKey, value: bytes | None,
                   max_value_bytes: int) -> Routed:
    """A data record (any kind but the control kinds) of the client ``parsed`` names."""
    client_id = parsed.client_id
    size = len(value) if value is not None else 0
    if size > max_value_bytes:
        raise RejectedRecordError(
            "oversized",
            f"value of {size} bytes exceeds KGCELERY_MAX_VALUE_BYTES={max_value_bytes}",
            client_id=client_id)
    if value is None:
        if kind not in TOMBSTONE_KINDS:
            raise RejectedRecordError("undecodable-json", f"null value on a {kind} topic",
                                      client_id=client_id)
        return Routed(client_id, kind, parsed.entity, (NULL,), 0)
    needs_content = kind == "alert" or _CLIENT_ID_FIELD in value
    if needs_content or not _is_json(value):
        # orjson decides (and words the error) whenever simdjson refused.
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RejectedRecordError("undecodable-json", f"value is not JSON: {exc}",
                                      client_id=client_id) from exc
    payload = value
    if not needs_content:
        return Routed(client_id, kind, parsed.entity, (payload,), size)
    if isinstance(decoded, dict) and "client_id" in decoded:
        # Agents repeat the client in the payload: fine if it agrees, never kept.
        claimed = decoded.pop("client_id")
        if claimed != client_id:
            raise RejectedRecordError(
                "client-id-mismatch",
                f"payload client_id {str(claimed)[:64]!r} disagrees with client "
                f"{client_id!r} of its key or topic", client_id=client_id)
        payload = orjson.dumps(decoded)
    if kind == "alert":
        alerts = explode_alerts(decoded)
        if alerts is not None:
            return Routed(client_id, kind, parsed.entity,
                          tuple(orjson.dumps(alert) for alert in alerts), size)
    return Routed(client_id, kind, parsed.entity, (payload,), size)
