"""Unit tests of the statement builders: allow-list, tenancy scoping, parameters, DDL."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from kgcelery.graph import cypher, cypher_signals, cypher_state
from kgcelery.graph.cypher import OWN_GRAPH, SHARED_GRAPH, Scope
from kgcelery.graph.falkordb_store import cypher_literal, params_header
from kgcelery.graph.neo4j_store import CREATE_DATABASE, schema_statements
from kgcelery.model.objects import KIND_LABELS, RELATIONSHIPS
from kgcelery.normalize.common import RANK_ABSENT, RANK_DELETE, RANK_UPSERT, version

Builder = Callable[[Scope], str]
LABELS = sorted({*KIND_LABELS.values(), "Resource"})

#: Every statement the writers send, for one scope.
BUILDERS: list[Builder] = [
    lambda s: cypher.write_events(s), lambda s: cypher.known_events(s),
    lambda s: cypher.create_events(s),
    lambda s: cypher.stale_objects(s),
    lambda s: cypher.update_object_uids(s),
    *(lambda s, label=label: cypher.merge_objects(s, label) for label in LABELS),
    *(lambda s, label=label: cypher_state.upsert_resources(s, label) for label in LABELS),
    *(lambda s, flag=flag: cypher_state.tombstone_resources(s, flag) for flag in (True, False)),
    lambda s: cypher_state.retract_scheduling(s), lambda s: cypher_state.assert_scheduling(s),
    lambda s: cypher_state.retract_owners(s),
    lambda s: cypher_state.assert_owners(s),
    *(lambda s, flag=flag: cypher_state.service_selection(s, flag) for flag in (True, False)),
    *(lambda s, flag=flag: cypher_state.pod_selection(s, flag) for flag in (True, False)),
    lambda s: cypher_state.upsert_containers(s), lambda s: cypher_state.mark_snapshot(s),
    lambda s: cypher_state.find_by_uid(s), lambda s: cypher_state.adoptable_placeholders(s),
    lambda s: cypher_state.delete_adopted(s),
    *(lambda s, rel=rel, out=out: cypher_state.adopt_edges(s, rel, out)
      for rel in ("SCHEDULED_ON", "OWNS", "SELECTS") for out in (True, False)),
    *(lambda s, rel=rel: cypher_state.write_edges(s, rel, "Pod", "Node")
      for rel in ("SCHEDULED_ON", "OWNS", "SELECTS")),
    *(lambda s, flag=flag: cypher_signals.write_alerts(s, flag) for flag in (True, False)),
    *(lambda s, label=label: cypher_signals.write_log_patterns(s, label)
      for label in ("Container", "Pod", "Node")),
    lambda s: cypher_signals.prune_log_batches(s),
    *(lambda s, rel=rel: cypher_state.remove_edges(s, rel)
      for rel in ("SCHEDULED_ON", "OWNS", "SELECTS")),
    lambda s: cypher_state.tombstone_resources(s, False, "PromTarget"),
    lambda s: cypher_state.upsert_targets(s), lambda s: cypher_state.retract_scrapes(s),
    lambda s: cypher_state.assert_scrapes(s),
]
#: A node pattern with labels: (var:Label[:Label] {props}) or (var:Label).
NODE_PATTERN = re.compile(r"\((\w+)((?::\w+)+)(?: \{([^}]*)\})?\)")


@pytest.mark.parametrize("build", BUILDERS)
def test_a_shared_database_scopes_every_labelled_pattern_by_client(build: Builder) -> None:
    statement = build(SHARED_GRAPH)
    patterns = NODE_PATTERN.findall(statement)
    assert patterns, statement
    for var, _labels, props in patterns:
        assert "client: $client" in props, f"({var}) is not scoped in: {statement}"
    # Unlabelled patterns only reach nodes through edges of scoped ones.
    assert build(OWN_GRAPH).count("$client") == 0


@pytest.mark.parametrize("build", BUILDERS)
def test_statements_name_only_allow_listed_labels_and_relationships(build: Builder) -> None:
    statement = build(OWN_GRAPH)
    for _var, labels, _props in NODE_PATTERN.findall(statement):
        for label in labels.strip(":").split(":"):
            assert label in cypher.LABELS, statement
    for rel in re.findall(r"\[\w*:(\w+)", statement):
        assert rel in RELATIONSHIPS
    # Values travel as parameters: the only literals are fixed words of the model.
    literals = set(re.findall(r"'([^']*)'", statement))
    assert literals <= {"", "Namespace/", "uid:", "UPSERT", "DELETE", "Namespace", "Node",
                        "Container", "Cluster", "Pod", "delete", "snapshot", "tombstone",
                        "0", "~"}, literals


def test_labels_and_relationships_outside_the_allow_list_are_refused() -> None:
    with pytest.raises(ValueError, match="allow-list"):
        cypher.checked_label("Pod) DETACH DELETE (x")
    with pytest.raises(ValueError, match="allow-list"):
        cypher_state.write_edges(OWN_GRAPH, "LIKES", "Pod", "Node")
    with pytest.raises(ValueError, match="allow-list"):
        OWN_GRAPH.object_key("n", "Secret", "r.id")


def test_objects_merge_with_their_kind_label_in_the_pattern() -> None:
    assert OWN_GRAPH.object_key("n", "Pod", "r.id") == "(n:Resource:Pod {id: r.id})"
    assert SHARED_GRAPH.object_key("n", "Resource", "r.id") == (
        "(n:Resource {client: $client, id: r.id})")


@pytest.mark.parametrize(("tenancy", "expected"), [
    ("database", ["CREATE CONSTRAINT resource_key IF NOT EXISTS FOR (n:Resource) "
                  "REQUIRE n.id IS UNIQUE",
                  "CREATE INDEX resource_uid IF NOT EXISTS FOR (n:Resource) ON (n.uid)"]),
    ("property", ["CREATE CONSTRAINT resource_key IF NOT EXISTS FOR (n:Resource) "
                  "REQUIRE (n.client, n.id) IS UNIQUE",
                  "CREATE INDEX resource_uid IF NOT EXISTS FOR (n:Resource) "
                  "ON (n.client, n.uid)"]),
])
def test_neo4j_schema_statements(tenancy: str, expected: list[str]) -> None:
    statements = schema_statements(tenancy)  # type: ignore[arg-type]
    for statement in expected:
        assert statement in statements
    # One uniqueness constraint per keyed label (Event ids are unique per client too),
    # and the clients' write turns (neo4j_store.WRITE_TURN).
    assert sum("CONSTRAINT" in s for s in statements) == len(cypher.KEYED_LABELS) + 1
    assert all("IF NOT EXISTS" in s for s in statements)


def test_neo4j_databases_are_created_by_parameter_not_by_text() -> None:
    assert CREATE_DATABASE == "CREATE DATABASE $name IF NOT EXISTS WAIT"


def test_falkordb_parameters_are_encoded_as_the_client_would() -> None:
    assert cypher_literal({"a": 'say "hi" \\ bye', "b": [1, 2.5, None, True, False]}) == (
        '{`a`:"say \\"hi\\" \\\\ bye",`b`:[1,2.5,null,true,false]}')
    assert params_header({"rows": [], "now": 1.5}) == "CYPHER rows=[] now=1.5 "
    assert params_header({}) == ""
    with pytest.raises(TypeError):
        cypher_literal({"a": object()})


def test_versions_sort_by_time_then_resource_version_then_rank() -> None:
    assert version(10.0, "9") < version(10.0, "10") < version(11.0, "1")
    assert version(10.0, rank=RANK_ABSENT) < version(10.0, rank=RANK_UPSERT) < version(
        10.0, rank=RANK_DELETE)
    assert version(None) < version(0.001)
    # Different content at the same time and resourceVersion never ties.
    assert version(10.0, "5", content="a") != version(10.0, "5", content="b")


def test_statements_run_together_each_read_their_own_parameters() -> None:
    joined = cypher.together((
        "UNWIND $rows AS r MATCH (n:Resource {id: r.id}) SET n.at = $cluster",
        "UNWIND $rows AS r MATCH (n:Resource {client: $client, id: r.id}) SET n.x = 1",
        "UNWIND $uids AS u MATCH (n:Resource {uid: u}) RETURN u"), ("cluster",))
    assert joined == (
        "UNWIND $rows0 AS r MATCH (n:Resource {id: r.id}) SET n.at = $cluster "
        "WITH count(*) AS done1 "
        "UNWIND $rows1 AS r MATCH (n:Resource {client: $client, id: r.id}) SET n.x = 1 "
        "WITH count(*) AS done2 UNWIND $uids2 AS u MATCH (n:Resource {uid: u}) RETURN u")
    with pytest.raises(ValueError, match="only the last"):
        cypher.together(("MATCH (n) RETURN n", "MATCH (n) SET n.x = 1"))


def test_a_statement_never_joins_one_that_wrote_the_edges_it_reads() -> None:
    implied = (cypher_state.retract_scheduling(OWN_GRAPH),
               cypher_state.assert_scheduling(OWN_GRAPH),
               cypher_state.retract_owners(OWN_GRAPH), cypher_state.assert_owners(OWN_GRAPH),
               cypher_state.service_selection(OWN_GRAPH, True),
               cypher_state.service_selection(OWN_GRAPH, False),
               cypher_state.pod_selection(OWN_GRAPH, True),
               cypher_state.pod_selection(OWN_GRAPH, False),
               cypher_state.upsert_containers(OWN_GRAPH),
               cypher_state.adoptable_placeholders(OWN_GRAPH))
    # The pods' selection reads SELECTS edges the services' selection may have created.
    assert cypher.sittings(implied) == [(0, 6), (6, 10)]
    edges = cypher_state.write_edges(OWN_GRAPH, "OWNS", "Deployment", "ReplicaSet")
    assert cypher.sittings((edges, edges)) == [(0, 1), (1, 2)]
    # Namespace links go from each part's own objects.
    assert cypher.sittings((cypher.merge_objects(OWN_GRAPH, "Pod"),
                            cypher.merge_objects(OWN_GRAPH, "Node"))) == [(0, 2)]
    assert cypher.sittings(()) == []
    # An edge of any type may be one an earlier part created.
    assert cypher.sittings((edges, "MATCH (n:Resource)-[e]->() RETURN e")) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="sittings"):
        cypher.together((edges, edges))
