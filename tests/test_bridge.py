"""The bridge against real Tansu and Redis: every record to its queue, nothing lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from kgcelery.clients import queue_for
from kgcelery.control.registry import Registry
from kgcelery.deadletter import headers_of
from kgcelery.embedded.binaries import redis_server_binary
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port
from kgcelery.settings import Settings
from tests.conftest import topic_of
from tests.helpers import (
    Processes,
    all_committed,
    produce,
    queued_entities,
    queued_tasks,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

EVENT = {"kind": "Event", "apiVersion": "v1", "reason": "BackOff", "type": "Warning",
         "message": "Back-off restarting failed container api in pod api-0",
         "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "api-0", "uid": "u"},
         "metadata": {"namespace": "shop", "name": "api-0.1"}, "count": 3,
         "firstTimestamp": "2026-11-27T10:00:00Z", "lastTimestamp": "2026-11-27T10:05:00Z"}


def _stream(clients: list[str], count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` events spread over the clients, the first one ten times louder."""
    weights = [10] + [1] * (len(clients) - 1)
    order = [c for c, w in zip(clients, weights, strict=True) for _ in range(w)]
    return [(f"{order[i % len(order)]}::event::e{i}",
             {**EVENT, "metadata": {**EVENT["metadata"], "uid": f"e{i}"}}) for i in range(count)]


def _expected(stream: list[tuple[str, Any]]) -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {}
    for key, _ in stream:
        client, _, entity = key.partition("::")
        expected.setdefault(client, set()).add(entity)
    return expected


def _assert_all_queued(broker: redis.Redis, expected: dict[str, set[str]]) -> None:
    for client, entities in expected.items():
        queued = queued_entities(broker, queue_for(client))
        missing = entities - set(queued)
        print(f"{client}: produced {len(entities)}, queued {len(queued)} "
              f"({len(queued) - len(set(queued))} duplicates), missing {len(missing)}")
        assert not missing, f"{len(missing)} records of {client} never reached its queue"
        assert set(queued) == entities, "records of another client leaked into this queue"


def _register(registry: Registry, *clients: str) -> None:
    for client in clients:
        registry.register(client, cluster_name=f"{client}-cluster")


def test_every_kind_reaches_its_task_and_webhooks_are_exploded(
        test_settings: Settings, processes: Processes, registry: Registry,
        broker_redis: redis.Redis, client_ids: list[str]) -> None:
    client = client_ids[0]
    _register(registry, client)
    processes.bridge()
    webhook = {"version": "4", "receiver": "ops", "status": "firing", "groupKey": "g",
               "alerts": [{"status": "firing", "labels": {"alertname": "A", "pod": "p1"}},
                          {"status": "firing", "labels": {"alertname": "B", "pod": "p2"}}]}
    records = {
        "event": EVENT,
        "log": {"message": "boom", "kubernetes": {"pod_name": "api-0", "pod_namespace": "shop"}},
        "resource": {"op": "UPSERT", "kind": "Pod", "uid": "u", "namespace": "shop",
                     "name": "api-0"},
        "topology": {"op": "UPSERT", "id": "t1", "from": "Pod/shop/api-0",
                     "to": "Node/n1", "type": "RUNS_ON"},
        "alert": webhook,
    }
    for kind, value in records.items():
        produce(test_settings, topic_of(test_settings, kind), [(f"{client}::{kind}::x", value)])
    produce(test_settings, topic_of(test_settings, "resource"), [(f"{client}::pod::gone", None)])

    def tasks() -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for name, args in queued_tasks(broker_redis, queue_for(client)):
            assert args[0] == client
            found.setdefault(name, []).extend(args[1])
        return found

    found = wait_for(lambda: len(tasks()) == 5 and len(tasks()["kgcelery.ingest_resources"]) == 2
                     and tasks(), timeout=30, what="one task per kind")
    assert found["kgcelery.ingest_events"] == [EVENT]
    assert found["kgcelery.ingest_logs"] == [records["log"]]
    assert found["kgcelery.ingest_topology"] == [records["topology"]]
    assert sorted(found["kgcelery.ingest_resources"], key=str) == sorted(
        [records["resource"], None], key=str)
    alerts = found["kgcelery.ingest_alerts"]
    assert [a["labels"]["alertname"] for a in alerts] == ["A", "B"]
    assert all(a["receiver"] == "ops" for a in alerts)


