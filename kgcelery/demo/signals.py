"""The three telemetry shapes a cluster emits besides its objects: Events, logs, alerts.

- Events are core/v1 ``Event`` objects kept the way the API server keeps them: the
  same reason and message about the same object again updates the one Event (same
  uid, ``count`` + 1, newer ``lastTimestamp``).
- Logs are Vector ``kubernetes_logs`` records.
- Alerts are Alertmanager webhook payloads (version 4), one alert per notification,
  re-sent while firing and once more when resolved, with ``endsAt``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from kgcelery.demo.objects import Obj, json_copy
from kgcelery.demo.world import DemoRecord, World, iso_micro
from kgcelery.model.timeparse import iso

#: What Alertmanager writes as ``endsAt`` of an alert that still fires.
NEVER = "0001-01-01T00:00:00Z"
ALERTMANAGER_URL = "http://alertmanager.monitoring.svc:9093"
PROMETHEUS_URL = "http://prometheus.monitoring.svc:9090"


class EventBook:
    """Every Event the cluster has recorded, keyed the way the kubelet deduplicates."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._events: dict[tuple[str, str, str, str], Obj] = {}

    def emit(self, at: float, obj: Obj, reason: str, message: str, *, component: str,
             host: str = "", container: str = "", warning: bool = False) -> DemoRecord:
        """Record an Event about ``obj`` (a container of it when ``container`` is given)."""
        meta = obj["metadata"]
        field_path = f"spec.containers{{{container}}}" if container else ""
        key = (meta["uid"], reason, message, field_path)
        event = self._events.get(key)
        if event is None:
            event = self._new(at, obj, reason, message, component=component, host=host,
                              field_path=field_path, warning=warning)
            self._events[key] = event
        else:
            event["count"] += 1
            event["lastTimestamp"] = iso(at)
            event["involvedObject"]["resourceVersion"] = meta.get("resourceVersion", "")
        event["metadata"]["resourceVersion"] = self.world.next_version()
        return DemoRecord("event", f"event::{event['metadata']['uid']}", json_copy(event), at)

    def forget(self, obj: Obj) -> None:
        """Drop the Events of a deleted object (the API server garbage-collects them too)."""
        uid = obj["metadata"]["uid"]
        for key in [key for key in self._events if key[0] == uid]:
            del self._events[key]

    def _new(self, at: float, obj: Obj, reason: str, message: str, *, component: str,
             host: str, field_path: str, warning: bool) -> Obj:
        meta = obj["metadata"]
        involved: Obj = {"kind": obj["kind"], "name": meta["name"], "uid": meta["uid"],
                         "apiVersion": obj["apiVersion"],
                         "resourceVersion": meta.get("resourceVersion", "")}
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        if field_path:
            involved["fieldPath"] = field_path
        # The API server names an Event after its object and the time, in hex nanoseconds.
        name = f"{meta['name']}.{int(at * 1e9) + len(self._events):x}"
        source = {"component": component, **({"host": host} if host else {})}
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": meta.get("namespace") or "default",
                         "uid": self.world.uid(), "creationTimestamp": iso(at)},
            "involvedObject": involved, "reason": reason, "message": message,
            "type": "Warning" if warning else "Normal", "count": 1,
            "firstTimestamp": iso(at), "lastTimestamp": iso(at), "source": source,
            "reportingComponent": component, "reportingInstance": host,
        }


def log_record(at: float, pod: Obj, container_name: str, message: str, *,
               stream: str = "stdout") -> DemoRecord:
    """One log line of a container, as Vector's ``kubernetes_logs`` source ships it."""
    return DemoRecord("log", f"log::{pod['metadata']['name']}",
                      {**log_context(pod, container_name), "message": message,
                       "timestamp": iso_micro(at), "stream": stream}, at)


