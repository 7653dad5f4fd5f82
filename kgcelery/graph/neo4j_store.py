"""Neo4j 5 backend, through the official driver's managed write transactions.

Tenancy ``database`` (default; Enterprise and Aura): one database per client, named
by its validated client id, created on first use with ``CREATE DATABASE $name IF NOT
EXISTS WAIT`` (on ``system``), then given its constraints and indexes. Community has
one database only: the store refuses this tenancy there when it is made (or, if the
server is not up yet, before its first write) with :class:`GraphConfigurationError`.
Tenancy ``property`` (Community Edition): one database for everyone, every node keyed
by ``(client, id)``; statements are built with ``cypher.SHARED_GRAPH`` and every one of
them gets ``$client`` from :meth:`Neo4jStore.run`, so a query can only see its client.

Every statement runs in a managed write transaction (``session.execute_write``); a
task's whole batch runs in one (:meth:`Neo4jStore.write_unit`: one commit instead of
one per statement, and the batch is all or nothing). The driver retries a transaction
itself on transient errors (deadlocks, leader changes, a lost
connection) for up to ``driver_retry_s``; what still fails after that is retried here a
few times with exponential backoff and jitter, then raised as
:class:`GraphUnavailableError` so that the task retries later. Rows travel in full-size
UNWIND batches (``batch_rows``, 500). Verified on Neo4j Community 5.26 started by the
kafka-neo4j stack (tests/test_neo4j_path.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import neo4j
from neo4j.exceptions import (
    ConfigurationError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)

from kgcelery.clients import database_for, validate_client_id
from kgcelery.errors import GraphConfigurationError, GraphUnavailableError
from kgcelery.graph import cypher
from kgcelery.graph.base import GraphStore
from kgcelery.retry import Backoff

T = TypeVar("T")
Tenancy = Literal["database", "property"]
CREATE_DATABASE = "CREATE DATABASE $name IF NOT EXISTS WAIT"
DROP_DATABASE = "DROP DATABASE $name IF EXISTS"
EDITION = "CALL dbms.components() YIELD versions, edition RETURN versions[0], edition"
AWAIT_INDEXES = "CALL db.awaitIndexes(300)"
#: The first statement of every write unit: an exclusive lock on the client's one
#: ``WriteTurn`` node until the commit, so that a client's units take their turns in
#: its graph (and a unit may rely on what it read: ``Neo4jStore.exclusive``). Two
#: workers of one client otherwise took the locks of the objects they share in
#: different orders and deadlocked each other (0-22 times a run of
#: bench/e2e.py; each a unit rolled back and run again: p99 0.9-1.4 s without, 3.9-4.5 s
#: with 8-22). Clients' units still run side by side. A constant, not a counter: the
#: graph must not depend on how many units wrote it (a set property is locked all the
#: same, the value unchanged or not).
WRITE_TURN = "MERGE (w:WriteTurn {client: $client}) SET w.taken = true"
#: What ``IF NOT EXISTS`` still raises when two workers create the same rule at once.
_SCHEMA_RACES = ("Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists",
                 "Neo.ClientError.Schema.ConstraintAlreadyExists",
                 "Neo.ClientError.Schema.IndexAlreadyExists")


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
    statements.append("CREATE CONSTRAINT writeturn_key IF NOT EXISTS "
                      "FOR (n:WriteTurn) REQUIRE n.client IS UNIQUE")
    return statements


def _rows(tx: neo4j.ManagedTransaction, query: str, params: dict[str, Any]) -> list[list[Any]]:
    return [list(record.values()) for record in tx.run(query, params)]


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, ServiceUnavailable | SessionExpired | OSError):
        return True
    return isinstance(exc, Neo4jError | DriverError) and bool(exc.is_retryable())


#: The driver's first wait before it runs a failed transaction again (its default: 1 s,
#: doubling). The transient failure seen here is a deadlock between two workers of one
#: client writing the same nodes (bench/e2e.py, the loud client's two workers): the
#: other transaction holds its locks for tens of ms, so a second's wait only added a
#: second to the task (p99 at a steady 2,000 records/s). Jittered by half either way.
RETRY_FIRST_DELAY_S = 0.05
RETRY_JITTER = 0.5


def _driver(uri: str, **config: Any) -> neo4j.Driver:
    """The driver, with :data:`RETRY_FIRST_DELAY_S` where the installed driver takes it
    (a WorkspaceConfig option, not in its documentation)."""
    try:
        return neo4j.GraphDatabase.driver(uri, initial_retry_delay=RETRY_FIRST_DELAY_S,
                                          retry_delay_jitter_factor=RETRY_JITTER, **config)
    except ConfigurationError:
        return neo4j.GraphDatabase.driver(uri, **config)


class Neo4jStore(GraphStore):
    """:param uri: ``bolt://`` or ``neo4j://`` (``+s`` for TLS).
    :param tenancy: ``database`` or ``property`` (see the module docstring).
    :param database: the shared database of tenancy ``property``.
    :param manage_schema: create databases, constraints and indexes on first use.
    :param attempts: tries of one statement, after the driver's own retries, before
        giving up.
    :param batch_rows: rows per UNWIND statement.
    :param driver_retry_s: how long the driver retries a transient failure of one
        transaction before ours (``attempts``) take over.
    :raises GraphConfigurationError: tenancy ``database`` on a Community server.
    """

    def __init__(self, uri: str, *, user: str, password: str, tenancy: Tenancy = "database",
                 database: str = "neo4j", manage_schema: bool = True, attempts: int = 3,
                 backoff_s: float = 0.2, batch_rows: int = 500,
                 driver_retry_s: float = 15.0) -> None:
        if not uri.startswith(("bolt", "neo4j")):
            raise GraphConfigurationError(
                f"KGCELERY_GRAPH_URI={uri!r} is not a Neo4j address; use bolt://host:7687 "
                "or neo4j://host:7687 with KGCELERY_GRAPH_BACKEND=neo4j")
        self.uri = uri
        self.tenancy = tenancy
        self.database = database
        self.client_key = tenancy == "property"
        self.manage_schema = manage_schema
        self.attempts = max(attempts, 1)
        self.backoff = Backoff(base_s=backoff_s, max_s=max(backoff_s, 5.0))
        self.batch_rows = batch_rows
        auth = (user, password) if password else None
        # Notifications (hints such as "property key does not exist" on a new graph) would
        # be logged as warnings for every statement.
        self._driver = _driver(uri, auth=auth, max_transaction_retry_time=driver_retry_s,
                               notifications_min_severity="OFF")
        self._schema_done: set[str] = set()
        # The transaction of the write unit this thread is in, and its database.
        self._unit = threading.local()
        self.edition: str | None = None
        try:
            self._check_edition(deferrable=True)
        except BaseException:
            self._driver.close()
            raise

    def _check_edition(self, *, deferrable: bool) -> None:
        """Refuse tenancy ``database`` on Community, once; at start-up when the server
        answers then, else before the first write."""
        if self.edition is not None:
            return
        try:
            # Auto-commit, no retries: a server that is not up yet must not hold us.
            with self._driver.session() as session:
                [[version, edition]] = session.run(EDITION).values()
        except Exception as exc:
            if not _retryable(exc):
                raise
            if deferrable:
                return
            raise GraphUnavailableError(f"Neo4j at {self.uri} is unreachable: {exc}") from exc
        self.edition = str(edition)
        if self.tenancy == "database" and self.edition == "community":
            raise GraphConfigurationError(
                f"KGCELERY_GRAPH_TENANCY=database needs Neo4j Enterprise or Aura (one database "
                f"per client); {self.uri} is Neo4j {version} Community, which has one "
                "database: set KGCELERY_GRAPH_TENANCY=property")

    def database_of(self, client_id: str) -> str:
        return database_for(client_id) if self.tenancy == "database" else self.database

    def _execute(self, query: str, params: dict[str, Any], database: str) -> list[list[Any]]:
        return self._transaction(database, lambda tx: _rows(tx, query, params))

    def _transaction(self, database: str, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
        """``work`` in a managed write transaction: the driver's retries, then ours."""
        tries = self.attempts
        for attempt in range(1, tries + 1):
            try:
                with self._driver.session(database=database) as session:
                    return session.execute_write(work)
            except Exception as exc:
                if not _retryable(exc):
                    raise
                if attempt == tries:
                    raise GraphUnavailableError(
                        f"Neo4j at {self.uri} failed {attempt} times: {exc}") from exc
                time.sleep(self.backoff.delay(attempt - 1))
        raise AssertionError("unreachable")

    def write_unit(self, client_id: str, work: Callable[[], T]) -> T:
        """``work()`` in one write transaction, run again whole if it is retried. What
        this process learnt of the graph meanwhile is forgotten when a try fails: the
        objects it wrote are rolled back."""
        if getattr(self._unit, "tx", None) is not None:
            return work()  # already inside a unit: part of it
        self.ensure_schema(client_id)  # schema changes cannot share a write transaction
        database = self.database_of(client_id)

        def attempt(tx: neo4j.ManagedTransaction) -> T:
            tx.run(WRITE_TURN, {"client": client_id}).consume()
            self._unit.tx, self._unit.database, self._unit.client = tx, database, client_id
            try:
                return work()
            except BaseException:
                self.known_objects.forget(client_id)
                raise
            finally:
                self._unit.tx = None

        try:
            return self._transaction(database, attempt)
        except BaseException:
            self.known_objects.forget(client_id)  # also when the commit itself failed
            raise

    def exclusive(self, client_id: str) -> bool:
        """Inside a write unit of ``client_id``: it holds the client's write turn."""
        return (getattr(self._unit, "tx", None) is not None
                and self._unit.client == client_id)

    def run(self, client_id: str, query: str,
            params: dict[str, Any] | None = None) -> list[list[Any]]:
        params = dict(params or {})
        params["client"] = validate_client_id(client_id)
        database = self.database_of(client_id)
        tx = getattr(self._unit, "tx", None)
        if tx is not None:
            if self._unit.database != database:
                raise RuntimeError(
                    f"a write unit on database {self._unit.database!r} ran a statement of "
                    f"client {client_id!r} (database {database!r})")
            return _rows(tx, query, params)
        return self._execute(query, params, database)

    def ensure_schema(self, client_id: str) -> None:
        database = self.database_of(client_id)
        if not self.manage_schema or database in self._schema_done:
            return
        self._check_edition(deferrable=False)
        if self.tenancy == "database":
            self._execute(CREATE_DATABASE, {"name": database}, "system")
        for statement in schema_statements(self.tenancy):
            try:
                self._execute(statement, {}, database)
            except Neo4jError as exc:
                if exc.code not in _SCHEMA_RACES:
                    raise
        self._execute(AWAIT_INDEXES, {}, database)
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
