"""The one small interface every graph backend implements.

Contract:
- ``run(client_id, query, params)`` runs one parameterized Cypher statement against
  that client's graph and returns its rows. The client id is validated before it names
  a graph or database. Queries are built only from allow-listed labels (see
  :mod:`kgcelery.model.objects`); values always travel as parameters.
- A backend that cannot reach its database raises :class:`GraphUnavailableError`
  (transient: the task retries); a bad query raises the backend's own error.
- ``ensure_schema(client_id)`` creates what a client's graph needs (indexes, and a
  database where the backend has one per client); it is idempotent and cheap to repeat.
- ``known_objects`` remembers which objects each graph holds; ``drop`` must forget
  the client's.
- ``write_unit(client_id, work)`` runs ``work`` (statements through ``run``) as one
  unit where the backend has transactions: one task's batch, all or nothing, retried
  whole; elsewhere it simply calls ``work``. ``work`` must be safe to run again.
- ``exclusive(client_id)`` is True only inside a write unit that no other writer of
  the client runs beside until it commits (Neo4j: the client's write turn): what its
  reads find missing stays missing, so it may CREATE instead of MERGE.
- ``batch_rows`` is how many rows one statement carries (500 by default; less only
  for servers that cannot take large parameters).
- ``client_key`` is True when clients share one database and nodes are keyed by
  ``(client, id)``: statements must then be built with ``cypher.SHARED_GRAPH``, and
  ``run`` passes the client id as ``$client`` to every statement.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from kgcelery.graph.known import KnownObjects

T = TypeVar("T")


class GraphStore(ABC):
    """A graph database holding one knowledge graph per client."""

    client_key: bool = False
    batch_rows: int = 500

    @property
    def known_objects(self) -> KnownObjects:
        """The objects this process has written or read in each client's graph
        (:mod:`kgcelery.graph.known`); ``drop`` forgets the client's."""
        memo = self.__dict__.get("_known_objects")
        if memo is None:
            memo = self.__dict__["_known_objects"] = KnownObjects()
        return memo

    @abstractmethod
    def run(self, client_id: str, query: str,
            params: dict[str, Any] | None = None) -> list[list[Any]]:
        """Run one parameterized statement on a client's graph; return its rows."""

    def write_unit(self, client_id: str, work: Callable[[], T]) -> T:
        """``work()``, its statements as one unit (see the module docstring)."""
        return work()

    def exclusive(self, client_id: str) -> bool:
        """True while this thread writes ``client_id``'s graph alone (see above)."""
        return False

    @abstractmethod
    def ensure_schema(self, client_id: str) -> None:
        """Create the client's graph, indexes and constraints if missing (idempotent)."""

    @abstractmethod
    def drop(self, client_id: str) -> None:
        """Delete a client's whole graph (ops and tests only)."""

    @abstractmethod
    def ping(self) -> bool:
        """True if the database answers."""

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections."""
