"""Unit table: every accepted event shape to one normalized event record."""

from __future__ import annotations

from typing import Any

import pytest

from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.events import normalize_event, severity_of

T0, T1 = "2026-01-12T15:00:00Z", "2026-01-12T15:05:00Z"

CORE_V1: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Event",
    "metadata": {"name": "web-1.17a", "namespace": "shop", "uid": "ev-1",
                 "creationTimestamp": T0},
    "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "pod-1",
                       "fieldPath": "spec.containers{web}"},
    "reason": "BackOff", "message": "Back-off restarting failed container web", "type": "Warning",
    "count": 25, "firstTimestamp": T0, "lastTimestamp": T1,
    "source": {"component": "kubelet", "host": "node-a"},
}
EVENTS_V1: dict[str, Any] = {
    "apiVersion": "events.k8s.io/v1", "kind": "Event",
    "metadata": {"name": "x", "namespace": "shop", "uid": "ev-2", "creationTimestamp": T0},
    "regarding": {"kind": "Node", "name": "node-a", "uid": "node-uid", "namespace": "shop"},
    "note": "Node node-a status is now: NodeNotReady", "reason": "NodeNotReady",
    "type": "Normal", "eventTime": T0, "reportingController": "node-controller",
    "reportingInstance": "cp-1", "series": {"count": 4, "lastObservedTime": T1},
}
# kubernetes-event-exporter: core/v1 with labels, owners and clusterName added.
EXPORTER = {**CORE_V1, "clusterName": "prod", "metadata": {**CORE_V1["metadata"], "uid": "ev-3"},
            "involvedObject": {**CORE_V1["involvedObject"], "labels": {"app": "web"},
                               "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d"}],
                               "deleted": False}}
NORMALIZED = {"reason": "OOMKilling", "message": "Memory cgroup out of memory",
              "namespace": "shop", "pod_name": "web-1", "timestamp": T1, "severity": "ERROR"}


@pytest.mark.parametrize(("value", "expected"), [
    (CORE_V1, {"id": "ev-1", "object_id": "Pod/shop/web-1", "object_uid": "pod-1", "count": 25,
               "first_seen": to_epoch(T0), "last_seen": to_epoch(T1), "severity": "error",
               "source_component": "kubelet", "source_host": "node-a",
               "field_path": "spec.containers{web}"}),
    ({"type": "MODIFIED", "object": CORE_V1}, {"id": "ev-1", "object_id": "Pod/shop/web-1"}),
    # A cluster-scoped object never takes the event's namespace.
    (EVENTS_V1, {"id": "ev-2", "object_id": "Node/node-a", "object_namespace": "",
                 "message": "Node node-a status is now: NodeNotReady", "count": 4,
                 "first_seen": to_epoch(T0), "last_seen": to_epoch(T1), "severity": "critical",
                 "source_component": "node-controller", "source_host": "cp-1"}),
    (EXPORTER, {"id": "ev-3", "object_id": "Pod/shop/web-1", "count": 25}),
    (NORMALIZED, {"object_id": "Pod/shop/web-1", "severity": "error", "count": 1,
                  "last_seen": to_epoch(T1), "type": "Normal"}),
    # Only eventTime: it is both first and last seen.
    ({**CORE_V1, "firstTimestamp": None, "lastTimestamp": None, "eventTime": T1},
     {"first_seen": to_epoch(T1), "last_seen": to_epoch(T1)}),
    # Nothing but the creation time.
    ({**CORE_V1, "firstTimestamp": None, "lastTimestamp": None},
     {"first_seen": to_epoch(T0), "last_seen": to_epoch(T0)}),
    # Lower-case kinds as some agents write them.
    ({**NORMALIZED, "involved_object_kind": "deployment", "involved_object_name": "web"},
     {"object_id": "Deployment/shop/web", "object_kind": "Deployment"}),
])
def test_event_shapes(value: dict[str, Any], expected: dict[str, Any]) -> None:
    [event] = normalize_event(value)
    got = {name: getattr(event, name) for name in expected}
    assert got == expected


def test_an_event_list_yields_every_item_and_items_need_no_kind() -> None:
    items = [{k: v for k, v in CORE_V1.items() if k not in ("kind", "apiVersion")},
             {**CORE_V1, "metadata": {**CORE_V1["metadata"], "uid": "ev-9"}}]
    events = normalize_event({"kind": "EventList", "items": items})
    assert [e.id for e in events] == ["ev-1", "ev-9"]


def test_without_uid_the_id_is_stable_per_occurrence() -> None:
    first = normalize_event(NORMALIZED)[0].id
    assert normalize_event(dict(NORMALIZED))[0].id == first
    assert normalize_event({**NORMALIZED, "timestamp": T0})[0].id != first


def test_the_row_keeps_mutable_fields_apart_and_versions_by_last_seen() -> None:
    older = normalize_event({**CORE_V1, "lastTimestamp": T0, "count": 3})[0]
    newer = normalize_event(CORE_V1)[0]
    assert newer.row()["v"] > older.row()["v"]
    assert newer.row()["props"]["message"] == CORE_V1["message"]
    assert newer.object_row() == {
        "object_id": "Pod/shop/web-1", "object_kind": "Pod", "object_namespace": "shop",
        "object_name": "web-1", "object_uid": "pod-1",
        "object_uid_v": "1.pod-1"}


@pytest.mark.parametrize("value", [
    "not an object", 42, None, {"kind": "Event"}, {"reason": "x"},
    {**CORE_V1, "involvedObject": {"kind": "Pod"}},  # names no object
])
def test_unrecognized_events_are_rejected_with_a_reason(value: Any) -> None:
    with pytest.raises(RejectedRecordError) as info:
        normalize_event(value)
    assert info.value.reason == "unrecognized-event"


@pytest.mark.parametrize(("event_type", "reason", "severity"), [
    ("Normal", "Pulled", "info"), ("Warning", "Unhealthy", "warning"),
    ("Normal", "BackOff", "error"), ("Warning", "FailedMount", "error"),
    ("Warning", "OOMKilling", "critical"), ("Normal", "NodeNotReady", "critical"),
])
def test_severity(event_type: str, reason: str, severity: str) -> None:
    assert severity_of(event_type, reason) == severity
