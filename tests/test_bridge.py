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
    redis_pings,
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
        wait_for(lambda: redis_pings(client), timeout=10, what="the test's own Redis")
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


def _vector_log(pod: str, n: int) -> dict[str, Any]:
    """A Vector ``kubernetes_logs`` record as the agent's raw mirror sends it."""
    return {"message": f"GET /healthz 200 {n}", "source_type": "kubernetes_logs",
            "stream": "stdout", "timestamp": "2026-12-05T10:00:00.123456789Z",
            "kubernetes": {"pod_name": pod, "pod_namespace": "default",
                           "pod_uid": f"uid-{pod}", "container_name": "app"}}


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        return str(page.read().decode())


def test_a_flood_of_unkeyed_records_never_stops_the_bridge_for_the_others(
        test_settings: Settings, processes: Processes, registry: Registry,
        broker_redis: redis.Redis, client_ids: list[str]) -> None:
    """5,000 null-key records on raw.k8s.logs (a Vector raw mirror without key_field)
    between two registered clients' records: both clients' records are queued, the
    bridge keeps running, the flood is in dlq.raw as bad-key, reported per source."""
    port = free_port()
    settings = test_settings.model_copy(update={"bridge_metrics_port": port})
    raw_logs = next(t for t in settings.topics_of("log") if t.endswith("raw.k8s.logs"))
    first, second = client_ids[:2]
    _register(registry, first, second)
    bridge = processes.bridge(settings)
    def clients_records(start: int) -> list[tuple[str | None, dict[str, Any]]]:
        return [record for n in range(start, start + 500)
                for record in ((f"{first}::log::f{n}", _vector_log("web-1", n)),
                               (f"{second}::log::s{n}", _vector_log("api-1", n)))]

    # The clients' records, then the flood alone (so that every poll of the bridge is
    # nearly all dead letters: the old global guard stopped the bridge here), then the
    # clients' records again.
    before, after = clients_records(0), clients_records(500)
    flood = [(None, _vector_log("unkeyed-1", n)) for n in range(5000)]
    produced = 0
    for part in (before, flood, after):
        produced += produce(settings, raw_logs, part)
        wait_for(lambda n=produced: all_committed(settings, raw_logs, n), timeout=90,
                 what=f"the bridge to commit the first {produced} records")
    assert bridge.alive(), "a flooding source must not stop the bridge"
    keyed = [*before, *after]
    _assert_all_queued(broker_redis, _expected(keyed))
    letters = read_topic(settings, settings.dlq_raw_topic, expect=5000)
    assert len(letters) == 5000
    assert {(headers_of(m)["kg-reason"], headers_of(m)["kg-source-topic"], m.key())
            for m in letters} == {("bad-key", raw_logs, None)}
    assert "fix on the producer" in headers_of(letters[0])["kg-error"]
    # Counted per source topic, reported as a flooding source, logged at a bounded rate.
    wanted = [f'kgcelery_bridge_topic_dead_letters_total{{reason="bad-key",'
              f'topic="{raw_logs}"}} 5000.0',
              f'kgcelery_bridge_source_flooding{{client="unkeyed",topic="{raw_logs}"}} 1.0']
    wait_for(lambda: all(line in _scrape(port) for line in wanted), timeout=30, what=wanted)
    env = settings.child_env()
    warned = wait_for(lambda: (lambda r: r.returncode == 0 and raw_logs in r.stderr and r)(
        subprocess.run([sys.executable, "-m", "kgcelery", "check", "bridge"], env=env,
                       capture_output=True, text=True, timeout=60)),
        timeout=30, what="check bridge to warn of the flood")
    assert "WARNING: bridge:" in warned.stderr and "unkeyed" in warned.stderr
    strict = subprocess.run([sys.executable, "-m", "kgcelery", "check", "bridge", "--strict"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert strict.returncode == 1
    stats = _cli(env, "bridge", "--stats")
    assert f"FLOODING {raw_logs} x unkeyed" in stats
    assert any(line.split()[1:4] == ["bad-key", "from", raw_logs] and line.endswith(" 5000")
               for line in stats.splitlines()), stats
    listing = json.loads(_cli(env, "dlq", "list", "--source-topic", raw_logs, "--json"))
    assert [(row["reason"], row["client"], row["source_topic"], row["count"])
            for row in listing] == [("bad-key", "-", raw_logs, 5000)]
    assert json.loads(_cli(env, "dlq", "list", "--source-topic", "elsewhere", "--json")) == []
    lines = [line for line in bridge.tail(5000).splitlines() if "dead" in line]
    assert 0 < len(lines) < 30, f"{len(lines)} log lines about dead letters"
    assert bridge.alive()


# Control records exactly as the kg-rca-agent chart 2.1.x and its state-watcher send
# them (../shared/AGENT_FORMATS.md rows 1-5); no 'kgcelery register' anywhere.
def _registration_row1(client: str) -> bytes:
    """cluster-registry-job: kafka-console-producer, key.separator=:: -> key = client."""
    return json.dumps({"client_id": client, "cluster_name": f"{client}-cluster",
                       "region": "eu-west-1", "timestamp": "2026-12-05T10:00:00Z",
                       "chart_version": "2.1.3"}, separators=(",", ":")).encode()


def _kcat_split_row2(client: str) -> tuple[bytes, bytes]:
    """register-cluster-job: one JSON line through kcat -K: -k <client>: kcat splits the
    line at its first ':' and keys the record with what came before."""
    line = json.dumps({"client_id": client, "cluster_name": f"{client}-cluster",
                       "version": "2.1.4", "registered_at": "2026-12-05T10:00:00Z",
                       "metadata": {"namespace": "kg", "release_name": "kg-agent",
                                    "chart_version": "2.1.4"}},
                      separators=(",", ":")).encode()
    key, _, value = line.partition(b":")
    return key, value


def test_agent_control_records_register_beat_and_deregister_clients(
        test_settings: Settings, processes: Processes, registry: Registry,
        broker_redis: redis.Redis, client_ids: list[str]) -> None:
    port = free_port()
    settings = test_settings.model_copy(update={"bridge_metrics_port": port})
    registry_topic, = settings.topics_of("registry")
    heartbeat_topic, = settings.topics_of("heartbeat")
    plain, split = client_ids[:2]
    bridge = processes.bridge(settings)
    produce(settings, registry_topic, [(plain.encode(), _registration_row1(plain)),
                                       _kcat_split_row2(split)])

    def registered(client: str) -> Any:
        record = registry.get(client)
        return record if record is not None and client in registry.registered_ids() else None

    first = wait_for(lambda: registered(plain), timeout=30, what="the row-1 registration")
    assert (first.cluster_name, first.version, first.region) == (
        f"{plain}-cluster", "2.1.3", "eu-west-1")
    assert first.registered_at == 1796464800.0  # 2026-12-05T10:00:00Z, the "timestamp"
    second = wait_for(lambda: registered(split), timeout=30, what="the kcat-split registration")
    assert (second.version, second.metadata["release_name"]) == ("2.1.4", "kg-agent")
    assert second.registered_at == 1796464800.0
    assert "kcat -K::" in bridge.tail(200)
    # Heartbeats: the chart's cronjob (kcat -K:: -k <client>: key = client) and the
    # state-watcher (key <client>::<client>, with status and metrics).
    produce(settings, heartbeat_topic, [
        (plain, {"client_id": plain, "timestamp": "2026-12-05T10:01:00Z"}),
        (f"{split}::{split}", {"client_id": split, "timestamp": "2026-12-05T10:01:00Z",
                               "status": "healthy",
                               "metrics": {"resources_sent": 12, "uptime_seconds": 60}})])
    for client in (plain, split):
        wait_for(lambda c=client: registry.get(c).last_heartbeat, timeout=30,
                 what=f"the heartbeat of {client}")
    # Their data records are accepted: nobody ran 'kgcelery register'.
    logs = topic_of(settings, "log")
    produce(settings, logs, [(f"{plain}::log::p1", _vector_log("web-1", 1)),
                             (f"{split}::log::s1", _vector_log("api-1", 1))])
    for client, entity in ((plain, "log::p1"), (split, "log::s1")):
        wait_for(lambda c=client, e=entity: queued_entities(broker_redis, queue_for(c)) == [e],
                 timeout=30, what=f"the records of {client} in its queue")
    wait_for(lambda: f'kgcelery_bridge_kcat_joined_total{{topic="{registry_topic}"}} 1.0'
             in _scrape(port), timeout=30, what="the kcat rule counted")
    # Deregistration: the chart's tombstone (key = client, null value), and an empty
    # value under a <client>::<anything> key.
    produce(settings, registry_topic, [(plain, None), (f"{split}::registry", b"")])
    for client in (plain, split):
        wait_for(lambda c=client: c not in registry.registered_ids()
                 and registry.get(c).state == "draining",
                 timeout=30, what=f"{client} deregistered")
    letters = read_topic(settings, settings.dlq_raw_topic, expect=1, timeout=2)
    assert letters == [], [headers_of(m) for m in letters]


def test_records_before_their_clients_registration_wait_for_it(
        test_settings: Settings, processes: Processes, broker_redis: redis.Redis,
        client_ids: list[str]) -> None:
    # An agent's state-watcher starts with its registration job: its first records may
    # reach the bridge before the registration (another topic). They are held, not lost.
    early = client_ids[0]
    registry_topic, = test_settings.topics_of("registry")
    bridge = processes.bridge(test_settings)
    stream = _stream([early], 50)
    produce(test_settings, topic_of(test_settings, "event"), stream)
    wait_for(lambda: f"holding records of {early}" in bridge.tail(1_000_000), timeout=30,
             what="the bridge to hold the early records")
    assert broker_redis.llen(queue_for(early)) == 0
    produce(test_settings, registry_topic, [(early.encode(), {
        "client_id": early, "cluster_name": "early", "timestamp": "2026-12-05T10:00:00Z"})])
    wait_for(lambda: set(queued_entities(broker_redis, queue_for(early)))
             == _expected(stream)[early], timeout=30, what="the held records queued")
    letters = read_topic(test_settings, test_settings.dlq_raw_topic, expect=1, timeout=2)
    assert [m for m in letters if m.key() and m.key().startswith(early.encode())] == []


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
