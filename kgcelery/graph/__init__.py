"""The knowledge graph: model, Cypher, and one module per backend."""

from __future__ import annotations

from kgcelery.graph.base import GraphStore
from kgcelery.settings import Settings


def open_store(settings: Settings) -> GraphStore:
    """The graph backend that the settings name."""
    if settings.graph_backend == "falkordb":
        from kgcelery.graph.falkordb_store import FalkorDBStore

        return FalkorDBStore(settings.graph_uri,
                             password=settings.graph_password.get_secret_value() or None)
    from kgcelery.graph.neo4j_store import Neo4jStore

    return Neo4jStore(settings.graph_uri, user=settings.graph_user,
                      password=settings.graph_password.get_secret_value(),
                      tenancy=settings.graph_tenancy, database=settings.graph_database,
                      manage_schema=settings.graph_manage_schema)


__all__ = ["GraphStore", "open_store"]
