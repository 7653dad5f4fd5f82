"""The Neo4j backend, driven for real through the neo4j driver's ``execute_query``.

The server is FalkorDB's Bolt endpoint (its module started with ``BOLT_PORT``), in a
process of this module's own. What that endpoint cannot do decides what is tested
here and what only as generated text (test_cypher.py), see docs/GRAPH.md: it ignores
``database_`` (every database is one graph), refuses constraint and index DDL, loses
writes made in explicit transactions, crashes on parameters over ~4 kB (so the store
sends one row per statement here) and fails on string parameters holding an
apostrophe (so records with one are left out, and counted).
"""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from kgcelery.embedded.binaries import falkordb_module, redis_server_binary
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port, port_in_use
from kgcelery.errors import GraphUnavailableError
from kgcelery.graph import GraphStore
from kgcelery.graph.neo4j_store import Neo4jStore
from kgcelery.graph.queries import stats, timeline
from kgcelery.graph.writer import write_events, write_logs
from kgcelery.graph.writer_state import write_resources
from kgcelery.normalize.events import normalize_event
from kgcelery.normalize.logs import fold_logs, normalize_log
from kgcelery.normalize.resources import normalize_resource
from kgcelery.settings import Settings
from tests import corpus_data
from tests.graph_helpers import difference, dump, edges_of

pytestmark = pytest.mark.integration


