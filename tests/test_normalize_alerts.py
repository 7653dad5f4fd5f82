"""Unit table: Alertmanager payloads and alerts to alert records."""

from __future__ import annotations

from typing import Any

import pytest

from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.alerts import about, fingerprint, normalize_alert

START, END = "2026-01-12T15:00:00Z", "2026-01-12T15:30:00Z"
ALERT: dict[str, Any] = {
    "status": "firing",
    "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "web-1",
               "severity": "critical"},
    "annotations": {"summary": "web-1 restarts", "description": "restarting"},
    "startsAt": START, "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "a4c6c4f7a49ca0ae",
    "generatorURL": "http://prometheus/graph"}
WEBHOOK: dict[str, Any] = {
    "version": "4", "receiver": "team", "status": "firing", "groupKey": "{}",
    "alerts": [ALERT, {**ALERT, "labels": {**ALERT["labels"], "pod": "web-2"},
                       "fingerprint": "b"}]}
API_V2: dict[str, Any] = {
    "labels": {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "default",
               "deployment": "demo", "pod": "kube-state-metrics-7c6f4866fc-rclv2",
               "service": "kube-state-metrics", "severity": "warning"},
    "annotations": {}, "startsAt": START, "updatedAt": END, "endsAt": END,
    "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}


def test_a_webhook_payload_is_exploded_into_its_alerts() -> None:
    alerts = normalize_alert(WEBHOOK)
    assert [a.object_id for a in alerts] == ["Pod/shop/web-1", "Pod/shop/web-2"]
    first = alerts[0]
    assert first.id == f"a4c6c4f7a49ca0ae@{round(to_epoch(START) * 1000)}"  # type: ignore[operator]
    assert (first.name, first.status, first.severity) == ("KubePodCrashLooping", "firing",
                                                          "critical")
    assert first.ends_at is None and first.props["receiver"] == "team"
    assert first.props["summary"] == "web-1 restarts"


def test_one_alert_alone_and_a_list_of_alerts() -> None:
    assert [a.name for a in normalize_alert(ALERT)] == ["KubePodCrashLooping"]
    assert len(normalize_alert([ALERT, API_V2])) == 2


def test_resolution_is_newer_than_firing_and_keeps_the_episode() -> None:
    [firing] = normalize_alert(ALERT)
    [resolved] = normalize_alert({**ALERT, "status": "resolved", "endsAt": END})
    assert resolved.id == firing.id and resolved.status == "resolved"
    assert resolved.v > firing.v and resolved.ends_at == to_epoch(END)


def test_an_api_v2_alert_is_firing_and_about_its_deployment_not_the_exporter_pod() -> None:
    [alert] = normalize_alert(API_V2)
    assert alert.status == "firing" and alert.object_id == "Deployment/default/demo"
    assert alert.fingerprint == fingerprint(API_V2["labels"])


@pytest.mark.parametrize(("labels", "expected"), [
    ({"pod": "p", "namespace": "a"}, "Pod/a/p"),
    ({"pod": "ksm-1", "job_name": "migrate", "job": "kube-state-metrics", "namespace": "a"},
     "Job/a/migrate"),
    ({"statefulset": "db", "namespace": "a"}, "StatefulSet/a/db"),
    ({"daemonset": "agent", "namespace": "a"}, "DaemonSet/a/agent"),
    ({"node": "n1", "namespace": "monitoring"}, "Node/n1"),
    ({"service": "web", "namespace": "a", "job": "web"}, "Service/a/web"),
    ({"namespace": "a"}, "Namespace/a"),
    ({"alertname": "Watchdog"}, ""),
])
def test_the_object_an_alert_is_about(labels: dict[str, str], expected: str) -> None:
    assert about(labels)[0] == expected


def test_fingerprints_match_alertmanager() -> None:
    # Fingerprints that Alertmanager computed, from real payloads in the corpus.
    labels = {"alertname": "KubePodCrashLooping", "container": "busybox-3jb7u6",
              "instance": "10.233.71.230:8080", "job": "kube-state-metrics",
              "namespace": "pp1", "pod": "dd1-0",
              "prometheus": "kubesphere-monitoring-system/k8s", "severity": "critical"}
    assert fingerprint(labels) == "a4c6c4f7a49ca0ae"
    [alert] = normalize_alert({**ALERT, "labels": labels, "fingerprint": None})
    assert alert.fingerprint == "a4c6c4f7a49ca0ae"


@pytest.mark.parametrize(("severity", "expected"), [
    ("critical", "critical"), ("page", "critical"), ("warning", "warning"), ("info", "info"),
    ("none", "info"), ("high", "error"), ("", "warning"), ("weird", "warning")])
def test_severities(severity: str, expected: str) -> None:
    labels = {**ALERT["labels"], "severity": severity}
    assert normalize_alert({**ALERT, "labels": labels})[0].severity == expected


@pytest.mark.parametrize("value", ["x", 1, {"foo": 1}, {"labels": {}}, {"labels": "x"}])
def test_unrecognized_alerts_are_rejected(value: Any) -> None:
    with pytest.raises(RejectedRecordError) as info:
        normalize_alert(value)
    assert info.value.reason == "unrecognized-alert"
