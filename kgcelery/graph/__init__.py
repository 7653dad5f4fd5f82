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
    raise NotImplementedError(f"graph backend {settings.graph_backend!r} is not built yet")


__all__ = ["GraphStore", "open_store"]
