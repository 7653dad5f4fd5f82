"""The agent's records, as ``AGENT_FORMATS.md`` and the Go structs' JSON tags say.

Pure unit tests of :mod:`kgcelery.demo.agent_wire` and of the demo's agent
(:mod:`kgcelery.demo.agent`): keys, topics, field names and order, omitted fields.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kgcelery.demo import agent_wire as wire
from kgcelery.demo.agent import Agent, StateWatcher
from kgcelery.demo.cluster import SimulatedCluster
from kgcelery.demo.world import DemoRecord

T = 1_790_000_000.25  # 2026-09-21T14:13:20.25Z
CLIENT = "af-9"


def keys_of(record: wire.WireRecord) -> list[str]:
    return list(json.loads(record.value or b"null"))


# --- encodings -------------------------------------------------------------------------

@pytest.mark.parametrize(("epoch", "text"), [
    (T, "2026-09-21T14:13:20.25Z"), (1_790_000_000.0, "2026-09-21T14:13:20Z"),
    (1_790_000_000.000123, "2026-09-21T14:13:20.000123Z")])
def test_go_time_marshals_rfc3339_nano_without_trailing_zeros(epoch: float, text: str) -> None:
    assert wire.rfc3339_nano(epoch) == text


def test_go_json_escapes_html_and_keeps_field_order() -> None:
    assert wire.go_json({"b": "<a&b>", "a": 1}) == b'{"b":"\\u003ca\\u0026b\\u003e","a":1}'
    assert wire.vector_json({"b": {"d": 1, "c": 2}, "a": 1}) == b'{"a":1,"b":{"c":2,"d":1}}'


# --- rows 1-5 ------------------------------------------------------------------------------

def test_row1_console_producer_job_keys_the_registration_by_the_bare_client_id() -> None:
    record = wire.registry_job_registration(CLIENT, "prod-eu", T, region="eu-west-1")
    assert (record.topic, record.key) == ("cluster.registry", b"af-9")
    assert keys_of(record) == ["client_id", "cluster_name", "region", "timestamp",
                               "chart_version"]
    assert record.decoded() == {"client_id": CLIENT, "cluster_name": "prod-eu",
                                "region": "eu-west-1", "timestamp": "2026-09-21T14:13:20Z",
                                "chart_version": wire.CHART_VERSION}
    assert wire.registry_job_registration(CLIENT, "x", T).decoded()["region"] == "unknown"


def test_row2_kcat_splits_the_registration_line_at_its_first_colon() -> None:
    record = wire.register_job_registration(CLIENT, "", T, namespace="obs", release="kg")
    assert record.topic == "cluster.registry" and record.key == b'{"client_id"'
    assert record.value is not None and record.value.startswith(b'"af-9","cluster_name"')
    with pytest.raises(json.JSONDecodeError):
        record.decoded()
    whole = json.loads(record.key + b":" + record.value)
    assert whole == {"client_id": CLIENT, "cluster_name": CLIENT, "version": wire.CHART_VERSION,
                     "registered_at": "2026-09-21T14:13:20Z",
                     "metadata": {"namespace": "obs", "release_name": "kg",
                                  "chart_version": wire.CHART_VERSION}}


def test_kcat_uses_the_default_key_only_for_lines_without_the_delimiter() -> None:
    assert wire.kcat_split('{"a":1}', ":", "k") == (b'{"a"', b"1}")
    assert wire.kcat_split('{"a":1}', "::", "k") == (b"k", b'{"a":1}')


def test_row3_deregistration_is_a_tombstone_under_the_bare_id() -> None:
    assert wire.deregistration(CLIENT) == wire.WireRecord("cluster.registry", b"af-9", None)


def test_row4_and_5_heartbeats() -> None:
    cron = wire.cronjob_heartbeat(CLIENT, T)
    assert (cron.topic, cron.key) == ("cluster.heartbeat", b"af-9")
    assert cron.decoded() == {"client_id": CLIENT, "timestamp": "2026-09-21T14:13:20Z"}
    watcher = wire.watcher_heartbeat(CLIENT, T, resources_sent=0, uptime_seconds=31)
    assert watcher.key == b"af-9::af-9"
    assert watcher.value == (b'{"client_id":"af-9","metrics":{"resources_sent":0,'
                             b'"uptime_seconds":31},"status":"healthy",'
                             b'"timestamp":"2026-09-21T14:13:20Z"}')


# --- rows 6-8 ------------------------------------------------------------------------------

POD: dict[str, Any] = {
    "kind": "Pod", "metadata": {
        "uid": "u-web-1", "namespace": "shop", "name": "web-1",
        "labels": {"app": "web", "tier": "fe"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8", "uid": "u-rs",
                             "controller": True}]},
    "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "web:1"}]},
    "status": {"phase": "Running", "podIP": "10.1.0.7", "containerStatuses": [
        {"name": "web", "ready": True, "restartCount": 3},
        {"name": "side", "ready": False, "restartCount": 2}]}}


def test_row6_pod_resource_record_fields_in_go_order() -> None:
    record = wire.resource_record(CLIENT, CLIENT, POD, T)
    assert (record.topic, record.key) == ("state.k8s.resource", b"af-9::pod:u-web-1")
    assert keys_of(record) == ["op", "at", "client_id", "cluster", "kind", "uid", "namespace",
                               "name", "labels", "ownerRefs", "node", "podIP", "status"]
    value = record.decoded()
    assert value["op"] == "UPSERT" and value["at"] == "2026-09-21T14:13:20.25Z"
    assert value["ownerRefs"] == [{"kind": "ReplicaSet", "name": "web-5d8"}]  # no uid
    assert value["status"] == {"containerReady": False, "phase": "Running", "restartCount": 5}


def _obj(kind: str, namespace: str, spec: dict[str, Any], status: dict[str, Any]) -> dict:
    return {"kind": kind, "metadata": {"uid": f"u-{kind}", "namespace": namespace,
                                       "name": kind.lower()},
            "spec": spec, "status": status}


@pytest.mark.parametrize(("obj", "fields"), [
    (_obj("Node", "", {}, {"conditions": [{"type": "Ready", "status": "True"}]}),
     {"status": {"ready": True}}),
    (_obj("Node", "", {}, {"conditions": [{"type": "Ready", "status": "Unknown"}]}),
     {"status": {"ready": False}}),
    (_obj("Service", "shop", {"type": "NodePort", "clusterIP": "10.96.0.9",
                              "clusterIPs": ["10.96.0.9"], "selector": {"app": "web"},
                              "ports": [{"name": "http", "protocol": "TCP", "port": 80,
                                         "targetPort": 8080, "nodePort": 30080}]}, {}),
     {"serviceSelector": {"app": "web"}, "serviceIPs": ["10.96.0.9", "10.96.0.9"],
      "spec": {"ipFamilyPolicy": "SingleStack", "ports": [
          {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080,
           "nodePort": 30080}], "type": "NodePort"}}),
    (_obj("Deployment", "shop", {"replicas": 0, "selector": {"matchLabels": {"app": "w"}},
                                 "strategy": {"type": "Recreate"}}, {"readyReplicas": 0}),
     {"replicas": 0, "spec": {"selector": {"matchLabels": {"app": "w"}},
                              "strategy": "Recreate"}}),
    (_obj("DaemonSet", "mon", {"selector": {"matchLabels": {"app": "v"}}},
          {"desiredNumberScheduled": 3, "numberReady": 2, "numberAvailable": 2}),
     {"status": {"available": 2, "desired": 3, "ready": 2},
      "spec": {"selector": {"matchLabels": {"app": "v"}}}}),
    (_obj("Job", "pay", {"parallelism": 1, "completions": 1},
          {"failed": 4, "startTime": "2026-09-21T14:00:00Z"}),
     {"status": {"active": 0, "completion": None, "failed": 4,
                 "startTime": "2026-09-21T14:00:00Z", "succeeded": 0},
      "spec": {"completions": 1, "parallelism": 1}}),
    (_obj("CronJob", "pay", {"schedule": "*/2 * * * *", "suspend": True},
          {"lastScheduleTime": "2026-09-21T14:10:00Z", "active": [{"name": "j"}]}),
     {"status": {"active": 1, "lastScheduleTime": "2026-09-21T14:10:00Z"},
      "spec": {"schedule": "*/2 * * * *", "suspend": True}}),
], ids=["node-ready", "node-not-ready", "service", "deployment", "daemonset", "job",
        "cronjob"])
def test_row6_per_kind_fields(obj: dict[str, Any], fields: dict[str, Any]) -> None:
    value = wire.resource_record(CLIENT, CLIENT, obj, T).decoded()
    common = {"op", "at", "client_id", "cluster", "kind", "uid", "namespace", "name"}
    assert {k: v for k, v in value.items() if k not in common} == fields
    assert ("namespace" in value) == (obj["kind"] != "Node")


def test_row6_the_watcher_sends_no_statefulset_and_no_namespace() -> None:
    with pytest.raises(ValueError, match="no informer"):
        wire.resource_record(CLIENT, CLIENT, _obj("StatefulSet", "shop", {}, {}), T)
    assert wire.resource_tombstone(CLIENT, "Pod", "u1") == wire.WireRecord(
        "state.k8s.resource", b"af-9::pod:u1", None)


def test_row7_edges_name_objects_by_kind_namespace_and_name() -> None:
    pod, node = wire.object_ref("Pod", "default", "web-1"), wire.object_ref("Node", "", "node-1")
    assert (pod, node) == ("pod:default:web-1", "node:node-1")
    record = wire.edge_record(CLIENT, CLIENT, "RUNS_ON", pod, node, T)
    assert record.key == b"af-9::edge:pod:default:web-1->node:node-1"
    assert keys_of(record) == ["op", "at", "client_id", "cluster", "id", "from", "to", "type"]
    assert record.decoded()["id"] == "edge:pod:default:web-1->node:node-1"
    assert wire.edge_tombstone(CLIENT, pod, node) == wire.WireRecord(
        "state.k8s.topology", record.key, None)


def test_row8_prom_target_key_and_record() -> None:
    labels = {"job": "cart", "namespace": "shop", "service": "cart", "instance": "10.1.0.7:80",
              "pod": "cart-1"}
    target = {"labels": labels, "scrapeUrl": "http://10.1.0.7:80/metrics", "health": "down",
              "lastScrape": "2026-09-21T14:13:12.5Z", "lastError": "connection refused"}
    record = wire.prom_target(CLIENT, CLIENT, target, T)
    assert record.key == b"af-9::af-9|cart|shop|cart|10.1.0.7:80"
    assert keys_of(record) == ["op", "at", "client_id", "cluster", "labels", "scrapeUrl",
                               "health", "lastScrape", "lastError"]
    up = wire.prom_target(CLIENT, CLIENT, {**target, "health": "up", "lastError": ""}, T)
    assert "lastError" not in up.decoded()  # omitempty
    assert wire.prom_target_tombstone(CLIENT, CLIENT, labels).value is None


# --- rows 9-15 ---------------------------------------------------------------------------

LOG = {"file": "/var/log/pods/x.log", "message": "hello", "source_type": "kubernetes_logs",
       "stream": "stdout", "timestamp": "2026-09-21T14:13:20.1Z",
       "kubernetes": {"pod_uid": "u-web-1", "pod_namespace": "shop", "pod_name": "web-1",
                      "container_name": "web"}}


def test_row9_vector_log_through_the_normalize_remap() -> None:
    record = wire.vector_log(CLIENT, LOG, T)
    assert (record.topic, record.key) == ("logs.normalized", b"af-9::u-web-1")
    value = record.decoded()
    assert keys_of(record) == sorted(value)
    assert value["subject"] == {"kind": "Pod", "uid": "u-web-1", "ns": "shop", "name": "web-1"}
    assert (value["etype"], value["client_id"], value["message_key"]) == (
        "k8s.log", CLIENT, "af-9::u-web-1")
    assert value["message"] == "hello" and value["pod_name"] == "web-1"


def test_row10_raw_mirror_has_no_key_and_no_client() -> None:
    record = wire.raw_log_mirror(LOG)
    assert (record.topic, record.key) == ("raw.k8s.logs", None)
    assert "client_id" not in record.decoded()


EVENT = {"metadata": {"uid": "ev-1", "namespace": "shop", "name": "web-1.17f"},
         "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1"},
         "reason": "BackOff", "message": "Back-off", "type": "Warning", "count": 1}


def test_row11_and_15_the_event_exporter_keys_by_the_event_uid_alone() -> None:
    record = wire.exported_event(EVENT, involved_labels={"app": "web"})
    assert (record.topic, record.key) == ("events.normalized", b"ev-1")
    assert record.decoded()["involvedObject"]["labels"] == {"app": "web"}
    assert wire.exported_event(EVENT, topic=wire.RAW_EVENTS).topic == "raw.k8s.events"
    per_client = wire.per_client_topic_event(CLIENT, EVENT)
    assert (per_client.topic, per_client.key) == ("af-9.events.normalized", b"ev-1")
    log = wire.per_client_topic_log(CLIENT, LOG, 1_790_000_000.0)
    assert (log.topic, log.key) == ("af-9.logs.normalized", None)
    assert log.decoded()["client_id"] == CLIENT and log.decoded()["event_time"]
    moved = wire.on_client_topic(CLIENT, wire.resource_tombstone(CLIENT, "Pod", "uid-1"))
    assert (moved.topic, moved.key) == ("af-9.state.k8s.resource", b"af-9::pod:uid-1")


WEBHOOK = {
    "version": "4", "groupKey": '{}:{alertname="KubePodCrashLooping"}', "status": "firing",
    "receiver": "kg", "groupLabels": {"alertname": "KubePodCrashLooping"},
    "commonLabels": {"alertname": "KubePodCrashLooping", "severity": "critical",
                     "namespace": "shop", "pod": "web-1"},
    "commonAnnotations": {"summary": "crash looping"}, "externalURL": "http://am:9093",
    "truncatedAlerts": 0,
    "alerts": [{"status": "firing", "labels": {"alertname": "KubePodCrashLooping",
                                               "severity": "critical", "namespace": "shop",
                                               "pod": "web-1"},
                "annotations": {"summary": "crash looping", "description": "web-1 restarts"},
                "startsAt": "2026-09-21T14:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom/graph", "fingerprint": "aa11"},
               {"status": "firing", "labels": {"alertname": "KubePodCrashLooping",
                                               "severity": "critical", "node": "node-1"},
                "annotations": {}, "startsAt": "2026-09-21T14:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "bb22"}]}
KEY = b'af-9::{}:{alertname="KubePodCrashLooping"}'


def test_row13_raw_webhook_body_keyed_by_group_key() -> None:
    record = wire.vector_raw_alert(CLIENT, WEBHOOK, T)
    assert (record.topic, record.key) == ("raw.prom.alerts", KEY)
    value = record.decoded()
    assert {k: value[k] for k in WEBHOOK} == WEBHOOK
    assert (value["path"], value["source_type"], value["message_key"]) == (
        "/", "http_server", KEY.decode())


def test_row12_vector_twin_holds_one_alert_object_and_the_remaps_fields() -> None:
    twins = wire.vector_alert_twins(CLIENT, WEBHOOK, T, ["e-1", "e-2"])
    assert [(r.topic, r.key) for r in twins] == [("events.normalized", KEY)] * 2
    first = twins[0].decoded()
    assert first["alerts"] == WEBHOOK["alerts"][0] and first["receiver"] == "kg"
    assert (first["etype"], first["event_id"], first["reason"], first["severity"],
            first["status"]) == ("prom.alert", "e-1", "KubePodCrashLooping", "CRITICAL",
                                 "firing")
    # The VRL reads .labels/.annotations at the top level, where a webhook has none.
    assert first["subject"] == {"kind": "Service", "ns": "", "name": ""}
    assert first["message"] == "" and first["labels"] == {} and first["annotations"] == {}


def test_row14_alert_receiver_signal_per_alert() -> None:
    first, second = wire.alert_receiver_events(CLIENT, WEBHOOK, T, ["e-1", "e-2"])
    assert (first.topic, first.key) == ("alerts.raw", b"af-9::e-1")
    assert keys_of(first) == ["event_id", "event_time", "client_id", "etype", "severity",
                              "reason", "message", "subject"]
    assert first.decoded()["subject"] == {"kind": "Pod", "uid": "", "ns": "shop",
                                          "name": "web-1"}
    assert first.decoded()["message"] == "web-1 restarts"  # description first
    assert second.decoded()["subject"] == {"kind": "Node", "uid": "", "ns": "default",
                                           "name": "node-1"}
    assert second.decoded()["message"] == "Alert KubePodCrashLooping is firing"


# --- the demo's agent --------------------------------------------------------------------

def _pod(name: str, labels: dict[str, str], owner: str = "web-5d8") -> dict[str, Any]:
    return {**POD, "metadata": {**POD["metadata"], "uid": f"u-{name}", "name": name,
                                "labels": labels,
                                "ownerReferences": [{"kind": "ReplicaSet", "name": owner}]}}


SERVICE = {"kind": "Service", "metadata": {"uid": "u-svc", "namespace": "shop", "name": "web"},
           "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.9",
                    "clusterIPs": ["10.96.0.9"], "ports": [{"port": 80}]}, "status": {}}


def test_state_watcher_edges_and_their_tombstones_follow_main_go() -> None:
    watcher = StateWatcher(CLIENT)
    sent = watcher.translate(DemoRecord("resource", "", SERVICE, T))
    assert [r.topic for r in sent] == ["state.k8s.resource"]
    sent = watcher.translate(DemoRecord("resource", "", _pod("web-1", {"app": "web"}), T))
    assert [(r.topic, r.decoded() and r.decoded().get("type")) for r in sent] == [
        ("state.k8s.topology", "RUNS_ON"), ("state.k8s.topology", "CONTROLS"),
        ("state.k8s.topology", "SELECTS"), ("state.k8s.resource", None)]
    # Relabelled out of the service, and moved to another ReplicaSet: both tombstoned.
    sent = watcher.translate(DemoRecord("resource", "", _pod("web-1", {"app": "x"}, "web-6"), T))
    tombstones = [r.key for r in sent if r.value is None]
    assert tombstones == [b"af-9::edge:replicaset:shop:web-5d8->pod:shop:web-1",
                          b"af-9::edge:service:shop:web->pod:shop:web-1"]
    deleted = watcher.translate(DemoRecord("resource", "", {
        "op": "DELETE", "kind": "Pod", "uid": "u-web-1", "namespace": "shop",
        "name": "web-1"}, T))
    assert [r.key for r in deleted] == [b"af-9::edge:replicaset:shop:web-6->pod:shop:web-1",
                                        b"af-9::pod:u-web-1"]
    assert all(r.value is None for r in deleted)  # RUNS_ON is never tombstoned by the agent


def _play_agent(seconds: int) -> list[wire.WireRecord]:
    cluster = SimulatedCluster(CLIENT, "af-9-cluster", seed=0)
    agent = Agent(CLIENT, "af-9-cluster", region=cluster.region(T), seed=0)
    out = agent.install(T) + agent.snapshot(cluster.snapshot(T))
    out += [agent.watcher_heartbeat(T), agent.cronjob_heartbeat(T)]
    out += agent.prom_targets(cluster.nodes(T), T)
    for second in range(1, seconds + 1):
        out += agent.translate(cluster.tick(T + second, 30))
    return out + agent.prom_targets(cluster.nodes(T + seconds), T + seconds)


def test_the_demo_agent_plays_every_default_stream_of_a_simulated_cluster() -> None:
    out = _play_agent(60)
    assert out == _play_agent(60)  # deterministic, uuids included
    assert {r.topic for r in out} == set(wire.AGENT_TOPICS)
    assert all(r.key for r in out)
    data = [r for r in out if r.topic not in (wire.REGISTRY, wire.HEARTBEAT)]
    assert all(r.key and r.key.startswith(b"af-9::") for r in data)
    events = [r for r in out if r.topic == wire.EVENTS and b'"etype"' not in (r.value or b"")]
    assert events and len({r.key for r in events}) == len(events)  # new Events only
    targets = [r.decoded() for r in out if r.topic == wire.PROM_TARGETS]
    assert {t["labels"]["job"] for t in targets if t} >= {"kubelet", "cart"}
    assert {t["health"] for t in targets if t} == {"up", "down"}
