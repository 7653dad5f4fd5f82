"""The ingest tasks in real Celery workers: dead letters, retries, tombstones, isolation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kgcelery.app import create_app
from kgcelery.bridge.batcher import Batch
from kgcelery.broker.base import QueueWork
from kgcelery.broker.redis_broker import RedisBroker
from kgcelery.deadletter import headers_of
from kgcelery.embedded.stack import free_port
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.graph_helpers import count, difference, dump, edges_of, mine, pod, props_of
from tests.helpers import read_topic, wait_for
from tests.ingest_helpers import ingest_worker, send, wait_stable

# Also on the kafka-neo4j stack: Neo4j Community keeps every client in one database.
pytestmark = [pytest.mark.integration, pytest.mark.both_stacks]

T1, T2 = "2026-01-12T15:01:00Z", "2026-01-12T15:02:00Z"
EVENT: dict[str, Any] = {
    "metadata": {"uid": "ev-1", "namespace": "shop", "name": "web-1.1"}, "reason": "BackOff",
    "type": "Warning", "message": "Back-off restarting failed container", "count": 4,
    "lastTimestamp": T1, "involvedObject": {"kind": "Pod", "namespace": "shop",
                                            "name": "web-1", "uid": "uid-web-1"}}


def test_unusable_records_are_dead_lettered_and_the_rest_written(
        stack_settings: Settings, tmp_path: Path, graph: GraphStore,
        client_ids: list[str]) -> None:
    client = client_ids[0]
    records: list[Any] = [EVENT, "not an event", {"reason": "nothing to link"}]
    origins = [["raw.k8s.events", 1, 40 + i, f"event::{i}"] for i in range(3)]
    with ingest_worker(stack_settings, tmp_path, [client]) as (settings, app):
        send(app, "event", client, records, origins)
        send(app, "resource", client, [pod("web-1", T1), {"op": "UPSERT"}],
             [["state.k8s.resource", 0, 7, "pod::x"], ["state.k8s.resource", 0, 8, "pod::y"]])
        letters = read_topic(settings, settings.dlq_normalized_topic, expect=3, timeout=60)
    assert count(graph, client, "Event") == 1 and count(graph, client, "Pod") == 1
    found = sorted((headers_of(m)["kg-reason"], headers_of(m)["kg-source-offset"],
                    (m.key() or b"").decode()) for m in letters)
    assert found == [("unrecognized-event", "41", f"{client}::event::1"),
                     ("unrecognized-event", "42", f"{client}::event::2"),
                     ("unrecognized-resource", "8", f"{client}::pod::y")]
    by_offset = {headers_of(m)["kg-source-offset"]: m for m in letters}
    assert json.loads(by_offset["41"].value()) == "not an event"  # the record, as sent
    assert headers_of(by_offset["41"])["kg-client"] == client


def test_a_graph_that_stays_down_dead_letters_the_batch_as_retries_exhausted(
        stack_settings: Settings, tmp_path: Path, client_ids: list[str]) -> None:
    client = client_ids[0]
    scheme = "bolt" if stack_settings.graph_backend == "neo4j" else "redis"
    nowhere = f"{scheme}://127.0.0.1:{free_port()}"
    with ingest_worker(stack_settings, tmp_path, [client], graph_uri=nowhere,
                       task_max_retries=2, task_retry_backoff_s=0.1,
                       task_retry_backoff_max_s=0.2) as (settings, app):
        send(app, "event", client, [EVENT, "garbage"],
             [["raw.k8s.events", 0, 5, "event::a"], ["raw.k8s.events", 0, 6, "event::b"]])
        letters = read_topic(settings, settings.dlq_normalized_topic, expect=2, timeout=60)
    reasons = sorted(headers_of(m)["kg-reason"] for m in letters)
    # The good record after its retries; the bad one once, with its own reason.
    assert reasons == ["retries-exhausted", "unrecognized-event"]
    exhausted = next(m for m in letters if headers_of(m)["kg-reason"] == "retries-exhausted")
    assert "after 2 retries" in headers_of(exhausted)["kg-error"]
    assert json.loads(exhausted.value()) == EVENT


def test_resource_tombstones_delete_what_their_key_names(
        stack_settings: Settings, tmp_path: Path, graph: GraphStore,
        client_ids: list[str]) -> None:
    client = client_ids[0]
    with ingest_worker(stack_settings, tmp_path, [client]) as (_, app):
        send(app, "resource", client, [pod("web-1", T1), pod("web-2", T1), pod("web-3", T1)])
        wait_stable(graph, client, f"MATCH (p:Pod{mine(graph)}) RETURN count(p)", lambda n: n == 3,
                    what="three pods")
        send(app, "resource", client, [None, None], [["state.k8s.resource", 0, 9, "pod::uid-web-1"],
                                                     ["state.k8s.resource", 1, 3,
                                                      "Pod/shop/web-2"]])
        wait_stable(graph, client,
                    f"MATCH (p:Pod{mine(graph)}) WHERE p.gone = true RETURN count(p)",
                    lambda n: n == 2, what="two pods gone")
    assert props_of(graph, client, "Pod/shop/web-3")["gone"] is False
    assert props_of(graph, client, "Pod/shop/web-1")["del_by"] == "tombstone"


def test_two_clients_with_colliding_names_and_uids_get_two_graphs(
        stack_settings: Settings, tmp_path: Path, graph: GraphStore,
        client_ids: list[str]) -> None:
    a, b = client_ids[:2]
    service = {"op": "UPSERT", "at": T1, "kind": "Service", "namespace": "shop", "name": "web",
               "uid": "svc-uid", "serviceSelector": {"app": "web"}}
    shared = [pod("web-1", T1), service]
    with ingest_worker(stack_settings, tmp_path, [a, b]) as (_, app):
        for client in (a, b):
            send(app, "resource", client, shared)
            send(app, "log", client, [{"namespace": "shop", "pod_name": "web-1",
                                       "container_name": "web", "message": "ERROR boom",
                                       "timestamp": T1}])
        # Only client a: a newer event, a deletion and an alert.
        send(app, "event", a, [EVENT])
        send(app, "resource", a, [pod("web-1", T2, op="DELETE")])
        send(app, "alert", a, [{"labels": {"alertname": "PodDown", "namespace": "shop",
                                           "pod": "web-1"}, "startsAt": T1}])
        for client in (a, b):
            wait_stable(graph, client, f"MATCH (c:Container{mine(graph)}) RETURN sum(c.log_lines)",
                        lambda n: n == 1, what=f"{client}'s log line")
        wait_stable(graph, a, f"MATCH (x:Alert{mine(graph)}) RETURN count(x)", lambda n: n == 1,
                    what="a's alert")
        wait_stable(graph, a, f"MATCH (p:Pod{mine(graph)}) WHERE p.id = 'Pod/shop/web-1' "
                                  "RETURN p.gone",
                    lambda gone: gone is True, what="a's pod gone")
    assert (count(graph, a, "Event"), count(graph, b, "Event")) == (1, 0)
    assert (count(graph, a, "Alert"), count(graph, b, "Alert")) == (1, 0)
    assert props_of(graph, b, "Pod/shop/web-1")["gone"] is False
    assert props_of(graph, a, "Pod/shop/web-1")["uid"] == props_of(graph, b,
                                                                    "Pod/shop/web-1")["uid"]
    # Each graph holds its own copy of the colliding objects, and nothing of the other.
    for client in (a, b):
        assert edges_of(graph, client, "SELECTS") == {("Service/shop/web", "Pod/shop/web-1")}
        assert graph.run(client, f"MATCH (lp:LogPattern{mine(graph)}) RETURN lp.count") == [[1]]
    assert dump(graph, a) != dump(graph, b)


def _small_bridge_tasks(client: str) -> list[Batch]:
    """A quiet client's backlog: tasks of a record or two, of three kinds, with one
    record no normalizer takes."""
    batches: list[Batch] = []
    for i in range(12):
        at = f"2026-01-12T15:{i:02d}:00Z"
        event = {**EVENT, "metadata": {**EVENT["metadata"], "uid": f"ev-{i}"},
                 "lastTimestamp": at, "count": i + 1}
        log = {"namespace": "shop", "pod_name": f"web-{i % 3}", "container_name": "app",
               "message": f"ERROR timeout after {i % 2}s", "timestamp": at}
        resource = pod(f"web-{i % 3}", at)
        for kind, values in (("event", [event]), ("log", [log, log]),
                             ("resource", [resource] if i % 4 else [resource, "junk"])):
            topic = f"raw.{kind}"
            origins = [[topic, 0, 10 * i + j, f"{kind}::{i}-{j}", 0]
                       for j in range(len(values))]
            batches.append(Batch(client, kind, 0.0, [json.dumps(v).encode() for v in values],
                                 origins))
    return batches


def test_a_backlog_taken_as_merged_tasks_writes_what_one_task_each_writes(
        stack_settings: Settings, tmp_path: Path, graph: GraphStore,
        client_ids: list[str]) -> None:
    # Queued before any worker runs: a backlog, as a thousand quiet clients leave it.
    merged, single = client_ids[:2]
    app = create_app(stack_settings)
    broker = RedisBroker(app, stack_settings.broker_url)
    for client, merge_max in ((merged, 500), (single, 0)):
        broker.publish(_small_bridge_tasks(client))
        with ingest_worker(stack_settings, tmp_path / client, [client],
                           worker_merge_max_records=merge_max) as (settings, _):
            wait_for(lambda client=client: broker.work_of(
                [client], default_records_per_task=1)[client] == QueueWork(0, 0, 0),
                timeout=60, what="the backlog written")
            letters = read_topic(settings, settings.dlq_normalized_topic, expect=3,
                                 timeout=30)
        assert sorted(headers_of(m)["kg-reason"] for m in letters) == [
            "unrecognized-resource"] * 3
        ran = (tmp_path / client).glob("*.log")
        names = {t for f in ran for t in ("ingest_batches", "ingest_logs")
                 if f"kgcelery.{t}[" in f.read_text()}
        assert names == ({"ingest_batches"} if client == merged else {"ingest_logs"})
    broker.close()
    app.close()
    assert count(graph, merged, "Event") == 12
    assert dump(graph, merged) == dump(graph, single), difference(
        dump(graph, merged), dump(graph, single))


def _tasks_run(log_dir: Path) -> set[str]:
    """The ingest tasks a worker's log says it ran."""
    text = "".join(f.read_text() for f in log_dir.glob("*.log"))
    names = ("ingest_clients", "ingest_batches", "ingest_logs")
    return {t for t in names if f"kgcelery.{t}[" in text}


