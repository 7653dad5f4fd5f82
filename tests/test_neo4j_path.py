"""The Neo4j backend on a real Neo4j Community 5.26, started by the kafka-neo4j stack.

Community has one database: clients share it (tenancy ``property``), and tenancy
``database`` is refused when the store is made. The graph the Neo4j path builds from
the k3s bundle is compared with what FalkorDB builds from the same records.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from neo4j.exceptions import ConstraintError, TransientError
from pydantic import ValidationError

from kgcelery.cli import main
from kgcelery.demo.warmup import simulated_records, warm_graph
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port
from kgcelery.errors import GraphConfigurationError, GraphUnavailableError
from kgcelery.graph import GraphStore, cypher, open_store
from kgcelery.graph.cypher import SHARED_GRAPH
from kgcelery.graph.neo4j_store import Neo4jStore, schema_statements
from kgcelery.graph.queries import stats, timeline
from kgcelery.graph.writer import write_events, write_logs
from kgcelery.graph.writer_state import write_resources
from kgcelery.normalize.events import normalize_event
from kgcelery.normalize.logs import fold_logs, normalize_log
from kgcelery.normalize.resources import normalize_resource
from kgcelery.settings import Settings
from tests import corpus_data
from tests.graph_helpers import count, difference, dump, edges_of

pytestmark = [pytest.mark.integration, pytest.mark.jvm]


@pytest.fixture(scope="module")
def neo4j(jvm_stack: Settings) -> Iterator[Neo4jStore]:
    store = open_store(jvm_stack)
    assert isinstance(store, Neo4jStore)
    yield store
    store.close()


def write(store: GraphStore, client: str, bundle: corpus_data.Bundle) -> None:
    write_resources(store, client, [r for raw in bundle.resources
                                    for r in normalize_resource(raw)])
    write_events(store, client, [e for raw in bundle.events for e in normalize_event(raw)])
    write_logs(store, client, fold_logs([line for raw in bundle.logs
                                         for line in normalize_log(raw)]), "batch-1")


@pytest.fixture(scope="module")
def k3s(corpus: Path) -> corpus_data.Bundle:
    return corpus_data.k3s(corpus)


@pytest.fixture(scope="module")
def clients(neo4j: Neo4jStore, tansu_stack: Settings, k3s: corpus_data.Bundle
            ) -> Iterator[tuple[str, str]]:
    """Two clients of the shared database: one with the whole bundle, one with only its
    objects (same names, same uids); the first is also written to FalkorDB natively."""
    a, b = f"neo-a-{os.getpid()}", f"neo-b-{os.getpid()}"
    write(neo4j, a, k3s)
    write(neo4j, b, corpus_data.Bundle(resources=k3s.resources))
    falkordb = open_store(tansu_stack)
    write(falkordb, a, k3s)
    falkordb.close()
    yield a, b


def test_the_neo4j_path_builds_the_same_graph_as_falkordb(
        neo4j: Neo4jStore, tansu_stack: Settings, clients: tuple[str, str],
        k3s: corpus_data.Bundle) -> None:
    client = clients[0]
    falkordb = open_store(tansu_stack)
    try:
        one, other = dump(neo4j, client), dump(falkordb, client)
    finally:
        falkordb.close()
    assert one == other, difference(one, other)
    # The whole bundle, records with apostrophes and large parameters included.
    assert count(neo4j, client, "Event") == len({e["metadata"]["uid"] for e in k3s.events})
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


def test_clients_share_one_database_but_never_a_node(neo4j: Neo4jStore,
                                                     clients: tuple[str, str]) -> None:
    a, b = clients
    graph_a, graph_b = dump(neo4j, a), dump(neo4j, b)
    assert graph_a != graph_b
    assert stats(neo4j, a)["nodes"]["Event"] > 0 and "Event" not in stats(neo4j, b)["nodes"]
    assert edges_of(neo4j, a, "SELECTS") == edges_of(neo4j, b, "SELECTS")
    # Every node of each client carries its client; edges never cross.
    [[crossing]] = neo4j.run(a, "MATCH (x)-[]->(y) WHERE x.client <> y.client RETURN count(*)")
    assert crossing == 0
    [[unkeyed]] = neo4j.run(a, "MATCH (n) WHERE n.client IS NULL RETURN count(n)")
    assert unkeyed == 0
    neo4j.drop(b)
    assert dump(neo4j, a) == graph_a and stats(neo4j, b)["nodes"] == {}


def test_schema_management_creates_the_constraints_and_indexes_and_they_hold(
        neo4j: Neo4jStore, clients: tuple[str, str]) -> None:
    names = {row[0] for row in neo4j.run(clients[0], "SHOW CONSTRAINTS YIELD name RETURN name")}
    names |= {row[0] for row in neo4j.run(clients[0], "SHOW INDEXES YIELD name RETURN name")}
    wanted = {statement.split()[2] for statement in schema_statements("property")}
    assert wanted <= names, wanted - names
    # (client, id) is unique: a second node with the same key is refused by the server...
    [[oid]] = neo4j.run(clients[0], "MATCH (e:Event {client: $client}) RETURN e.id LIMIT 1")
    with pytest.raises(ConstraintError):
        neo4j.run(clients[0], "CREATE (:Event {client: $client, id: $id})", {"id": oid})
    # ...while the same id in another client's graph is that client's own node.
    other = f"neo-c-{os.getpid()}"
    neo4j.run(other, "CREATE (:Event {client: $client, id: $id})", {"id": oid})
    neo4j.drop(other)


class Recording(Neo4jStore):
    """A store that records (client, statement, rows) of every statement it runs."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri, user="neo4j", password="", tenancy="property")
        self.statements: list[tuple[str, str, int]] = []

    def run(self, client_id: str, query: str,
            params: dict[str, Any] | None = None) -> list[list[Any]]:
        self.statements.append((client_id, query, len((params or {}).get("rows", ()))))
        return super().run(client_id, query, params)