def free_bolt_port() -> int:
    """A free port below 32768: FalkorDB ignores a larger BOLT_PORT, silently (4.16)."""
    for _ in range(200):
        port = random.randint(20_000, 32_000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768 for FalkorDB's Bolt endpoint")


@pytest.fixture(scope="module")
def bolt_port(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[int]:
    """A FalkorDB of this module's own, with its Bolt endpoint open."""
    state = tmp_path_factory.mktemp("bolt-falkordb")
    port, bolt = free_port(), free_bolt_port()
    process = ManagedProcess(
        "bolt-falkordb",
        [str(redis_server_binary(stack_settings)), "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(state), "--save", "", "--appendonly", "no",
         "--loadmodule", str(falkordb_module(stack_settings)), "BOLT_PORT", str(bolt)],
        run_dir=state / "run", log_dir=state / "logs")
    process.start()
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        process.wait_until(lambda: bool(client.ping()) and port_in_use(bolt), timeout=30,
                           what="answering on Bolt")
        client.close()
        yield bolt
    finally:
        process.stop()


@pytest.fixture(scope="module")
def neo4j(bolt_port: int) -> Iterator[Neo4jStore]:
    # One store (one connection pool) for the module: the endpoint mishandles a new
    # connection after another one closed.
    store = Neo4jStore(f"bolt://127.0.0.1:{bolt_port}", user="neo4j", password="",
                       tenancy="property", database="kgcelery", manage_schema=False,
                       batch_rows=1)
    yield store
    store.close()


def _bolt_safe(records: list[Any]) -> list[Any]:
    return [r for r in records if "'" not in json.dumps(r)]


@pytest.fixture(scope="module")
def k3s(corpus: Path) -> corpus_data.Bundle:
    """The k3s bundle's ``default`` namespace (one row per statement is slow on Bolt)."""
    bundle = corpus_data.k3s(corpus)

    def in_default(record: Any) -> bool:
        meta = record.get("metadata", {}) if isinstance(record, dict) else {}
        return meta.get("namespace") in ("default", None)

    safe = corpus_data.Bundle(
        events=_bolt_safe([e for e in bundle.events if in_default(e)]),
        resources=_bolt_safe([r for r in bundle.resources if in_default(r)]),
        logs=_bolt_safe(bundle.logs))
    # The endpoint's limits cost a few records, not the bundle.
    assert len(safe.events) == 56 and len(safe.resources) >= 20
    assert len(safe.logs) >= len(bundle.logs) - 2  # "nc: bad address '...'", twice
    return safe


def write(store: GraphStore, client: str, bundle: corpus_data.Bundle) -> None:
    write_resources(store, client, [r for raw in bundle.resources
                                    for r in normalize_resource(raw)])
    write_events(store, client, [e for raw in bundle.events for e in normalize_event(raw)])
    write_logs(store, client, fold_logs([line for raw in bundle.logs
                                         for line in normalize_log(raw)]), "batch-1")


@pytest.fixture(scope="module")
def clients(neo4j: Neo4jStore, stack_settings: Settings, k3s: corpus_data.Bundle
            ) -> Iterator[tuple[str, str]]:
    """Two clients of the shared database: one with the bundle, one with only its
    objects (same names, same uids); the first is also written to FalkorDB natively."""
    from kgcelery.graph import open_store

    a, b = f"neo-a-{os.getpid()}", f"neo-b-{os.getpid()}"
    write(neo4j, a, k3s)
    write(neo4j, b, corpus_data.Bundle(resources=k3s.resources))
    falkordb = open_store(stack_settings)
    write(falkordb, a, k3s)
    falkordb.close()
    yield a, b


def test_the_neo4j_path_builds_the_same_graph_as_falkordb(
        neo4j: Neo4jStore, graph: GraphStore, clients: tuple[str, str]) -> None:
    client = clients[0]
    one, other = dump(neo4j, client), dump(graph, client)
    assert one == other, difference(one, other)
    assert edges_of(neo4j, client, "SELECTS") >= {
        ("Service/default/backend-api-service", "Pod/default/backend-api-75fb46b7bd-xtkrh")}


def test_the_read_side_works_on_the_neo4j_path(neo4j: Neo4jStore,
                                               clients: tuple[str, str]) -> None:
    result = timeline(neo4j, clients[0], "Pod/default/backend-api-75fb46b7bd-xtkrh")
    assert result["object"]["restart_count"] == 5
    assert {"role": "node", "id": "Node/c9b7eea91"} in result["surroundings"]
    assert any(e["what"] == "event" and e["summary"].startswith("BackOff")
               for e in result["timeline"])
    assert any(e["what"] == "log" for e in result["timeline"])


def test_database_tenancy_runs_its_queries_in_the_clients_database(
        bolt_port: int, client_ids: list[str]) -> None:
    store = Neo4jStore(f"bolt://127.0.0.1:{bolt_port}", user="neo4j", password="",
                       tenancy="database", manage_schema=False, batch_rows=1)
    try:
        assert not store.client_key and store.database_of(client_ids[0]) == client_ids[0]
        event = {"metadata": {"uid": f"ev-{client_ids[0]}", "namespace": "a"}, "reason": "X",
                 "involvedObject": {"kind": "Pod", "namespace": "a", "name": "p"}}
        write_events(store, client_ids[0], normalize_event(event))
        # XXX: the endpoint keeps every database in one graph; a real Neo4j would not.
        assert store.run(client_ids[0], "MATCH (e:Event {id: $id}) RETURN count(e)",
                         {"id": f"ev-{client_ids[0]}"}) == [[1]]
    finally:
        store.close()


def test_clients_share_one_database_but_never_a_node(neo4j: Neo4jStore,
                                                     clients: tuple[str, str]) -> None:
    a, b = clients
    graph_a, graph_b = dump(neo4j, a), dump(neo4j, b)
    assert graph_a != graph_b
    assert stats(neo4j, a)["nodes"]["Event"] == 56 and "Event" not in stats(neo4j, b)["nodes"]
    assert edges_of(neo4j, a, "SELECTS") == edges_of(neo4j, b, "SELECTS")
    # Every node of each client carries its client; edges never cross.
    [[crossing]] = neo4j.run(a, "MATCH (x)-[]->(y) WHERE x.client <> y.client RETURN count(*)")
    assert crossing == 0
    neo4j.drop(b)
    assert dump(neo4j, a) == graph_a and stats(neo4j, b)["nodes"] == {}


def test_an_unreachable_server_is_transient_after_bounded_retries() -> None:
    store = Neo4jStore(f"bolt://127.0.0.1:{free_port()}", user="neo4j", password="x",
                       tenancy="property", attempts=2, backoff_s=0.01, driver_retry_s=0)
    try:
        with pytest.raises(GraphUnavailableError, match="failed 2 times"):
            store.run("some-client", "RETURN 1")
        assert store.ping() is False
    finally:
        store.close()
