"""Prometheus Alertmanager alerts, whole webhook payloads or single alerts, to records.

Accepted shapes: a webhook payload (``{"receiver", "status", "alerts": [...]}``, version
4 or older, exploded into its alerts), one webhook alert (``labels``, ``annotations``,
``status``, ``startsAt``, ``endsAt``, ``fingerprint``; the bridge's exploded alerts also
carry the payload's ``receiver``), an Alertmanager API v2 alert (``status: {"state":
...}``, ``updatedAt``), a JSON list of any of those, and the kg agent's graph-builder
signals (``etype: "prom.alert"``):
- Vector's alert pipeline (``events.normalized``): the webhook payload with ``alerts``
  holding ONE alert (VRL ``unnest``), plus ``event_id``, ``reason``, ``severity``,
  ``subject``: the alert is the one in ``alerts``, so it is the same node as the raw
  payload's (``raw.prom.alerts``) alert;
- the alert-receiver (``alerts.raw``): ``{event_id, event_time, etype, severity,
  reason, message, subject: {kind, uid, ns, name}}``, no labels, fingerprint, start or
  status. Its node is keyed by alert name and subject (``rcv:<hash>``): one node per
  alert and object, first and last notification times, status ``firing`` (the record
  cannot say otherwise), ``source: "alert-receiver"``. It cannot be matched to the
  webhook's episode node: nothing it carries identifies the episode.

An alert node stands for one firing episode: Alertmanager keeps the fingerprint (a
hash of the labels) across episodes, so the id is ``<fingerprint>@<startsAt>``. The
object it is about comes from its labels: workload controllers, then pod, node,
service, namespace (see :data:`OBJECT_LABELS`). (``job`` and ``instance`` name the scrape
target, never the object; ``job_name`` is a Job in kube-state-metrics alerts.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kgcelery.errors import RejectedRecordError
from kgcelery.model.objects import CLUSTER_SCOPED, canonical_kind, label_for, object_id
from kgcelery.model.timeparse import first_epoch
from kgcelery.normalize.common import (
    RANK_DELETE,
    RANK_UPSERT,
    digest,
    filled,
    object_ref,
    pairs,
    text,
    version,
)

#: Label -> kind of the object an alert is about, in order of preference. Controllers
#: come before ``pod``: a kube-state-metrics alert about a Deployment or Job carries the
#: exporter's own pod in ``pod`` (real alerts in the corpus do), while alerts about a
#: pod carry no controller label.
OBJECT_LABELS = (("statefulset", "StatefulSet"), ("deployment", "Deployment"),
                 ("daemonset", "DaemonSet"), ("replicaset", "ReplicaSet"),
                 ("job_name", "Job"), ("cronjob", "CronJob"), ("pod", "Pod"),
                 ("node", "Node"), ("service", "Service"))
_SEVERITY = {"critical": "critical", "page": "critical", "emergency": "critical",
             "error": "error", "high": "error", "major": "error", "warning": "warning",
             "warn": "warning", "medium": "warning", "minor": "warning", "info": "info",
             "informational": "info", "low": "info", "none": "info"}
#: Every state property of an alert node and its empty value (see ``common.filled``).
ALERT_DEFAULTS: dict[str, Any] = {
    "status": "", "severity": "", "ends_at": 0.0, "summary": "", "description": "",
    "runbook_url": "", "generator_url": "", "receiver": "", "labels": [],
    "updated_at": 0.0, "silenced": False, "source": ""}
_FNV_OFFSET, _FNV_PRIME, _MASK = 14695981039346656037, 1099511628211, 2**64 - 1


def fingerprint(labels: dict[str, Any]) -> str:
    """Alertmanager's fingerprint of a label set (FNV-1a 64 over sorted names and values,
    each followed by byte 255), for alerts that arrive without one."""
    digest = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, text(labels[name])):
            for byte in part.encode() + b"\xff":
                digest = ((digest ^ byte) * _FNV_PRIME) & _MASK
    return f"{digest:016x}"


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One observation of one alert episode."""

    id: str
    name: str
    fingerprint: str
    status: str
    severity: str
    starts_at: float | None
    ends_at: float | None
    seen: float | None
    v: str
    object_id: str
    object_kind: str
    object_namespace: str
    object_name: str
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def object_label(self) -> str:
        return label_for(self.object_kind) if self.object_id else ""

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "v": self.v, "starts_at": self.starts_at, "seen": self.seen,
                "name": self.name, "fingerprint": self.fingerprint,
                "object_id": self.object_id,
                "props": filled({"status": self.status, "severity": self.severity,
                                 "ends_at": self.ends_at, **self.props}, ALERT_DEFAULTS)}

    def object_row(self) -> dict[str, Any]:
        """The row naming the object this alert is about (``cypher.merge_objects``)."""
        return object_ref(self.object_id, self.object_kind, self.object_namespace,
                          self.object_name, "")