def test_rows_travel_in_full_size_batches(neo4j: Neo4jStore, client_ids: list[str]) -> None:
    store = Recording(neo4j.uri)
    client = client_ids[0]
    events = [{"metadata": {"uid": f"ev-{i}", "namespace": "a"}, "reason": "X",
               "message": "it's a message with an apostrophe and " + "x" * 2000,
               "involvedObject": {"kind": "Pod", "namespace": "a", "name": f"p{i % 7}"}}
              for i in range(1200)]
    try:
        write_events(store, client, [e for raw in events for e in normalize_event(raw)])
        assert count(store, client, "Event") == 1200
        assert max(rows for _, _, rows in store.statements) == store.batch_rows == 500
    finally:
        store.drop(client)
        store.close()


def test_a_unit_creates_the_events_it_lacks_and_merges_those_it_has(
        neo4j: Neo4jStore, client_ids: list[str]) -> None:
    # Inside a unit (the client's write turn held) the events the graph lacks are
    # CREATEd, the others MERGEd: the graph must be the one MERGE alone builds.
    class MergingOnly(Recording):
        def exclusive(self, client_id: str) -> bool:
            return False

    def events(ids: range, count_: int, message: str, last: str) -> list[Any]:
        return [e for i in ids for e in normalize_event(
            {"metadata": {"uid": f"ev-{i}", "namespace": "a"}, "reason": "BackOff",
             "message": message, "count": count_, "firstTimestamp": "2026-01-01T00:00:00Z",
             "lastTimestamp": last,
             "involvedObject": {"kind": "Pod", "namespace": "a", "name": f"p{i % 3}"}})]

    store, merging = Recording(neo4j.uri), MergingOnly(neo4j.uri)
    in_unit, plain = client_ids[:2]
    batches = [events(range(10), 1, "old", "2026-01-01T00:01:00Z"),
               events(range(5, 15), 4, "new", "2026-01-01T00:05:00Z")]

    def unit(batch: list[Any]) -> int:
        assert store.exclusive(in_unit) and not store.exclusive(plain)
        return write_events(store, in_unit, batch)

    try:
        for batch in batches:
            assert store.write_unit(in_unit, functools.partial(unit, batch)) == 10
            merging.write_unit(plain, functools.partial(write_events, merging, plain, batch))
        assert not store.exclusive(in_unit)
        create, merge = (cypher.create_events(SHARED_GRAPH), cypher.write_events(SHARED_GRAPH))
        statements = store.statements + merging.statements
        assert [n for c, q, n in statements if c == in_unit and q == create] == [10, 5]
        assert [n for c, q, n in statements if c == in_unit and q == merge] == [5]
        assert [n for c, q, n in statements if c == plain and q == create] == []
        assert dump(store, in_unit) == dump(store, plain), difference(
            dump(store, in_unit), dump(store, plain))
        abouts = store.run(in_unit, "MATCH (e:Event {client: $client})-[r:ABOUT]->(p:Pod) "
                                    "RETURN e.id, count(r), e.count, e.message ORDER BY e.id")
        assert len(abouts) == 15 and {n for _, n, _, _ in abouts} == {1}
        assert {(c, m) for _, _, c, m in abouts} == {(1, "old"), (4, "new")}
    finally:
        store.drop(in_unit)
        store.drop(plain)
        store.close()
        merging.close()