def log_context(pod: Obj, container_name: str) -> dict[str, Any]:
    """The fields of a log record that depend only on the pod and container."""
    meta, spec, status = pod["metadata"], pod["spec"], pod["status"]
    image = next((c["image"] for c in spec["containers"] if c["name"] == container_name), "")
    restarts = next((s.get("restartCount", 0) for s in status.get("containerStatuses", ())
                     if s["name"] == container_name), 0)
    owner = (meta.get("ownerReferences") or [{}])[0]
    return {
        "source_type": "kubernetes_logs",
        "file": f"/var/log/pods/{meta['namespace']}_{meta['name']}_{meta['uid']}/"
                f"{container_name}/{restarts}.log",
        "kubernetes": {
            "pod_name": meta["name"], "pod_namespace": meta["namespace"],
            "pod_uid": meta["uid"], "pod_node_name": spec.get("nodeName", ""),
            "pod_ip": status.get("podIP", ""), "pod_labels": dict(meta.get("labels", {})),
            "pod_owner": f"{owner.get('kind', '')}/{owner.get('name', '')}",
            "container_name": container_name, "container_image": image,
        },
    }


class AlertBook:
    """Alerts by fingerprint: when each started, and whether it still fires."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._alerts: dict[str, dict[str, Any]] = {}

    def fire(self, at: float, alertname: str, labels: dict[str, str], *, summary: str,
             description: str, expr: str, severity: str = "warning") -> DemoRecord:
        """A firing notification (the first one starts the alert, later ones repeat it)."""
        full = {"alertname": alertname, **labels, "severity": severity,
                "cluster": self.world.cluster_name, "prometheus": "monitoring/k8s"}
        fingerprint = fingerprint_of(full)
        alert = self._alerts.get(fingerprint)
        if alert is None or alert["status"] == "resolved":
            alert = {"status": "firing", "labels": full,
                     "annotations": {"summary": summary, "description": description,
                                     "runbook_url": "https://runbooks.prometheus-operator.dev/"
                                                    f"runbooks/kubernetes/{alertname.lower()}"},
                     "startsAt": iso_micro(at), "endsAt": NEVER, "fingerprint": fingerprint,
                     "generatorURL": f"{PROMETHEUS_URL}/graph?g0.expr={quote(expr)}&g0.tab=1"}
            self._alerts[fingerprint] = alert
        else:
            alert["annotations"]["description"] = description
        return self._notification(at, alert)

    def resolve(self, at: float, alertname: str, labels: dict[str, str], *,
                severity: str = "warning") -> list[DemoRecord]:
        """The resolved notification of a firing alert; nothing if it does not fire."""
        full = {"alertname": alertname, **labels, "severity": severity,
                "cluster": self.world.cluster_name, "prometheus": "monitoring/k8s"}
        alert = self._alerts.get(fingerprint_of(full))
        if alert is None or alert["status"] != "firing":
            return []
        alert["status"] = "resolved"
        alert["endsAt"] = iso_micro(at)
        return [self._notification(at, alert)]

    def firing(self, alertname: str) -> bool:
        return any(alert["status"] == "firing" and alert["labels"]["alertname"] == alertname
                   for alert in self._alerts.values())

    def _notification(self, at: float, alert: dict[str, Any]) -> DemoRecord:
        labels = alert["labels"]
        group = {"alertname": labels["alertname"], "namespace": labels.get("namespace", "")}
        group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}"
        payload = {
            "version": "4", "groupKey": group_key, "status": alert["status"],
            "receiver": "kgcelery", "groupLabels": group, "commonLabels": dict(labels),
            "commonAnnotations": dict(alert["annotations"]), "externalURL": ALERTMANAGER_URL,
            "alerts": [json_copy(alert)], "truncatedAlerts": 0,
        }
        return DemoRecord("alert", f"alert::{alert['fingerprint']}", payload, at)


def fingerprint_of(labels: dict[str, str]) -> str:
    """A stable 16-hex-digit fingerprint of a label set, like Alertmanager's."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
