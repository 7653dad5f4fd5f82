"""Client ids, record keys and the names derived from them (queues, databases)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kgcelery.errors import BadKeyError, InvalidClientIdError

#: A client id is also a valid Celery queue suffix and Neo4j database name.
CLIENT_ID_PATTERN = re.compile(r"[a-z][a-z0-9-]{1,61}[a-z0-9]")
KEY_SEPARATOR = "::"
CLIENT_QUEUE_PREFIX = "client."
CONTROL_QUEUE = "control"


def validate_client_id(client_id: str) -> str:
    """Return ``client_id`` if it is valid, else raise :class:`InvalidClientIdError`."""
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise InvalidClientIdError(
            f"invalid client id {client_id!r}: use 3-63 characters of a-z, 0-9 and '-', "
            "starting with a letter and not ending with '-'"
        )
    return client_id


def queue_for(client_id: str) -> str:
    """The Celery queue of a client: ``client.<id>``."""
    return CLIENT_QUEUE_PREFIX + validate_client_id(client_id)


def client_of_queue(queue: str) -> str | None:
    """The client whose queue this is, or None for any other queue."""
    if not queue.startswith(CLIENT_QUEUE_PREFIX):
        return None
    candidate = queue[len(CLIENT_QUEUE_PREFIX):]
    return candidate if CLIENT_ID_PATTERN.fullmatch(candidate) else None


def database_for(client_id: str) -> str:
    """The graph (FalkorDB) or database (Neo4j) that holds a client's knowledge graph."""
    return validate_client_id(client_id)


@dataclass(frozen=True, slots=True)
class RecordKey:
    """A parsed Kafka key: the client, and the entity part kept for tracing."""

    client_id: str
    entity: str


#: What a producer must change when its records name no client (the dead letter's detail).
PRODUCER_FIX = ("fix on the producer: key records as <client>::<entity> (Vector: "
                "key_field = \"message_key\" with message_key \"<client>::<pod_uid>\"; "
                "kubernetes-event-exporter and other producers that key by uid alone: "
                "prefix the key with '<client>::')")


def parse_key(key: bytes | str | None) -> RecordKey:
    """Split ``af-9::event::abc123`` into client ``af-9`` and entity ``event::abc123``.

    Raises :class:`BadKeyError` when there is no ``<client>::`` prefix (its message says
    what the producer must change) and :class:`InvalidClientIdError` when the prefix is
    not a valid client id.
    """
    if key is None:
        raise BadKeyError(f"record has no key, so it names no client; {PRODUCER_FIX}")
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadKeyError(f"key is not UTF-8: {key[:64]!r}; {PRODUCER_FIX}") from exc
    client_id, separator, entity = key.partition(KEY_SEPARATOR)
    if not separator:
        raise BadKeyError(f"key {key[:128]!r} has no '<client>::' prefix, so it names no "
                          f"client; {PRODUCER_FIX}")
    validate_client_id(client_id)
    return RecordKey(client_id, entity)


def parse_control_key(key: bytes | str | None) -> RecordKey:
    """The client a registry or heartbeat record names.

    The agents key these records by the bare client id (``af-9``: the chart's jobs) or
    as ``<client>::<anything>`` (``af-9::af-9``: the state-watcher's heartbeat); both name
    client ``af-9``. Raises :class:`BadKeyError` for a missing, non-UTF-8 or bare key
    that is not a client id, :class:`InvalidClientIdError` for an invalid prefix.
    """
    if key is None:
        raise BadKeyError("control record has no key; key it by the client id ('af-9') "
                          "or as '<client>::<anything>'")
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadKeyError(f"key is not UTF-8: {key[:64]!r}") from exc
    if KEY_SEPARATOR in key:
        return parse_key(key)
    if not CLIENT_ID_PATTERN.fullmatch(key):
        raise BadKeyError(f"key {key[:128]!r} is neither a client id nor "
                          "'<client>::<anything>'; key control records by the client id "
                          "(kcat -k <client> with -K:: or no -K)")
    return RecordKey(key, "")