def test_the_warm_up_writes_every_kind_and_leaves_no_graph_behind(neo4j: Neo4jStore) -> None:
    # What `kgcelery up --stack kafka-neo4j` runs before its first record (and
    # bench/e2e.py before it measures): a simulated cluster into throw-away graphs.
    records = simulated_records(2_000)
    assert {"resource", "event", "log", "alert"} <= {kind for kind, _ in records}
    written = warm_graph(neo4j, records)
    assert written > len(records) // 2
    [[left]] = neo4j.run("warm-up-0", "MATCH (n) WHERE n.client STARTS WITH 'warm-up' "
                                      "RETURN count(n)")
    assert left == 0
    # Ctrl-C during it: it ends between batches, and still drops what it wrote.
    asked: list[int] = []

    def after_three_batches() -> bool:
        asked.append(1)
        return len(asked) > 3

    assert warm_graph(neo4j, records, stop=after_three_batches) < 50
    [[left]] = neo4j.run("warm-up-0", "MATCH (n) WHERE n.client STARTS WITH 'warm-up' "
                                      "RETURN count(n)")
    assert left == 0


def test_a_statement_is_planned_once_whatever_its_batch_sizes(
        neo4j: Neo4jStore, client_ids: list[str]) -> None:
    # Batches come in every size from 1 to 500 rows; by default Neo4j planned a statement
    # again for each size (0.2-0.3 s a plan, while tasks waited). KgNeo4j.java (and
    # docker-compose.yml) turn that off: internal.cypher.use_parameter_size=false.
    client = client_ids[0]
    statement = "UNWIND $rows AS r MERGE (p:Resource {client: $client, id: r}) RETURN count(p)"
    try:
        neo4j.run(client, "CALL db.clearQueryCaches()")
        for size in (1, 5, 24, 300):
            neo4j.run(client, statement, {"rows": [f"plan-{i}" for i in range(size)]})
        [[cleared]] = neo4j.run(client, "CALL db.clearQueryCaches()")
        # "... cleared of <n> queries.": one per size (4) without the setting; 1 with it
        # (2 if another process's statement came between).
        found = re.search(r"of (\d+) quer", str(cleared))
        assert found is not None and int(found.group(1)) <= 2, cleared
    finally:
        neo4j.drop(client)


