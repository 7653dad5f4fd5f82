"""Unit table: alerts as the kg agent's pipelines send them (Vector's normalized twin
on events.normalized, the bridge's exploded webhook alerts, the alert-receiver's
signals on alerts.raw) to alert records."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kgcelery.bridge.routing import explode_alerts
from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.alerts import AlertRecord, is_alert, normalize_alert
from tests.agent_alert_records import PAYLOAD, receiver_records, vector_twins

NOW = "2026-03-01T10:05:00.123Z"
def _wire(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def test_vector_twin_is_the_raw_payloads_alert() -> None:
    raw = normalize_alert(_wire(PAYLOAD))
    twins = [a for record in vector_twins(PAYLOAD, NOW) for a in normalize_alert(_wire(record))]
    assert [a.id for a in twins] == [a.id for a in raw]
    assert [a.row() for a in twins] == [a.row() for a in raw]
    assert twins[0].id == f"a1b2c3d4e5f60718@{round(to_epoch('2026-03-01T10:00:00Z') * 1000)}"
    assert [(a.status, a.object_id, a.props["receiver"]) for a in twins] == [
        ("firing", "Pod/shop/web-1", "kg-rca"), ("resolved", "Pod/shop/web-2", "kg-rca")]


def test_vector_twin_on_an_event_topic_is_an_alert() -> None:
    assert all(is_alert(_wire(r)) for r in vector_twins(PAYLOAD, NOW))
    assert not is_alert({"involvedObject": {"kind": "Pod", "name": "x"}, "reason": "BackOff"})


def test_exploded_webhook_alerts_keep_their_receiver() -> None:
    exploded = explode_alerts(_wire(PAYLOAD))
    assert exploded is not None
    alerts = [a for item in exploded for a in normalize_alert(_wire(item))]
    assert [a.props["receiver"] for a in alerts] == ["kg-rca", "kg-rca"]
    assert [a.row() for a in alerts] == [a.row() for a in normalize_alert(_wire(PAYLOAD))]


def test_alert_receiver_signal_is_an_alert_about_its_subject() -> None:
    [first, _] = receiver_records(PAYLOAD, NOW)
    [alert] = normalize_alert(_wire(first))
    assert isinstance(alert, AlertRecord)
    assert (alert.name, alert.severity, alert.status, alert.object_id) == (
        "KubePodCrashLooping", "critical", "firing", "Pod/shop/web-1")
    assert alert.props["summary"] == "web-1 restarts"
    assert alert.props["source"] == "alert-receiver"
    assert alert.starts_at == alert.seen == to_epoch(NOW)


def test_repeated_notifications_of_one_alert_are_one_node() -> None:
    [a] = normalize_alert(_wire(receiver_records(PAYLOAD, NOW)[0]))
    [b] = normalize_alert(_wire(receiver_records(PAYLOAD, "2026-03-01T14:05:00Z")[0]))
    [other] = normalize_alert(_wire(receiver_records(PAYLOAD, NOW)[1]))
    assert a.id == b.id != other.id and b.v > a.v


def test_a_node_subject_is_cluster_scoped() -> None:
    record = {"event_id": "e", "event_time": NOW, "etype": "prom.alert", "severity": "INFO",
              "reason": "NodeDown", "message": "m",
              "subject": {"kind": "Node", "uid": "", "ns": "default", "name": "node-1"}}
    [alert] = normalize_alert(record)
    assert (alert.object_id, alert.severity) == ("Node/node-1", "info")


def test_an_alert_receiver_signal_without_object_is_about_nothing() -> None:
    record = {"event_id": "e", "event_time": NOW, "etype": "prom.alert", "severity": "WARNING",
              "reason": "Watchdog", "message": "m",
              "subject": {"kind": "Service", "uid": "", "ns": "default", "name": ""}}
    [alert] = normalize_alert(record)
    assert (alert.object_id, alert.object_label) == ("", "")


def test_a_signal_without_reason_is_refused() -> None:
    with pytest.raises(RejectedRecordError) as caught:
        normalize_alert({"etype": "prom.alert", "event_time": NOW, "subject": {}})
    assert caught.value.reason == "unrecognized-alert"
