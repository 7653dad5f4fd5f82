"""Neo4j 5 backend, through the official driver's ``execute_query``.

Tenancy ``database`` (default; Enterprise and Aura): one database per client, named
by its validated client id, created on first use with ``CREATE DATABASE $name IF NOT
EXISTS WAIT`` (on ``system``), then given its constraints and indexes. Tenancy
``property`` (Community Edition): one database for everyone, every node keyed by
``(client, id)``; statements are built with ``cypher.SHARED_GRAPH`` and every one of
them gets ``$client`` from :meth:`Neo4jStore.run`, so a query can only see its client.

Transient failures (the driver's retryable errors: connection loss, leader changes,
deadlocks) are retried here a few times with exponential backoff and jitter, then
raised as :class:`GraphUnavailableError` so that the task retries later.

XXX: verified against FalkorDB's Bolt endpoint only (see docs/GRAPH.md); the DDL is
generated and unit-tested as text, never run against a real Neo4j here.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import neo4j
from neo4j.exceptions import DriverError, Neo4jError, ServiceUnavailable, SessionExpired

from kgcelery.clients import database_for, validate_client_id
from kgcelery.errors import GraphUnavailableError
from kgcelery.graph import cypher
from kgcelery.graph.base import GraphStore

Tenancy = Literal["database", "property"]
CREATE_DATABASE = "CREATE DATABASE $name IF NOT EXISTS WAIT"
DROP_DATABASE = "DROP DATABASE $name IF EXISTS"


def schema_statements(tenancy: Tenancy) -> list[str]:
    """Constraints and indexes of a client's database (or of the shared one)."""
    key = "(n.client, n.id)" if tenancy == "property" else "n.id"
    statements = [
        f"CREATE CONSTRAINT {label.lower()}_key IF NOT EXISTS "
        f"FOR (n:{cypher.checked_label(label)}) REQUIRE {key} IS UNIQUE"
        for label in cypher.KEYED_LABELS]
    for label, prop in cypher.LOOKUPS:
        on = f"(n.client, n.{prop})" if tenancy == "property" else f"(n.{prop})"
        statements.append(f"CREATE INDEX {label.lower()}_{prop} IF NOT EXISTS "
                          f"FOR (n:{cypher.checked_label(label)}) ON {on}")
    return statements


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, ServiceUnavailable | SessionExpired | OSError):
        return True
    return isinstance(exc, Neo4jError | DriverError) and bool(exc.is_retryable())


class Neo4jStore(GraphStore):
    """:param uri: ``bolt://`` or ``neo4j://`` (``+s`` for TLS).
    :param tenancy: ``database`` or ``property`` (see the module docstring).
    :param database: the shared database of tenancy ``property``.
    :param manage_schema: create databases, constraints and indexes on first use.
    :param attempts: tries of one statement on transient errors before giving up.
    :param batch_rows: rows per statement (FalkorDB's Bolt endpoint, used in tests,
        crashes on parameters over ~4 kB: tests pass 1).
    :param driver_retry_s: how long the driver itself retries a transient failure of
        one statement before ours (``attempts``) take over.
    """

    def __init__(self, uri: str, *, user: str, password: str, tenancy: Tenancy = "database",
                 database: str = "neo4j", manage_schema: bool = True, attempts: int = 3,
                 backoff_s: float = 0.2, batch_rows: int = 500,
                 driver_retry_s: float = 5.0) -> None:
        if not uri.startswith(("bolt", "neo4j")):
            raise GraphUnavailableError(
                f"KGCELERY_GRAPH_URI={uri!r} is not a Neo4j address; use bolt://host:7687 "
                "or neo4j://host:7687 with KGCELERY_GRAPH_BACKEND=neo4j")
        self.uri = uri
        self.tenancy = tenancy
        self.database = database
        self.client_key = tenancy == "property"
        self.manage_schema = manage_schema
        self.attempts = max(attempts, 1)
        self.backoff_s = backoff_s
        self.batch_rows = batch_rows
        auth = (user, password) if password else None
        # The driver retries managed transactions itself; keep that short, retry here.
        self._driver = neo4j.GraphDatabase.driver(uri, auth=auth,
                                                  max_transaction_retry_time=driver_retry_s)
        self._schema_done: set[str] = set()

    def database_of(self, client_id: str) -> str:
        return database_for(client_id) if self.tenancy == "database" else self.database

    def _execute(self, query: str, params: dict[str, Any], database: str) -> list[list[Any]]:
        for attempt in range(1, self.attempts + 1):
            try:
                result = self._driver.execute_query(query, params, database_=database)
                return [list(record.values()) for record in result.records]
            except Exception as exc:
                if not _retryable(exc):
                    raise
                if attempt == self.attempts:
                    raise GraphUnavailableError(
                        f"Neo4j at {self.uri} failed {attempt} times: {exc}") from exc
                delay = self.backoff_s * 2 ** (attempt - 1)
                time.sleep(random.uniform(delay / 2, delay))
        raise AssertionError("unreachable")

    def run(self, client_id: str, query: str,
            params: dict[str, Any] | None = None) -> list[list[Any]]:
        params = dict(params or {})
        params["client"] = validate_client_id(client_id)
        return self._execute(query, params, self.database_of(client_id))

    def ensure_schema(self, client_id: str) -> None:
        database = self.database_of(client_id)
        if not self.manage_schema or database in self._schema_done:
            return
        if self.tenancy == "database":
            self._execute(CREATE_DATABASE, {"name": database}, "system")
        for statement in schema_statements(self.tenancy):
            self._execute(statement, {}, database)
        self._schema_done.add(database)

    def drop(self, client_id: str) -> None:
        if self.tenancy == "database":
            self._execute(DROP_DATABASE, {"name": self.database_of(client_id)}, "system")
            self._schema_done.discard(self.database_of(client_id))
        else:
            self.run(client_id, "MATCH (n {client: $client}) DETACH DELETE n")
        self.known_objects.forget(client_id)

    def ping(self) -> bool:
        try:
            self._driver.verify_connectivity()
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False
        return True

    def close(self) -> None:
        self._driver.close()
