"""FalkorDB backend: one graph per client in a Redis server with the FalkorDB module."""

from __future__ import annotations

from typing import Any

import redis
from falkordb import FalkorDB

from kgcelery.clients import database_for
from kgcelery.errors import GraphUnavailableError
from kgcelery.graph import cypher
from kgcelery.graph.base import GraphStore


class FalkorDBStore(GraphStore):
    """:param url: ``redis://[:password@]host:port``."""

    def __init__(self, url: str, *, password: str | None = None,
                 query_timeout_ms: int = 60_000) -> None:
        kwargs: dict[str, Any] = {"socket_timeout": 30, "socket_connect_timeout": 5}
        if password:
            kwargs["password"] = password
        self.url = url
        self._db = FalkorDB.from_url(url, **kwargs)
        self._timeout = query_timeout_ms
        self._schema_done: set[str] = set()

    def run(self, client_id: str, query: str,
            params: dict[str, Any] | None = None) -> list[list[Any]]:
        graph = self._db.select_graph(database_for(client_id))
        try:
            result = graph.query(query, params or {}, timeout=self._timeout)
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError) as exc:
            raise GraphUnavailableError(f"FalkorDB at {self.url} is unreachable: {exc}") from exc
        return list(result.result_set)

    def ensure_schema(self, client_id: str) -> None:
        if client_id in self._schema_done:
            return
        existing = {row[0] for row in self.run(client_id, "CALL db.indexes() YIELD label "
                                                          "RETURN label")}
        for label, prop in cypher.INDEXES:
            if label not in existing:
                try:
                    self.run(client_id, f"CREATE INDEX FOR (n:{label}) ON (n.{prop})")
                except redis.ResponseError as exc:
                    if "already indexed" not in str(exc):
                        raise
        self._schema_done.add(client_id)

    def drop(self, client_id: str) -> None:
        try:
            self._db.select_graph(database_for(client_id)).delete()
        except redis.ResponseError as exc:
            if "empty key" not in str(exc).lower() and "invalid graph" not in str(exc).lower():
                raise
        self._schema_done.discard(client_id)

    def ping(self) -> bool:
        try:
            return bool(self._db.connection.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def close(self) -> None:
        self._db.close()
