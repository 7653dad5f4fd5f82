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


def parse_key(key: bytes | str | None) -> RecordKey:
    """Split ``af-9::event::abc123`` into client ``af-9`` and entity ``event::abc123``.

    Raises :class:`BadKeyError` when there is no ``<client>::`` prefix and
    :class:`InvalidClientIdError` when the prefix is not a valid client id.
    """
    if key is None:
        raise BadKeyError("record has no key; expected '<client>::<entity>'")
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadKeyError(f"key is not UTF-8: {key[:64]!r}") from exc
    client_id, separator, entity = key.partition(KEY_SEPARATOR)
    if not separator:
        raise BadKeyError(f"key {key[:128]!r} has no '::'; expected '<client>::<entity>'")
    validate_client_id(client_id)
    return RecordKey(client_id, entity)