def test_a_fleet_take_of_several_clients_writes_what_one_task_each_writes(
        stack_settings: Settings, tmp_path: Path, graph: GraphStore,
        client_ids: list[str]) -> None:
    # Queued before the worker runs: several quiet clients' backlogs on one fleet worker.
    *fleet, single = client_ids[:4]
    app = create_app(stack_settings)
    broker = RedisBroker(app, stack_settings.broker_url)
    for client in (*fleet, single):
        broker.publish(_small_bridge_tasks(client))
    for clients, logs, merge in ((fleet, tmp_path / "fleet", 16), ([single], tmp_path / "one", 1)):
        with ingest_worker(stack_settings, logs, clients, worker_merge_max_clients=merge,
                           worker_merge_max_records=500 if merge > 1 else 0) as (settings, _):
            wait_for(lambda clients=clients: set(broker.work_of(
                clients, default_records_per_task=1).values()) == {QueueWork(0, 0, 0)},
                timeout=60, what="the backlogs written")
            letters = read_topic(settings, settings.dlq_normalized_topic,
                                 expect=3 * len(clients), timeout=30)
        # Every dead letter keyed to its own client, however the take mixed them.
        assert sorted((m.key() or b"").decode().split("::")[0] for m in letters) == sorted(
            clients * 3)
    broker.close()
    app.close()
    assert _tasks_run(tmp_path / "fleet") == {"ingest_clients"}
    assert _tasks_run(tmp_path / "one") == {"ingest_logs"}
    for client in fleet:
        assert count(graph, client, "Event") == 12
        assert dump(graph, client) == dump(graph, single), difference(
            dump(graph, client), dump(graph, single))


