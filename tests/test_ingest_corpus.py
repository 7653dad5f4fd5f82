"""The real-world corpus through the real pipeline, then checked in the graph.

Events go Kafka -> bridge -> Celery -> worker; the other kinds are sent as the bridge
will send them (it routes only events so far) to the same real worker. Every bundle
of the corpus is a client of its own.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kgcelery.cli import main
from kgcelery.graph import GraphStore
from kgcelery.kafka import ensure_topics
from kgcelery.model.objects import object_id
from kgcelery.normalize.alerts import normalize_alert
from kgcelery.normalize.events import normalize_event
from kgcelery.settings import DEFAULT_TOPICS, Settings
from tests import corpus_data
from tests.graph_helpers import edges_of
from tests.helpers import Processes, produce
from tests.ingest_helpers import ingest_worker, send, wait_stable

pytestmark = pytest.mark.integration
_runs = itertools.count(1)


@dataclass
class Loaded:
    settings: Settings
    clients: dict[str, str]
    bundles: dict[str, corpus_data.Bundle]
    alerts: list[Any]


@pytest.fixture(scope="module")
def loaded(stack_settings: Settings, corpus: Path, tmp_path_factory: pytest.TempPathFactory,
           graph_store: GraphStore) -> Iterator[Loaded]:
    """Every bundle written, once, for the tests of this module to read."""
    n = next(_runs)
    prefix = f"corpus{n}-{os.getpid()}."
    settings = stack_settings.model_copy(update={
        "topics": {prefix + topic: kind for topic, kind in DEFAULT_TOPICS.items()},
        "dlq_raw_topic": prefix + "dlq.raw", "consumer_group": prefix + "bridge"})
    ensure_topics(settings)
    bundles = {"k3s": corpus_data.k3s(corpus), "crc": corpus_data.crc(corpus),
               "singles": corpus_data.singles(corpus),
               **{f"fx-{scenario.removeprefix('message-')}": bundle
                  for scenario, bundle in corpus_data.analyzer(corpus).items()}}
    clients = {name: f"corpus{n}-{name}" for name in [*bundles, "alerts"]}
    alerts = corpus_data.alerts(corpus)
    log_dir = tmp_path_factory.mktemp("corpus-logs")
    processes = Processes(settings, log_dir)
    with ingest_worker(settings, log_dir, list(clients.values())) as (_, app):
        try:
            produce(settings, settings.topics_of("registry")[0],
                    [(f"{c}::registry", {"client_id": c, "cluster_name": c, "version": "1"})
                     for c in clients.values()])
            processes.bridge()
            for name, bundle in bundles.items():
                client = clients[name]
                send(app, "resource", client, bundle.resources)
                send(app, "log", client, bundle.logs, batch=200)
                produce(settings, settings.topics_of("event")[0],
                        [(f"{client}::event::{i}", event) for i, event in enumerate(bundle.events)])
            send(app, "alert", clients["alerts"], alerts)
            for name, bundle in bundles.items():
                expected = len({e.id for raw in bundle.events for e in normalize_event(raw)})
                wait_stable(graph_store, clients[name], "MATCH (e:Event) RETURN count(e)",
                            functools.partial(operator.eq, expected), timeout=90,
                            what=f"{expected} events of {name}")
            expected_alerts = len({a.id for raw in alerts for a in normalize_alert(raw)})
            wait_stable(graph_store, clients["alerts"], "MATCH (a:Alert) RETURN count(a)",
                        lambda found: found == expected_alerts, what="every alert")
            # Logs and resources were queued before the events: they are done by now,
            # but the worker may still be on the last batch; wait for the log lines.
            lines = len(bundles["crc"].logs)
            wait_stable(graph_store, clients["crc"],
                        "MATCH (c:Container) RETURN sum(c.log_lines)",
                        lambda found: found == lines, what="every crc log line counted")
            yield Loaded(settings, clients, bundles, alerts)
        finally:
            processes.stop_all()


@pytest.fixture(scope="module")
def graph_store(stack_settings: Settings) -> Iterator[GraphStore]:
    from kgcelery.graph import open_store

    store = open_store(stack_settings)
    yield store
    store.close()


def test_every_event_is_linked_to_the_object_it_is_about(loaded: Loaded,
                                                         graph_store: GraphStore) -> None:
    for name, bundle in loaded.bundles.items():
        client = loaded.clients[name]
        about = {event_id: (kind, ns, obj) for event_id, kind, ns, obj in graph_store.run(
            client, "MATCH (e:Event)-[:ABOUT]->(o:Resource) "
                    "RETURN e.id, o.kind, o.namespace, o.name")}
        for raw in bundle.events:
            frame = raw.get("object", raw)
            ref = frame["involvedObject"]
            [event] = normalize_event(raw)
            namespace = "" if ref["kind"] in ("Node", "Namespace") else ref.get(
                "namespace") or frame["metadata"].get("namespace", "")
            assert about[event.id] == (ref["kind"], namespace, ref["name"]), (name, event.id)


def test_pods_are_scheduled_on_their_nodes_and_owned_by_their_owners(
        loaded: Loaded, graph_store: GraphStore) -> None:
    for name, bundle in loaded.bundles.items():
        client = loaded.clients[name]
        scheduled = edges_of(graph_store, client, "SCHEDULED_ON")
        owns = edges_of(graph_store, client, "OWNS")
        pods = corpus_data.objects_of_kind(bundle, "Pod")
        for pod in pods:
            meta = pod["metadata"]
            pid = object_id("Pod", meta["namespace"], meta["name"])
            node = pod["spec"].get("nodeName")
            if node:
                assert (pid, f"Node/{node}") in scheduled, (name, pid)
            for ref in meta.get("ownerReferences", []):
                assert (object_id(ref["kind"], meta["namespace"], ref["name"]), pid) in owns
    # The chains of the OpenShift bundle: Deployment -> ReplicaSet -> Pod -> Node.
    crc = loaded.clients["crc"]
    assert graph_store.run(crc, "MATCH (d:Deployment)-[:OWNS]->(:ReplicaSet)-[:OWNS]->(p:Pod)"
                                "-[:SCHEDULED_ON]->(n:Node) RETURN d.name, p.name, n.name "
                                "ORDER BY p.name") == [
        ["apiserver", "apiserver-6cc55c5897-z6m6c", "crc"],
        ["k6-tracing", "k6-tracing-564cf6dc8b-hpxd2", "crc"]]


def test_services_select_exactly_the_pods_their_selectors_match(
        loaded: Loaded, graph_store: GraphStore) -> None:
    for name, bundle in loaded.bundles.items():
        expected = set()
        pods = corpus_data.objects_of_kind(bundle, "Pod")
        for service in corpus_data.objects_of_kind(bundle, "Service"):
            selector = service["spec"].get("selector") or {}
            namespace = service["metadata"]["namespace"]
            for pod in pods:
                labels = pod["metadata"].get("labels") or {}
                if (selector and pod["metadata"]["namespace"] == namespace
                        and all(labels.get(k) == v for k, v in selector.items())):
                    expected.add((object_id("Service", namespace, service["metadata"]["name"]),
                                  object_id("Pod", namespace, pod["metadata"]["name"])))
        assert edges_of(graph_store, loaded.clients[name], "SELECTS") == expected, name
    assert ("Service/default/backend-api-service", "Pod/default/backend-api-75fb46b7bd-xtkrh") \
        in edges_of(graph_store, loaded.clients["k3s"], "SELECTS")


def test_alerts_are_about_their_objects(loaded: Loaded, graph_store: GraphStore) -> None:
    client = loaded.clients["alerts"]
    about = dict(graph_store.run(client, "MATCH (a:Alert)-[:ABOUT]->(o) RETURN a.id, o.id"))
    records = [a for raw in loaded.alerts for a in normalize_alert(raw)]
    assert {a.id: a.object_id for a in records if a.object_id} == about
    # The ones the corpus names: a crash-looping pod, a deployment (not the exporter's
    # pod that its labels also carry), a Job, a service; KubeletDown names nothing.
    names = {(a.name, a.object_id) for a in records}
    assert ("KubePodCrashLooping", "Pod/pp1/dd1-0") in names
    assert ("KubeDeploymentReplicasMismatch", "Deployment/default/demo") in names
    assert ("KubeJobFailed", "Job/demo-project/dddd") in names
    assert ("TargetDown", "Service/openshift-monitoring/grafana") in names
    assert ("KubeletDown", "") in names


def test_logs_fold_into_patterns_per_container(loaded: Loaded, graph_store: GraphStore) -> None:
    k3s = loaded.clients["k3s"]
    rows = graph_store.run(k3s, "MATCH (p:Pod)-[:HAS_CONTAINER]->(c)-[e:EMITTED]->(lp) "
                                "RETURN p.name, c.name, lp.severity, lp.pattern, e.count "
                                "ORDER BY lp.pattern")
    assert rows == [
        ["backend-api-75fb46b7bd-xtkrh", "api-server", "warning",
         "Database connection failed after <num> retries", 2],
        ["backend-api-75fb46b7bd-xtkrh", "api-server", "error",
         "ERROR: Failed to connect to database: connection refused", 2]]
    crc = loaded.clients["crc"]
    patterns = dict(graph_store.run(crc, "MATCH (c:Container)-[e:EMITTED]->(lp) "
                                         "RETURN lp.pattern, e.count"))
    assert patterns["E strategy.go:<num>] \"Unhandled Error\" err=\"<*>\""] == 7
    # The journal of node oscar7 (a Loki response): kubelet errors, from the node.
    singles = loaded.clients["singles"]
    [[count]] = graph_store.run(singles, "MATCH (n:Node {id: 'Node/oscar7'})-[e:EMITTED]->"
                                         "(lp) WHERE lp.pattern STARTS WITH 'E pod_workers' "
                                         "RETURN e.count")
    assert count == 16


def test_container_state_keeps_the_last_termination(loaded: Loaded,
                                                    graph_store: GraphStore) -> None:
    rows = graph_store.run(loaded.clients["fx-oomkill-pod"],
                           "MATCH (p:Pod)-[:HAS_CONTAINER]->(c:Container) "
                           "WHERE c.last_termination_reason = 'OOMKilled' "
                           "RETURN p.name, c.last_exit_code, p.status")
    assert rows == [["oom-kill-job3-gbb89", 137, "Failed"]]


def test_the_cli_shows_the_stats_and_the_timeline_of_the_crashing_pod(
        loaded: Loaded, stack_settings: Settings) -> None:
    runner = CliRunner()
    env = stack_settings.to_env()
    k3s = loaded.clients["k3s"]
    stats = runner.invoke(main, ["graph", "stats", k3s, "--json"], env=env)
    assert stats.exit_code == 0, stats.output
    counts = json.loads(stats.output)
    assert counts["nodes"]["Event"] == 196 and counts["relationships"]["SELECTS"]["count"] >= 1
    table = runner.invoke(main, ["graph", "stats", k3s], env=env)
    assert table.exit_code == 0 and "SCHEDULED_ON" in table.output
    pod = "pod/default/backend-api-75fb46b7bd-xtkrh"
    result = runner.invoke(main, ["timeline", k3s, pod, "--json"], env=env)
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.output)
    assert timeline["object"]["waiting_reason"] == "CrashLoopBackOff"
    roles = {(item["role"], item["id"]) for item in timeline["surroundings"]}
    assert ("node", "Node/c9b7eea91") in roles
    assert ("owner", "ReplicaSet/default/backend-api-75fb46b7bd") in roles
    assert ("owner", "Deployment/default/backend-api") not in roles  # no RS object in the bundle
    assert ("service", "Service/default/backend-api-service") in roles
    whats = [(e["what"], e["summary"].split(":")[0]) for e in timeline["timeline"]]
    assert ("event", "BackOff") in whats and ("terminated", "terminated") in whats
    assert any(what == "log" and "Failed to connect" in summary
               for what, summary in [(e["what"], e["summary"]) for e in timeline["timeline"]])
    times = [e["time"] for e in timeline["timeline"] if e["time"] is not None]
    assert times == sorted(times)
    human = runner.invoke(main, ["timeline", k3s, pod, "--min-severity", "error"], env=env)
    assert human.exit_code == 0 and "BackOff" in human.output and "Pulled" not in human.output
