"""Unit table: state records, full Kubernetes objects and tombstones to resource records."""

from __future__ import annotations

from typing import Any

import pytest

from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.objects import newest_time
from kgcelery.normalize.resources import DELETE, TOMBSTONE, UPSERT, normalize_resource

T0, T1, T2 = "2026-01-12T15:00:00Z", "2026-01-12T15:05:00Z", "2026-01-12T15:09:00Z"


def meta(name: str, namespace: str | None = "shop", **extra: Any) -> dict[str, Any]:
    body = {"name": name, "uid": f"uid-{name}", "resourceVersion": "100",
            "creationTimestamp": T0, **extra}
    if namespace:
        body["namespace"] = namespace
    return body


POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": meta("web-1", labels={"app": "web"}, ownerReferences=[
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d", "uid": "uid-rs"}]),
    "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "web:1"}]},
    "status": {
        "phase": "Running", "podIP": "10.0.0.7",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": T1}],
        "containerStatuses": [{
            "name": "web", "image": "web:1", "ready": False, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                         "finishedAt": T2}}}]},
}


@pytest.mark.parametrize(("value", "expected"), [
    (POD, {"id": "Pod/shop/web-1", "op": UPSERT, "uid": "uid-web-1", "node": "node-a",
           "at": to_epoch(T2), "props.restart_count": 4, "props.waiting_reason": "CrashLoopBackOff",
           "props.last_termination_reason": "OOMKilled", "props.last_exit_code": 137,
           "props.status": "Running", "props.labels": ["app=web"], "props.ready": False,
           "owners": ["ReplicaSet/shop/web-7d"], "containers": ["Container/shop/web-1/web"]}),
    ({"kind": "Node", "metadata": meta("node-a", None), "spec": {"unschedulable": True},
      "status": {"conditions": [{"type": "Ready", "status": "False", "lastHeartbeatTime": T1}],
                 "nodeInfo": {"kubeletVersion": "v1.33.4"},
                 "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}},
     {"id": "Node/node-a", "namespace": "", "props.status": "NotReady", "props.ready": False,
      "props.unschedulable": True, "props.kubelet_version": "v1.33.4",
      "props.internal_ip": "10.0.0.1", "at": to_epoch(T1)}),
    ({"kind": "Deployment", "metadata": meta("web"),
      "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "web:2"}]}}},
      "status": {"readyReplicas": 1, "availableReplicas": 1}},
     {"id": "Deployment/shop/web", "props.replicas": 3, "props.ready_replicas": 1,
      "props.status": "1/3 ready", "props.images": ["web:2"]}),
    ({"kind": "ReplicaSet", "metadata": meta("web-7d", ownerReferences=[
        {"kind": "Deployment", "name": "web", "uid": "uid-web"}]), "spec": {"replicas": 1}},
     {"id": "ReplicaSet/shop/web-7d", "owners": ["Deployment/shop/web"]}),
    ({"kind": "StatefulSet", "metadata": meta("db"), "spec": {"replicas": 2}, "status": {}},
     {"id": "StatefulSet/shop/db", "props.replicas": 2}),
    ({"kind": "DaemonSet", "metadata": meta("agent"),
      "status": {"desiredNumberScheduled": 3, "numberReady": 3}},
     {"id": "DaemonSet/shop/agent", "props.replicas": 3, "props.ready_replicas": 3}),
    ({"kind": "Job", "metadata": meta("migrate"), "spec": {},
      "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}},
     {"id": "Job/shop/migrate", "props.status": "Failed", "props.failed": 1}),
    ({"kind": "CronJob", "metadata": meta("nightly"), "spec": {"schedule": "0 3 * * *",
                                                               "suspend": False}},
     {"id": "CronJob/shop/nightly", "props.schedule": "0 3 * * *", "props.suspend": False}),
    ({"kind": "Service", "metadata": meta("web"), "spec": {
        "selector": {"app": "web"}, "type": "ClusterIP", "clusterIP": "10.43.0.9",
        "ports": [{"port": 80, "protocol": "TCP"}]}},
     {"id": "Service/shop/web", "props.selector": ["app=web"], "props.ports": ["80/TCP"]}),
    ({"kind": "Service", "metadata": meta("external"), "spec": {"type": "ExternalName"}},
     {"props.selector": None}),
    ({"kind": "Namespace", "metadata": meta("shop", None), "status": {"phase": "Active"}},
     {"id": "Namespace/shop", "props.status": "Active"}),
    # Kinds outside the model are plain Resource nodes.
    ({"kind": "Endpoints", "metadata": meta("web")}, {"id": "Endpoints/shop/web",
                                                      "label": "Resource"}),
    # A state record, as existing agents produce it.
    ({"op": "UPSERT", "at": T1, "kind": "pod", "uid": "u1", "namespace": "shop", "name": "w2",
      "labels": {"app": "web"}, "ownerRefs": ["ReplicaSet/web-7d"], "node": "node-b",
      "podIP": "10.0.0.8", "status": {"phase": "Pending"}, "image": "web:1", "replicas": "1"},
     {"id": "Pod/shop/w2", "kind": "Pod", "op": UPSERT, "at": to_epoch(T1), "node": "node-b",
      "owners": ["ReplicaSet/shop/web-7d"], "props.status": "Pending",
      "props.images": ["web:1"], "props.pod_ip": "10.0.0.8", "props.replicas": 1}),
    ({"op": "DELETE", "at": T2, "kind": "Pod", "uid": "u1", "namespace": "shop", "name": "w2"},
     {"id": "Pod/shop/w2", "op": DELETE, "at": to_epoch(T2)}),
    # A DELETE may name only the uid; the writer finds the object by it.
    ({"op": "DELETE", "at": T2, "kind": "Pod", "uid": "u1"}, {"id": "", "uid": "u1", "op": DELETE}),
    # A watch frame: DELETED deletes.
    ({"type": "DELETED", "object": POD}, {"id": "Pod/shop/web-1", "op": DELETE}),
    ({"op": "UPSERT", "at": T1, "object": POD}, {"at": to_epoch(T1)}),
])
def test_resource_shapes(value: dict[str, Any], expected: dict[str, Any]) -> None:
    [record] = normalize_resource(value)
    got: dict[str, Any] = {}
    for name in expected:
        if name.startswith("props."):
            got[name] = record.props.get(name[6:])
        elif name == "owners":
            got[name] = [owner.id for owner in record.owners]
        elif name == "containers":
            got[name] = [c.id for c in record.containers]
        else:
            got[name] = getattr(record, name)
    assert got == expected


def test_list_items_take_their_kind_from_the_list() -> None:
    items = [{"metadata": meta("n1", None)}, {"metadata": meta("n2", None)}]
    records = normalize_resource({"kind": "NodeList", "items": items})
    assert [r.id for r in records] == ["Node/n1", "Node/n2"]


def test_container_records_carry_their_state() -> None:
    [record] = normalize_resource(POD)
    [container] = record.containers
    assert container.pod_id == "Pod/shop/web-1"
    assert container.v == record.v
    assert container.row()["props"] == {
        "image": "web:1", "ready": False, "restart_count": 4, "state": "waiting",
        "state_reason": "CrashLoopBackOff", "started_at": 0.0,
        "last_termination_reason": "OOMKilled", "last_exit_code": 137,
        "last_terminated_at": to_epoch(T2), "init": False}


def test_versions_order_observations() -> None:
    old = normalize_resource({**POD, "metadata": {**POD["metadata"], "resourceVersion": "99"}})[0]
    new = normalize_resource(POD)[0]
    gone = normalize_resource({"type": "DELETED", "object": POD})[0]
    assert old.v < new.v < gone.v  # same time: resourceVersion, then delete over update
    later = normalize_resource({"op": "UPSERT", "at": "2026-01-12T16:00:00Z", "object": POD})[0]
    assert later.v > gone.v


def test_every_row_of_a_kind_names_every_state_key_and_never_none() -> None:
    small = normalize_resource({"op": "UPSERT", "kind": "Pod", "namespace": "a", "name": "p"})[0]
    props = small.row()["props"]
    assert set(props) == set(normalize_resource(POD)[0].row()["props"])
    # Absent is empty, never None: the graph never removes a property (common.filled).
    assert None not in props.values()
    assert (props["pod_ip"], props["restart_count"], props["last_terminated_at"]) == ("", 0, 0.0)
    assert "replicas" not in props


@pytest.mark.parametrize(("entity", "expected"), [
    ("pod::uid-1", ("", "Pod", "uid-1")),
    ("pod:uid-1", ("", "Pod", "uid-1")),
    ("Pod/shop/web-1", ("Pod/shop/web-1", "Pod", "")),
    ("node/n1", ("Node/n1", "Node", "")),
])
def test_tombstones_take_what_they_delete_from_the_key(entity: str,
                                                       expected: tuple[str, str, str]) -> None:
    [record] = normalize_resource(None, entity)
    assert record.op == TOMBSTONE
    assert (record.id, record.kind, record.uid) == expected


@pytest.mark.parametrize(("value", "entity", "reason"), [
    (None, "", "unattributable-tombstone"),
    (None, "garbage", "unattributable-tombstone"),
    ("text", "", "unrecognized-resource"),
    ({"foo": 1}, "", "unrecognized-resource"),
    ({"op": "MERGE", "kind": "Pod", "name": "x"}, "", "unrecognized-resource"),
    ({"op": "UPSERT", "kind": "Pod"}, "", "unrecognized-resource"),
    ({"kind": "Pod", "metadata": {}}, "", "unrecognized-resource"),
])
def test_unrecognized_resources_are_rejected(value: Any, entity: str, reason: str) -> None:
    with pytest.raises(RejectedRecordError) as info:
        normalize_resource(value, entity)
    assert info.value.reason == reason


def test_the_newest_time_of_an_object_skips_spec_annotations_and_deep_nesting() -> None:
    def at(minute: int) -> str:
        return f"2026-01-12T15:{minute:02d}:00Z"

    deep: dict[str, Any] = {"creationTimestamp": at(59)}
    for _ in range(6):  # seven levels below the object: too deep to be its state
        deep = {"nested": deep}
    obj = {"metadata": {"creationTimestamp": at(1), "annotations": {"time": at(50)}},
           "spec": {"template": {"metadata": {"creationTimestamp": at(40)}}},
           "status": {"conditions": [{"lastTransitionTime": at(3)}, "text", 7,
                                     {"lastProbeTime": "garbage"}],
                      "containerStatuses": [{"state": {"running": {"startedAt": at(5)}}}]},
           "deep": deep}
    assert newest_time(obj) == to_epoch(at(5))
    assert newest_time({"kind": "Pod"}) is None
    six_deep: dict[str, Any] = {"startedAt": at(58)}
    for _ in range(5):
        six_deep = {"nested": six_deep}
    assert newest_time({"deep": six_deep}) == to_epoch(at(58))
