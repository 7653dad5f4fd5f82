"""Alert records as the kg agent's pipelines build them, for tests.

- :func:`vector_twins`: Vector's ``prom_alerts_explode`` + ``prom_alerts_norm`` (the
  chart's ``vector-daemonset.yaml``): one record per alert, the whole webhook payload
  with ``alerts`` as ONE object, top-level ``labels``/``annotations`` emptied, and
  ``event_id``, ``event_time``, ``etype``, ``reason``, ``status``, ``severity``,
  ``message``, ``subject`` computed from those (empty) top-level labels;
- :func:`receiver_records`: ``alert-receiver/main.go``'s ``transformAlertToNormalizedEvent``.
"""

from __future__ import annotations

import uuid
from typing import Any

#: An Alertmanager v4 webhook body: one alert firing, one resolved, receiver ``kg-rca``.
PAYLOAD: dict[str, Any] = {
    "version": "4", "groupKey": "{}:{alertname=\"KubePodCrashLooping\"}", "truncatedAlerts": 0,
    "status": "firing", "receiver": "kg-rca", "externalURL": "http://am:9093",
    "groupLabels": {"alertname": "KubePodCrashLooping"},
    "commonLabels": {"alertname": "KubePodCrashLooping", "severity": "critical"},
    "commonAnnotations": {},
    "alerts": [
        {"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop",
                                        "pod": "web-1", "severity": "critical"},
         "annotations": {"summary": "web-1 restarts"}, "startsAt": "2026-03-01T10:00:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/g",
         "fingerprint": "a1b2c3d4e5f60718"},
        {"status": "resolved", "labels": {"alertname": "KubePodCrashLooping",
                                          "namespace": "shop", "pod": "web-2",
                                          "severity": "critical"},
         "annotations": {}, "startsAt": "2026-03-01T09:00:00Z",
         "endsAt": "2026-03-01T09:30:00Z", "fingerprint": "0f0e0d0c0b0a0908"}]}


def vector_twins(payload: dict[str, Any], now: str) -> list[dict[str, Any]]:
    out = []
    for alert in payload.get("alerts") or []:
        record = {**payload, "alerts": alert, "message_key": f"af-9::{payload.get('groupKey')}"}
        common = payload.get("commonLabels") or {}
        record.update(event_id=str(uuid.uuid4()), event_time=now, etype="prom.alert",
                      labels={}, annotations={})
        record["reason"] = common.get("alertname") or "UNKNOWN"
        record["status"] = payload.get("status") or "firing"
        record["severity"] = (common.get("severity") or "WARNING").upper()
        record["message"] = ""
        record["subject"] = {"kind": "Service", "ns": "", "name": ""}
        out.append(record)
    return out


def receiver_records(payload: dict[str, Any], now: str) -> list[dict[str, Any]]:
    out = []
    for alert in payload.get("alerts") or []:
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        kind, name = "Service", ""
        for label, label_kind in (("pod", "Pod"), ("service", "Service"),
                                  ("deployment", "Deployment"), ("node", "Node")):
            if labels.get(label):
                kind, name = label_kind, labels[label]
                break
        alertname = labels.get("alertname") or "UnknownAlert"
        severity = (labels.get("severity") or "").upper()
        if severity not in ("CRITICAL", "WARNING", "INFO"):
            severity = "WARNING"
        message = (annotations.get("description") or annotations.get("summary")
                   or f"Alert {alertname} is {alert.get('status')}")
        out.append({"event_id": str(uuid.uuid4()), "event_time": now, "client_id": "af-9",
                    "etype": "prom.alert", "severity": severity, "reason": alertname,
                    "message": message, "subject": {
                        "kind": kind, "uid": labels.get("uid", ""),
                        "ns": labels.get("namespace") or "default", "name": name}})
    return out
