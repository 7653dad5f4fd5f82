"""FalkorDB backend: one graph per client in a Redis server with the FalkorDB module."""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import orjson
import redis
from falkordb import FalkorDB

from kgcelery.clients import database_for
from kgcelery.errors import GraphUnavailableError
from kgcelery.graph import cypher
from kgcelery.graph.base import GraphStore
from kgcelery.retry import Backoff

#: How long a worker waits for a new graph's indexes to be built before it writes.
INDEX_BUILD_TIMEOUT_S = 60.0
_INDEXES = "CALL db.indexes() YIELD label, properties, status RETURN label, properties, status"
#: Between reads of a graph's indexes while they are built: 5 ms, doubling up to 0.5 s.
_INDEX_POLL = Backoff(0.005, 0.5)


def cypher_literal(value: Any) -> str:
    """A parameter value in the syntax of FalkorDB's ``CYPHER name=value`` header.

    The same syntax as the falkordb client writes (strings double-quoted with ``\\``
    and ``"`` escaped, map keys in backticks), about twice as fast: a 500-row batch
    is ~400 kB of parameters, and encoding it was a third of a worker's time.
    """
    kind = type(value)
    if kind is str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return repr(value)
    if kind is float:  # Cypher has no NaN or infinity literal
        return repr(value) if math.isfinite(value) else "null"
    if kind is dict:
        return "{" + ",".join([f"`{key}`:{cypher_literal(item)}"
                               for key, item in value.items()]) + "}"
    if kind is list or kind is tuple:
        return "[" + ",".join([cypher_literal(item) for item in value]) + "]"
    raise TypeError(f"cannot send a {kind.__name__} as a FalkorDB parameter")


def rows_literal(rows: list[Any]) -> str | None:
    """orjson's JSON for a list of lists without maps, which FalkorDB reads as the same
    Cypher list (10x sooner than :func:`cypher_literal`); None for anything else.

    Not for maps (JSON quotes their keys: ``{"`` in the text; a string that ends in
    ``{`` looks the same and just takes the slow way), nor for control characters,
    which JSON writes as ``\\u00XX`` and FalkorDB would keep as those six characters.
    Integers beyond 64 bits make orjson refuse; NaN and infinities it writes as null,
    as :func:`cypher_literal` does.
    """
    for row in rows:
        if type(row) is not list:
            return None
    try:
        encoded = orjson.dumps(rows)
    except orjson.JSONEncodeError:
        return None
    if b'{"' in encoded or b"\\u00" in encoded:
        return None
    return encoded.decode()


def params_header(params: dict[str, Any]) -> str:
    if not params:
        return ""
    return "CYPHER " + " ".join(
        f"{name}={(type(value) is list and rows_literal(value)) or cypher_literal(value)}"
        for name, value in params.items()) + " "


class FalkorDBStore(GraphStore):
    """:param url: ``redis://[:password@]host:port``.
    :param query_timeout_ms: FalkorDB's own limit on one query.
    """

    client_key = False

    def __init__(self, url: str, *, password: str | None = None,
                 query_timeout_ms: int = 60_000) -> None:
        kwargs: dict[str, Any] = {"socket_timeout": 30, "socket_connect_timeout": 5}
        if password:
            kwargs["password"] = password
        self.url = url
        try:  # the client connects at once
            self._db = FalkorDB.from_url(url, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError) as exc:
            raise GraphUnavailableError(f"FalkorDB at {url} is unreachable: {exc}") from exc
        self._timeout = query_timeout_ms
        self._schema_done: set[str] = set()

    def run(self, client_id: str, query: str,
            params: dict[str, Any] | None = None) -> list[list[Any]]:
        graph = self._db.select_graph(database_for(client_id))
        try:
            result = graph.query(params_header(params or {}) + query, timeout=self._timeout)
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError) as exc:
            raise GraphUnavailableError(f"FalkorDB at {self.url} is unreachable: {exc}") from exc
        return list(result.result_set)

    def ensure_schema(self, client_id: str) -> None:
        """Create the graph's missing indexes, then wait until all of them are built.

        FalkorDB builds an index in the background, and adding a property to a label's
        index drops and rebuilds its search index; queries on a graph whose indexes were
        changing are our reading of FalkorDB 4.16's crash (SIGSEGV in
        ``IndexSpec_GetField``, twice here, once while several workers began writing one
        new graph). No write starts before every index is built (docs/GRAPH.md).
        """
        if client_id in self._schema_done:
            return
        wanted = [(label, "id") for label in cypher.KEYED_LABELS] + list(cypher.LOOKUPS)
        deadline = time.monotonic() + INDEX_BUILD_TIMEOUT_S
        for attempt in itertools.count():
            indexes = self.run(client_id, _INDEXES)
            existing = {(label, prop) for label, properties, _ in indexes
                        for prop in properties}
            built = {(label, prop) for label, properties, status in indexes
                     if status == "OPERATIONAL" for prop in properties}
            for label, prop in wanted:
                if (label, prop) not in existing:
                    self._create_index(client_id, label, prop)
            pending = [index for index in wanted if index not in built]
            if not pending:
                break
            if time.monotonic() > deadline:
                names = ", ".join(f"{label}.{prop}" for label, prop in pending)
                raise GraphUnavailableError(
                    f"the indexes of {client_id}'s graph are still being built after "
                    f"{INDEX_BUILD_TIMEOUT_S:.0f} s: {names}")
            time.sleep(_INDEX_POLL.ceiling(attempt))
        self._schema_done.add(client_id)

    def _create_index(self, client_id: str, label: str, prop: str) -> None:
        try:
            self.run(client_id, f"CREATE INDEX FOR (n:{cypher.checked_label(label)}) "
                                f"ON (n.{prop})")
        except redis.ResponseError as exc:
            if "already indexed" not in str(exc):
                raise

    def drop(self, client_id: str) -> None:
        try:
            self._db.select_graph(database_for(client_id)).delete()
        except redis.ResponseError as exc:
            if "empty key" not in str(exc).lower() and "invalid graph" not in str(exc).lower():
                raise
        self._schema_done.discard(client_id)
        self.known_objects.forget(client_id)

    def ping(self) -> bool:
        try:
            return bool(self._db.connection.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def close(self) -> None:
        self._db.close()
        # FalkorDB.from_url hands its client a pool it does not own, so close() leaves
        # the pool's sockets open.
        self._db.connection.connection_pool.disconnect()