def test_a_write_unit_is_one_transaction_all_or_nothing(neo4j: Neo4jStore,
                                                       client_ids: list[str]) -> None:
    client = client_ids[0]
    events = [e for i in range(600) for e in normalize_event(
        {"metadata": {"uid": f"ev-{i}", "namespace": "a"}, "reason": "X", "message": "m",
         "involvedObject": {"kind": "Pod", "namespace": "a", "name": f"p{i % 7}"}})]

    def fails_after_writing() -> None:
        write_events(neo4j, client, events)  # two statements of events, their pods...
        assert count(neo4j, client, "Event") == 600  # ...seen inside the transaction
        raise ValueError("the task failed after its writes")

    try:
        with pytest.raises(ValueError):
            neo4j.write_unit(client, fails_after_writing)
        # Rolled back whole, and the pods it wrote are not taken as known any more.
        assert count(neo4j, client, "Event") == 0 and count(neo4j, client, "Pod") == 0
        assert not neo4j.known_objects.covers(client, events[0].object_row()["object_id"], "")
        assert neo4j.write_unit(client, lambda: write_events(neo4j, client, events)) == 600
        assert count(neo4j, client, "Event") == 600 and count(neo4j, client, "Pod") == 7
    finally:
        neo4j.drop(client)


def test_two_units_that_deadlock_both_commit_after_a_short_retry(
        neo4j: Neo4jStore, client_ids: list[str]) -> None:
    # Two units lock the same nodes in opposite orders: Neo4j aborts one, and the driver
    # runs it again after RETRY_FIRST_DELAY_S, not its default second. (A client's own
    # units take turns, neo4j_store.WRITE_TURN: units of two clients, on nodes they
    # share here only because the test writes them so.)
    client, other = client_ids[:2]
    neo4j.run(client, "UNWIND ['a', 'b'] AS id MERGE (n:Resource {client: $client, id: id})")
    both_locked_one = threading.Barrier(2, timeout=20)
    starts: dict[str, list[float]] = {"ab": [], "ba": []}
    failures: dict[str, list[float]] = {"ab": [], "ba": []}

    def lock(first: str, second: str) -> None:
        name = first + second
        starts[name].append(time.monotonic())
        touch = "MATCH (n:Resource {client: $owner, id: $id}) SET n.by = $by"
        unit_of = client if name == "ab" else other
        try:
            neo4j.run(unit_of, touch, {"id": first, "by": name, "owner": client})
            if len(starts[name]) == 1:
                both_locked_one.wait()
            neo4j.run(unit_of, touch, {"id": second, "by": name, "owner": client})
        except TransientError:
            failures[name].append(time.monotonic())
            raise

    try:
        with ThreadPoolExecutor(2) as pool:
            done = [pool.submit(neo4j.write_unit, unit_of, lambda f=f, s=s: lock(f, s))
                    for unit_of, f, s in ((client, "a", "b"), (other, "b", "a"))]
            for future in done:
                future.result(timeout=60)  # both committed in the end
        assert failures["ab"] or failures["ba"], "neither was aborted as a deadlock"
        for name, failed in failures.items():
            for attempt, at in enumerate(failed):
                # The driver's default waits 0.8-1.2 s before the first retry.
                assert starts[name][attempt + 1] - at < 0.5
        assert len(neo4j.run(client, "MATCH (n:Resource {client: $client}) "
                                     "WHERE n.by IN ['ab', 'ba'] RETURN n.id")) == 2
    finally:
        neo4j.drop(client)
        neo4j.drop(other)  # its write turn


def test_a_clients_units_take_turns_and_never_deadlock_each_other(
        neo4j: Neo4jStore, client_ids: list[str]) -> None:
    # What the loud client's two workers did in bench/e2e.py: units of one client that
    # touch the same nodes in opposite orders. The second waits for the first's commit.
    client = client_ids[0]
    neo4j.run(client, "UNWIND ['a', 'b'] AS id MERGE (n:Resource {client: $client, id: id})")
    touch = "MATCH (n:Resource {client: $client, id: $id}) SET n.by = $by"
    events: list[tuple[str, str]] = []
    first_holds = threading.Event()

    def unit(first: str, second: str) -> None:
        neo4j.run(client, touch, {"id": first, "by": first + second})
        events.append((first + second, "locked " + first))
        if first == "a":
            first_holds.set()
            time.sleep(1.0)  # long enough for the other unit to try its first node
        neo4j.run(client, touch, {"id": second, "by": first + second})

    def after_the_first_holds() -> None:
        first_holds.wait(20)
        neo4j.write_unit(client, lambda: unit("b", "a"))

    try:
        with ThreadPoolExecutor(2) as pool:
            done = [pool.submit(neo4j.write_unit, client, lambda: unit("a", "b")),
                    pool.submit(after_the_first_holds)]
            for future in done:
                future.result(timeout=60)  # no TransientError (deadlock) reached here
        # One attempt each, in turn: the second unit locked nothing while the first ran.
        assert events == [("ab", "locked a"), ("ba", "locked b")], events
        assert neo4j.run(client, "MATCH (n:Resource {client: $client}) "
                                 "RETURN collect(DISTINCT n.by)") == [[["ba"]]]
    finally:
        neo4j.drop(client)