def test_kill_9_midstream_then_restart_loses_nothing(
        test_settings: Settings, processes: Processes, registry: Registry,
        broker_redis: redis.Redis, client_ids: list[str]) -> None:
    clients = client_ids[:3]
    _register(registry, *clients)
    stream = _stream(clients, 60_000)
    produce(test_settings, topic_of(test_settings, "event"), stream)
    first = processes.bridge(name="bridge-1")
    loud = queue_for(clients[0])
    wait_for(lambda: broker_redis.llen(loud) >= 5, timeout=60, interval=0.02,
             what="the bridge to publish its first tasks")
    first.kill()
    queued_at_kill = sum(broker_redis.llen(queue_for(c)) for c in clients)
    print(f"killed the bridge with -9 after {queued_at_kill} tasks")
    topic = topic_of(test_settings, "event")
    assert not all_committed(test_settings, topic, len(stream)), \
        "the bridge finished before the kill; the test proves nothing"
    processes.bridge(name="bridge-2")
    wait_for(lambda: all_committed(test_settings, topic, len(stream)),
             timeout=90, what="the restarted bridge to catch up")
    _assert_all_queued(broker_redis, _expected(stream))


def test_rebalance_when_one_of_two_bridges_stops_midstream(
        test_settings: Settings, processes: Processes, registry: Registry,
        broker_redis: redis.Redis, client_ids: list[str]) -> None:
    clients = client_ids[:3]
    _register(registry, *clients)
    first = processes.bridge(name="bridge-a")
    second = processes.bridge(name="bridge-b")
    wait_for(lambda: first.tail(400).count("assigned") >= 2, timeout=30,
             what="the first bridge to share its partitions with the second")
    stream = _stream(clients, 60_000)
    produce(test_settings, topic_of(test_settings, "event"), stream[:20_000])
    wait_for(lambda: broker_redis.llen(queue_for(clients[0])) >= 5, timeout=60, interval=0.02,
             what="the bridges to publish")
    second.stop(signum=signal.SIGTERM)  # leaves the group; its partitions move over
    produce(test_settings, topic_of(test_settings, "event"), stream[20_000:])
    wait_for(lambda: all_committed(test_settings, topic_of(test_settings, "event"),
                                   len(stream)),
             timeout=90, what="the remaining bridge to catch up")
    _assert_all_queued(broker_redis, _expected(stream))
    assert "revoked" in second.tail(200)