def about(labels: dict[str, Any]) -> tuple[str, str, str, str]:
    """(id, kind, namespace, name) of the object an alert is about; empty if none."""
    namespace = text(labels.get("namespace"))
    for label, kind in OBJECT_LABELS:
        name = text(labels.get(label))
        if name:
            oid = object_id(kind, namespace, name)
            return oid, kind, "" if kind == "Node" else namespace, name
    if namespace:
        return object_id("Namespace", None, namespace), "Namespace", "", namespace
    return "", "", "", ""


def _alert(alert: dict[str, Any], payload: dict[str, Any]) -> AlertRecord:
    labels = alert.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise RejectedRecordError("unrecognized-alert", "an alert needs a non-empty labels map")
    annotations: dict[str, Any] = alert["annotations"] if isinstance(
        alert.get("annotations"), dict) else {}
    raw_status = alert.get("status") or payload.get("status")
    state = raw_status.get("state") if isinstance(raw_status, dict) else raw_status
    status = "resolved" if text(state).lower() == "resolved" else "firing"
    starts = first_epoch(alert.get("startsAt"))
    ends = first_epoch(alert.get("endsAt"))
    updated = first_epoch(alert.get("updatedAt"))
    # A resolution is observed when it ended; a firing alert when last updated/started.
    seen = (ends if status == "resolved" else None) or updated or starts
    fp = text(alert.get("fingerprint")) or fingerprint(labels)
    oid, kind, namespace, name = about(labels)
    props = {
        "summary": text(annotations.get("summary") or annotations.get("message")) or None,
        "description": text(annotations.get("description")) or None,
        "runbook_url": text(annotations.get("runbook_url")) or None,
        "generator_url": text(alert.get("generatorURL")) or None,
        "receiver": text(payload.get("receiver") or alert.get("receiver")) or None,
        "labels": pairs(labels), "updated_at": updated,
        "silenced": bool(isinstance(raw_status, dict) and raw_status.get("silencedBy")),
        "source": "alertmanager",
    }
    severity = _SEVERITY.get(text(labels.get("severity")).lower(), "warning")
    return AlertRecord(
        id=f"{fp}@{round((starts or 0) * 1000)}", name=text(labels.get("alertname")) or fp,
        fingerprint=fp, status=status, severity=severity, starts_at=starts, ends_at=ends,
        seen=seen, v=version(seen, None, rank=RANK_DELETE if status == "resolved" else
                             RANK_UPSERT, content=[status, severity, ends, props]),
        object_id=oid, object_kind=kind, object_namespace=namespace, object_name=name,
        props=props)


def _signal(value: dict[str, Any]) -> AlertRecord:
    """An alert-receiver record (see the module docstring)."""
    given = value.get("subject")
    subject: dict[str, Any] = given if isinstance(given, dict) else {}
    name = text(value.get("reason"))
    if not name:
        raise RejectedRecordError("unrecognized-alert",
                                  "a prom.alert signal needs a reason (the alert's name)")
    kind = canonical_kind(text(subject.get("kind")))
    object_name = text(subject.get("name"))
    namespace = "" if kind in CLUSTER_SCOPED else text(subject.get("ns"))
    oid = object_id(kind, namespace, object_name) if kind and object_name else ""
    seen = first_epoch(value.get("event_time"), value.get("timestamp"))
    severity = _SEVERITY.get(text(value.get("severity")).lower(), "warning")
    # Its labels are not sent: only the name is known to be one.
    props = {"summary": text(value.get("message")) or None, "source": "alert-receiver",
             "labels": pairs({"alertname": name})}
    return AlertRecord(
        id=f"rcv:{digest([name, kind, namespace, object_name], 20)}", name=name,
        fingerprint="", status="firing", severity=severity, starts_at=seen, ends_at=None,
        seen=seen, v=version(seen, None, content=[severity, props, value.get("event_id")]),
        object_id=oid, object_kind=kind if oid else "",
        object_namespace=namespace if oid else "", object_name=object_name if oid else "",
        props=props)


def is_alert(value: Any) -> bool:
    """Whether a record on an event topic is an alert (Vector's ``prom.alert`` twin)."""
    return isinstance(value, dict) and (
        value.get("etype") == "prom.alert" or isinstance(value.get("alerts"), dict))


def normalize_alert(value: Any) -> list[AlertRecord]:
    """One input value to its alerts (a webhook payload or a list holds several).

    Raises :class:`RejectedRecordError` (``unrecognized-alert``) for anything else.
    """
    if isinstance(value, list):
        return [alert for item in value for alert in normalize_alert(item)]
    if not isinstance(value, dict):
        raise RejectedRecordError("unrecognized-alert",
                                  f"an alert must be a JSON object, not {type(value).__name__}")
    if isinstance(value.get("alerts"), list):
        return [_alert(alert, value) for alert in value["alerts"] if isinstance(alert, dict)]
    if isinstance(value.get("alerts"), dict):  # Vector's unnested payload
        return [_alert(value["alerts"], value)]
    if value.get("labels"):
        return [_alert(value, {})]
    if value.get("etype") == "prom.alert":
        return [_signal(value)]
    if "labels" in value:
        return [_alert(value, {})]
    raise RejectedRecordError("unrecognized-alert",
                              "not an Alertmanager webhook payload (alerts) nor an alert "
                              f"(labels); keys: {sorted(value)[:12]}")