def test_database_tenancy_is_refused_on_community_when_the_store_is_made(
        jvm_stack: Settings) -> None:
    with pytest.raises(GraphConfigurationError, match="needs Neo4j Enterprise or Aura"):
        open_store(jvm_stack.model_copy(update={"graph_tenancy": "database"}))


def test_a_store_made_before_neo4j_is_up_checks_the_edition_before_its_first_write(
        ) -> None:
    store = Neo4jStore(f"bolt://127.0.0.1:{free_port()}", user="neo4j", password="",
                       tenancy="database", attempts=1, driver_retry_s=0)
    try:
        assert store.edition is None  # not known yet, and no outage for that
        with pytest.raises(GraphUnavailableError, match="unreachable"):
            store.ensure_schema("some-client")
    finally:
        store.close()


def test_a_non_bolt_address_for_neo4j_is_a_settings_error_not_an_outage(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="not a Neo4j address"):
        Settings(graph_backend="neo4j", graph_uri="redis://127.0.0.1:6379")
    monkeypatch.setenv("KGCELERY_GRAPH_BACKEND", "neo4j")
    monkeypatch.setenv("KGCELERY_GRAPH_URI", "http://127.0.0.1:7474")
    result = CliRunner().invoke(main, ["graph", "stats", "some-client"])
    assert result.exit_code == 2, result.output
    assert "not a Neo4j address" in result.output


def test_an_unreachable_server_is_transient_after_bounded_retries() -> None:
    store = Neo4jStore(f"bolt://127.0.0.1:{free_port()}", user="neo4j", password="x",
                       tenancy="property", attempts=2, backoff_s=0.01, driver_retry_s=0)
    try:
        with pytest.raises(GraphUnavailableError, match="failed 2 times"):
            store.run("some-client", "RETURN 1")
        assert store.ping() is False
    finally:
        store.close()


def test_workers_creating_the_schema_at_once_all_succeed(neo4j: Neo4jStore) -> None:
    """Workers of several clients start together on a fresh Neo4j: ``IF NOT EXISTS``
    alone lets the loser of a race fail ("equivalent schema rule already exists")."""

    def make_schema(_: int) -> None:
        store = Neo4jStore(neo4j.uri, user="neo4j", password="", tenancy="property")
        try:
            store.ensure_schema("race-client")
        finally:
            store.close()

    names = [statement.split()[2] for statement in schema_statements("property")]
    for _ in range(3):
        for statement in schema_statements("property"):
            kind = statement.split()[1]
            neo4j._execute(f"DROP {kind} {statement.split()[2]} IF EXISTS", {}, neo4j.database)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(make_schema, range(8)))
    found = {row[0] for row in neo4j.run("race-client", "SHOW INDEXES YIELD name RETURN name")}
    assert set(names) <= found


def test_a_worker_with_database_tenancy_on_community_stops_at_start(
        jvm_stack: Settings, tmp_path: Path) -> None:
    settings = jvm_stack.model_copy(update={"graph_tenancy": "database"})
    worker = ManagedProcess(
        "worker-database-tenancy",
        [sys.executable, "-m", "celery", "-A", "kgcelery.app", "worker", "-Q", "client.x-y-z",
         "--concurrency", "1", "--without-mingle", "--without-gossip"],
        run_dir=tmp_path / "run", log_dir=tmp_path / "logs", env=settings.child_env())
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while worker.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.returncode() == 2, worker.tail()
        assert "needs Neo4j Enterprise or Aura" in worker.tail(50)
    finally:
        worker.stop()