def test_a_client_of_a_fleet_take_whose_graph_is_away_is_retried_on_its_own(
        stack_settings: Settings, tmp_path: Path, client_ids: list[str]) -> None:
    clients = client_ids[:2]
    scheme = "bolt" if stack_settings.graph_backend == "neo4j" else "redis"
    nowhere = f"{scheme}://127.0.0.1:{free_port()}"
    app = create_app(stack_settings)
    broker = RedisBroker(app, stack_settings.broker_url)
    for client in clients:
        broker.publish([Batch(client, "event", 0.0, [json.dumps(EVENT).encode()],
                              [["raw.k8s.events", 0, 3, "event::a", 0]])])
    with ingest_worker(stack_settings, tmp_path, clients, graph_uri=nowhere,
                       task_max_retries=1, task_retry_backoff_s=0.1,
                       task_retry_backoff_max_s=0.2) as (settings, _):
        letters = read_topic(settings, settings.dlq_normalized_topic, expect=2, timeout=60)
    broker.close()
    app.close()
    # Each client's part went back to its own queue as its own task, once, then out.
    assert _tasks_run(tmp_path) == {"ingest_clients", "ingest_batches"}
    assert sorted((headers_of(m)["kg-reason"], headers_of(m)["kg-client"]) for m in letters) \
        == [("retries-exhausted", client) for client in sorted(clients)]
    assert all("after 1 retries" in headers_of(m)["kg-error"] for m in letters)