def test_redis_down_pauses_then_resumes_with_nothing_lost(
        test_settings: Settings, processes: Processes, client_ids: list[str],
        tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "broker"
    data.mkdir()
    own_redis = ManagedProcess(
        "own-broker", [str(redis_server_binary(test_settings)), "--port", str(port),
                       "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
                       "--save", ""], run_dir=tmp_path / "run", log_dir=tmp_path / "logs")
    url = f"redis://127.0.0.1:{port}/0"
    settings = test_settings.model_copy(update={"broker_url": url, "registry_url": url})
    own_redis.start()
    try:
        client = redis.Redis.from_url(url)
        wait_for(lambda: _ping(client), timeout=10, what="the test's own Redis")
        clients = client_ids[:2]
        _register(Registry(client), *clients)
        bridge = processes.bridge(settings)
        stream = _stream(clients, 40_000)
        produce(settings, topic_of(settings, "event"), stream[:10_000])
        wait_for(lambda: client.llen(queue_for(clients[0])) >= 3, timeout=60,
                 what="first tasks")
        own_redis.stop()
        produce(settings, topic_of(settings, "event"), stream[10_000:])
        try:
            # The whole log: retries and registry warnings may follow the first notice.
            wait_for(lambda: "cannot publish" in bridge.tail(1_000_000), timeout=60,
                     what="the bridge to notice Redis is gone")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n-- bridge log --\n{bridge.tail(60)}") from None
        wait_for(lambda: bridge.tail(1_000_000).count("cannot publish") >= 2, timeout=30,
                 what="the bridge to retry publishing")
        assert bridge.alive(), "the bridge must wait for Redis, not crash"
        assert not all_committed(settings, topic_of(settings, "event"), len(stream))
        own_redis.start()
        wait_for(lambda: all_committed(settings, topic_of(settings, "event"), len(stream)),
                 timeout=90, what="the bridge to resume and catch up")
        _assert_all_queued(client, _expected(stream))
        assert bridge.alive()
    finally:
        own_redis.stop()


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_a_client_over_its_hard_limit_is_dead_lettered_not_lost(
        test_settings: Settings, processes: Processes, registry: Registry,
        broker_redis: redis.Redis, client_ids: list[str]) -> None:
    settings = test_settings.model_copy(update={"client_queue_hard_limit": 2,
                                                "batch_max_records": 100})
    client = client_ids[0]
    _register(registry, client)
    processes.bridge(settings)
    stream = _stream([client], 3000)
    produce(settings, topic_of(settings, "event"), stream)
    wait_for(lambda: all_committed(settings, topic_of(settings, "event"), len(stream)),
             timeout=60, what="the bridge to finish")
    queued = set(queued_entities(broker_redis, queue_for(client)))
    letters = read_topic(settings, settings.dlq_raw_topic, expect=len(stream) - len(queued))
    refused = {m.key().decode().partition("::")[2] for m in letters}
    assert {headers_of(m)["kg-reason"] for m in letters} == {"client-over-quota"}
    assert queued and refused and not queued & refused
    assert queued | refused == _expected(stream)[client]


def test_the_guard_stops_a_bridge_that_dead_letters_everything(
        test_settings: Settings, processes: Processes) -> None:
    settings = test_settings.model_copy(update={"dlq_guard_window": 200,
                                                "dlq_guard_ratio": 0.9})
    produce(settings, topic_of(settings, "event"),
            [(f"no-prefix-{i}", EVENT) for i in range(1000)])
    bridge = processes.start("bridge-guard", [sys.executable, "-m", "kgcelery", "bridge"],
                             settings)
    wait_for(lambda: not bridge.alive(), timeout=60, what="the guard to stop the bridge")
    assert bridge.returncode() == 1
    assert "stopping rather than filling the DLQ" in bridge.tail(20)
    assert "Traceback" not in bridge.tail(5)


def test_dlq_list_and_replay_once_the_client_registers(
        test_settings: Settings, processes: Processes, registry: Registry,
        broker_redis: redis.Redis, client_ids: list[str]) -> None:
    late = client_ids[0]
    processes.bridge()
    stream = _stream([late], 30)
    produce(test_settings, topic_of(test_settings, "event"), stream)
    read_topic(test_settings, test_settings.dlq_raw_topic, expect=30)
    env = test_settings.child_env()
    listing = json.loads(_cli(env, "dlq", "list", "--json"))
    assert [(row["reason"], row["client"], row["count"]) for row in listing] == [
        ("unregistered-client", late, 30)]
    assert "would replay 30 to" in _cli(env, "dlq", "replay", "--client", late, "--dry-run")
    assert broker_redis.llen(queue_for(late)) == 0
    _register(registry, late)
    assert "replayed 30 to" in _cli(env, "dlq", "replay", "--reason", "unregistered-client")
    wait_for(lambda: set(queued_entities(broker_redis, queue_for(late)))
             == _expected(stream)[late], timeout=30, what="replayed records in the queue")


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "kgcelery", *args], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_metrics_endpoint_and_stats_show_the_traffic(
        test_settings: Settings, processes: Processes, registry: Registry,
        client_ids: list[str]) -> None:
    port = free_port()
    settings = test_settings.model_copy(update={"bridge_metrics_port": port})
    client = client_ids[0]
    _register(registry, client)
    processes.bridge(settings)
    produce(settings, topic_of(settings, "event"), _stream([client], 700))
    produce(settings, topic_of(settings, "event"), [("bad", EVENT)])

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            return str(page.read().decode())

    wanted = [f'kgcelery_bridge_records_total{{client="{client}",kind="event"}} 700.0',
              'kgcelery_bridge_dead_letters_total{reason="bad-key"} 1.0',
              "kgcelery_bridge_batch_latency_seconds_count"]
    wait_for(lambda: all(line in scrape() for line in wanted), timeout=30, what=wanted)
    stats = wait_for(lambda: [s for s in json.loads(_cli(settings.child_env(), "bridge",
                                                         "--stats", "--json"))
                              if s["records"].get(f"{client}/event") == 700],
                     timeout=30, what="the bridge's stats snapshot")
    assert stats[0]["dead_letters"] == {"bad-key": 1}
