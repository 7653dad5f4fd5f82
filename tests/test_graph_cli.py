"""``kgcelery graph stats`` and ``kgcelery timeline`` on a small graph: output and errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kgcelery.cli import EXIT_FAILURE, EXIT_UNAVAILABLE, EXIT_UNKNOWN_CLIENT, main
from kgcelery.embedded.stack import free_port
from kgcelery.graph import GraphStore
from kgcelery.graph.queries import build_timeline, object_ref
from kgcelery.graph.writer import write_alerts, write_events
from kgcelery.graph.writer_state import write_resources
from kgcelery.normalize.alerts import normalize_alert
from kgcelery.normalize.events import normalize_event
from kgcelery.settings import Settings
from tests.graph_helpers import pod, records

pytestmark = pytest.mark.integration

T1, T2, T3 = "2026-01-12T15:01:00Z", "2026-01-12T15:02:00Z", "2026-01-12T15:03:00Z"


@pytest.fixture
def env(stack_settings: Settings) -> dict[str, str]:
    return stack_settings.to_env()


def seed(graph: GraphStore, client: str) -> None:
    write_resources(graph, client, records(
        pod("web-1", T1, owner="web-7d"),
        {"op": "UPSERT", "at": T1, "kind": "ReplicaSet", "namespace": "shop", "name": "web-7d",
         "ownerRefs": [{"kind": "Deployment", "name": "web"}]},
        {"op": "UPSERT", "at": T1, "kind": "Node", "name": "node-a"}))
    write_events(graph, client, normalize_event(
        {"metadata": {"uid": "e1", "namespace": "shop"}, "reason": "BackOff", "type": "Warning",
         "message": "Back-off restarting failed container", "count": 7, "firstTimestamp": T2,
         "lastTimestamp": T3, "involvedObject": {"kind": "Pod", "namespace": "shop",
                                                 "name": "web-1"}})
                 + normalize_event(
        {"metadata": {"uid": "e2"}, "reason": "NodeNotReady", "type": "Warning", "count": 1,
         "lastTimestamp": T1, "involvedObject": {"kind": "Node", "name": "node-a"}})
                 + normalize_event(
        {"metadata": {"uid": "e3", "namespace": "shop"}, "reason": "ScalingReplicaSet",
         "lastTimestamp": T1, "involvedObject": {"kind": "Deployment", "namespace": "shop",
                                                 "name": "web"}}))
    write_alerts(graph, client, normalize_alert(
        {"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "web-1",
                    "severity": "critical"}, "startsAt": T2,
         "annotations": {"summary": "web-1 keeps restarting"}}))


def test_stats_count_labels_and_relationships(graph: GraphStore, client_ids: list[str],
                                              env: dict[str, str]) -> None:
    client = client_ids[0]
    seed(graph, client)
    result = CliRunner().invoke(main, ["graph", "stats", client, "--json"], env=env)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["nodes"]["Event"] == 3 and stats["nodes"]["Alert"] == 1
    assert stats["relationships"]["OWNS"] == {"count": 2, "gone": 0}
    table = CliRunner().invoke(main, ["graph", "stats", client], env=env)
    assert "ABOUT" in table.output and "Event" in table.output


def test_the_timeline_walks_the_node_and_the_owner_chain(graph: GraphStore,
                                                         client_ids: list[str],
                                                         env: dict[str, str]) -> None:
    client = client_ids[0]
    seed(graph, client)
    result = CliRunner().invoke(main, ["timeline", client, "pod/shop/web-1", "--json"], env=env)
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.output)
    assert [(s["role"], s["id"]) for s in timeline["surroundings"]] == [
        ("node", "Node/node-a"), ("owner", "ReplicaSet/shop/web-7d"),
        ("owner", "Deployment/shop/web")]
    whats = [(e["role"], e["what"], e["summary"].split(":")[0]) for e in timeline["timeline"]]
    assert ("node", "event", "NodeNotReady") in whats
    assert ("owner", "event", "ScalingReplicaSet") in whats
    assert ("self", "alert firing", "KubePodCrashLooping") in whats
    assert ("self", "event", "BackOff") in whats
    table = CliRunner().invoke(main, ["timeline", client, "pod/shop/web-1"], env=env)
    assert table.exit_code == 0
    assert "Pod/shop/web-1" in table.output and "[Node/node-a] NodeNotReady" in table.output


def test_errors_say_what_happened(client_ids: list[str], env: dict[str, str]) -> None:
    runner = CliRunner()
    unknown = runner.invoke(main, ["timeline", client_ids[0], "pod/shop/nope"], env=env)
    assert unknown.exit_code == EXIT_FAILURE
    assert "not in the graph" in unknown.output and "graph stats" in unknown.output
    bad = runner.invoke(main, ["graph", "stats", "Not_A_Client"], env=env)
    assert bad.exit_code == EXIT_UNKNOWN_CLIENT and "invalid client id" in bad.output
    ref = runner.invoke(main, ["timeline", client_ids[0], "web-1"], env=env)
    assert ref.exit_code == EXIT_FAILURE and "kind/namespace/name" in ref.output
    empty = runner.invoke(main, ["graph", "stats", client_ids[1]], env=env)
    assert empty.exit_code == 0 and "empty" in empty.output
    down = runner.invoke(main, ["graph", "stats", client_ids[1]],
                         env={**env, "KGCELERY_GRAPH_URI": f"redis://127.0.0.1:{free_port()}"})
    assert down.exit_code == EXIT_UNAVAILABLE and "unreachable" in down.output


def test_object_references_and_timeline_order() -> None:
    assert object_ref("pod/shop/web-1") == "Pod/shop/web-1"
    assert object_ref("Node/n1") == "Node/n1"
    assert object_ref("deploy/shop/web") == "Deployment/shop/web"
    related = [("self", "Pod/a/p"), ("node", "Node/n")]
    entries = build_timeline(related, {"Pod/a/p": {"kind": "Pod", "created_at": 5.0}},
                             [["Node/n", {"first_seen": 3.0, "reason": "X", "message": "m"}],
                              ["Pod/a/p", {"first_seen": None, "reason": "Y", "message": "n"}]],
                             [], [])
    assert [(e.time, e.role, e.what) for e in entries] == [
        (3.0, "node", "event"), (5.0, "self", "created"), (None, "self", "event")]
