"""Unit table: the kg agent's state-watcher records (built as ``state-watcher/main.go``
builds them, ``tests/statewatcher_records.py``) to the state properties of their nodes,
and its topology ids and edge tombstones to graph ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.resources import ResourceRecord, normalize_resource
from kgcelery.normalize.topology import (
    EdgeRecord,
    EdgeRemoval,
    EndpointRef,
    endpoint,
    normalize_topology,
)
from tests import statewatcher_records as sw

AT = "2026-03-01T10:00:00.123456789Z"
START = "2026-03-01T09:00:00Z"


def _wire(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _meta(name: str, uid: str, namespace: str = "default", **extra: Any) -> dict[str, Any]:
    return {"name": name, "uid": uid, "namespace": namespace, **extra}


POD = {"kind": "Pod", "metadata": _meta(
    "web-1", "u-pod", labels={"app": "web"},
    ownerReferences=[{"kind": "ReplicaSet", "name": "web-5d9", "uid": "u-rs"}]),
    "spec": {"nodeName": "node-1"},
    "status": {"phase": "Running", "podIP": "10.42.0.7", "containerStatuses": [
        {"name": "app", "ready": True, "restartCount": 3},
        {"name": "sidecar", "ready": False, "restartCount": 2}]}}
PENDING = {"kind": "Pod", "metadata": _meta("web-2", "u-pod2"), "spec": {},
           "status": {"phase": "Pending"}}
SERVICE = {"kind": "Service", "metadata": _meta("web", "u-svc"), "spec": {
    "type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.43.0.10",
    "clusterIPs": ["10.43.0.10"], "ipFamilyPolicy": "SingleStack",
    "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080,
               "nodePort": 30080}, {"protocol": "UDP", "port": 53, "targetPort": "dns"}]}}
DEPLOYMENT = {"kind": "Deployment", "metadata": _meta("web", "u-dep"), "spec": {
    "replicas": 3, "strategy": {"type": "RollingUpdate"},
    "selector": {"matchLabels": {"app": "web"}}}}
DAEMONSET = {"kind": "DaemonSet", "metadata": _meta("agent", "u-ds", "kube-system"),
             "spec": {"selector": {"matchLabels": {"app": "agent"}}},
             "status": {"desiredNumberScheduled": 3, "numberReady": 2, "numberAvailable": 1}}
JOB = {"kind": "Job", "metadata": _meta("backup-1", "u-job", ownerReferences=[
    {"kind": "CronJob", "name": "backup", "uid": "u-cj"}]),
    "spec": {"parallelism": 1, "completions": 1},
    "status": {"failed": 2, "startTime": START}}
CRONJOB = {"kind": "CronJob", "metadata": _meta("backup", "u-cj"),
           "spec": {"schedule": "*/5 * * * *", "suspend": True},
           "status": {"lastScheduleTime": START, "active": [{"name": "backup-1"}]}}
NODE = {"kind": "Node", "metadata": {"name": "node-1", "uid": "u-node"},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                  {"type": "Ready", "status": "True"}]}}
NOT_READY = {"kind": "Node", "metadata": {"name": "node-2", "uid": "u-node2"},
             "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}


def _state(obj: dict[str, Any]) -> ResourceRecord:
    [(_, value)], _ = sw.objects([obj], AT)
    [record] = normalize_resource(_wire(value))
    return record


@pytest.mark.parametrize(("obj", "expected"), [
    (POD, {"status": "Running", "restart_count": 5, "ready": False, "pod_ip": "10.42.0.7",
           "labels": ["app=web"], "cluster": "af-9"}),
    (SERVICE, {"service_type": "NodePort", "ports": ["80/TCP", "53/UDP"],
               "target_ports": ["8080", "dns"], "service_ips": ["10.43.0.10"],
               "cluster_ip": "10.43.0.10", "selector": ["app=web"],
               "ip_family_policy": "SingleStack"}),
    (DEPLOYMENT, {"replicas": 3, "selector": ["app=web"], "strategy": "RollingUpdate"}),
    (DAEMONSET, {"replicas": 3, "ready_replicas": 2, "available_replicas": 1,
                 "status": "2/3 ready", "selector": ["app=agent"]}),
    (JOB, {"failed": 2, "succeeded": 0, "active": 0, "status": "Failed",
           "started_at": to_epoch(START), "completed_at": 0.0, "parallelism": 1,
           "completions": 1, "owner_ids": ["CronJob/default/backup"]}),
    (CRONJOB, {"schedule": "*/5 * * * *", "suspend": True, "active": 1,
               "last_schedule_at": to_epoch(START)}),
    (PENDING, {"status": "Pending", "ready": False, "restart_count": 0, "node_name": ""}),
    (NODE, {"ready": True, "status": "Ready"}),
    (NOT_READY, {"ready": False, "status": "NotReady"}),
])
def test_state_watcher_fields_land_as_node_properties(obj: dict[str, Any],
                                                      expected: dict[str, Any]) -> None:
    record = _state(obj)
    props = record.row()["props"]
    assert {key: props[key] for key in expected} == expected
    assert record.at == to_epoch(AT)


def test_a_state_watcher_pod_names_its_node_owner_and_uid() -> None:
    record = _state(POD)
    assert (record.id, record.uid, record.node) == ("Pod/default/web-1", "u-pod", "node-1")
    assert [o.id for o in record.owners] == ["ReplicaSet/default/web-5d9"]


def test_a_completed_job_is_complete() -> None:
    done = {**JOB, "status": {"succeeded": 1, "startTime": START, "completionTime": AT}}
    props = _state(done).row()["props"]
    assert (props["status"], props["succeeded"], props["completed_at"]) == (
        "Complete", 1, to_epoch(AT))


@pytest.mark.parametrize(("ref", "expected"), [
    ("pod:default:web-1", EndpointRef("Pod/default/web-1", "", "Pod")),
    ("node:node-1", EndpointRef("Node/node-1", "", "Node")),
    ("replicaset:shop:web-5d9", EndpointRef("ReplicaSet/shop/web-5d9", "", "ReplicaSet")),
    ("cronjob:default:backup", EndpointRef("CronJob/default/backup", "", "CronJob")),
    ("pod:2e48b897-1ea2", EndpointRef("", "2e48b897-1ea2", "Pod")),
])
def test_state_watcher_object_ids_name_graph_objects(ref: str, expected: EndpointRef) -> None:
    assert endpoint(ref) == expected


def test_state_watcher_edges_name_the_objects_of_its_resource_records() -> None:
    resources, edges = sw.objects([POD, SERVICE, NODE], AT)
    ids = {normalize_resource(_wire(value))[0].id for _, value in resources}
    for _, value in edges:
        [edge] = normalize_topology(_wire(value))
        assert isinstance(edge, EdgeRecord)
        assert edge.id == value["id"]
        assert {edge.source.id, edge.target.id} <= ids | {"ReplicaSet/default/web-5d9"}
    types = sorted(normalize_topology(_wire(v))[0].type for _, v in edges)  # type: ignore[union-attr]
    assert types == ["OWNS", "SCHEDULED_ON", "SELECTS"]


def test_an_edge_tombstone_names_the_edge_of_its_key() -> None:
    [removal] = normalize_topology(None, "edge:service:default:web->pod:default:web-1")
    assert removal == EdgeRemoval("edge:service:default:web->pod:default:web-1",
                                  EndpointRef("Service/default/web", "", "Service"),
                                  EndpointRef("Pod/default/web-1", "", "Pod"))


@pytest.mark.parametrize("entity", ["", "pod:u1", "edge:pod:default:web-1", "edge:->x"])
def test_an_unattributable_edge_tombstone_is_refused(entity: str) -> None:
    with pytest.raises(RejectedRecordError) as caught:
        normalize_topology(None, entity)
    assert caught.value.reason == "unattributable-tombstone"
