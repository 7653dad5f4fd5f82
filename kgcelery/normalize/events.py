"""Kubernetes events, in every shape the wire contract accepts, to one event record.

Accepted shapes: core/v1 ``Event`` (also as a watch frame ``{"type", "object"}`` or an
``EventList``), ``events.k8s.io/v1`` ``Event`` (``regarding``/``note``/``series``),
kubernetes-event-exporter's enriched form (core/v1 plus involvedObject labels and
owners), and an already normalized event (``reason``, ``message``, ``namespace``,
``pod_name``, ``involved_object_kind/name``, ``timestamp``, ``severity``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from kgcelery.errors import RejectedRecordError
from kgcelery.graph.model import CLUSTER_SCOPED, label_for, object_id
from kgcelery.normalize.timeparse import first_epoch

#: Reasons that point at a failure, whatever the event's type says.
_ERROR_REASONS = frozenset({
    "Failed", "BackOff", "CrashLoopBackOff", "OOMKilling", "OOMKilled", "Evicted",
    "FailedMount", "FailedAttachVolume", "FailedCreatePodSandBox", "FailedKillPod",
    "BackoffLimitExceeded", "DeadlineExceeded", "ErrImagePull", "ImagePullBackOff",
    "FailedCreate", "FailedSync", "NodeNotReady", "SystemOOM", "Rebooted",
    "FailedPostStartHook", "FailedPreStopHook", "InspectFailed", "ErrImageNeverPull",
})
_CRITICAL_REASONS = frozenset({"OOMKilling", "SystemOOM", "NodeNotReady", "Rebooted"})
_SEVERITIES = ("info", "warning", "error", "critical")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One normalized event, about one object; times are epoch seconds."""

    id: str
    reason: str
    type: str
    message: str
    count: int
    first_seen: float | None
    last_seen: float | None
    severity: str
    source_component: str
    source_host: str
    object_id: str
    object_label: str
    object_kind: str
    object_namespace: str
    object_name: str
    object_uid: str
    field_path: str

    def row(self) -> dict[str, Any]:
        return asdict(self)


def severity_of(event_type: str, reason: str) -> str:
    if reason in _CRITICAL_REASONS:
        return "critical"
    if reason in _ERROR_REASONS:
        return "error"
    if event_type.lower() == "warning":
        return "warning"
    return "info"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _count(*values: Any) -> int:
    for value in values:
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) and value >= 0:
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return 1


def _fallback_id(*parts: Any) -> str:
    digest = hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:20]
    return f"ev:{digest}"


def _object(ref: dict[str, Any], default_namespace: str) -> dict[str, str]:
    kind = _text(ref.get("kind")) or "Unknown"
    name = _text(ref.get("name"))
    if not name:
        raise RejectedRecordError("unrecognized-event", "the event names no object")
    # Cluster-scoped objects (a Node) sometimes carry the event's namespace anyway.
    namespace = "" if kind in CLUSTER_SCOPED else (
        _text(ref.get("namespace")) or default_namespace)
    oid = object_id(kind, namespace, name)
    return {"object_id": oid, "object_label": label_for(kind), "object_kind": kind,
            "object_namespace": namespace, "object_name": name,
            "object_uid": _text(ref.get("uid")), "field_path": _text(ref.get("fieldPath"))}


def _core_v1(event: dict[str, Any]) -> EventRecord:
    meta = event.get("metadata") or {}
    series = event.get("series") or {}
    source = event.get("source") or {}
    reason = _text(event.get("reason"))
    event_type = _text(event.get("type")) or "Normal"
    obj = _object(event.get("involvedObject") or {}, _text(meta.get("namespace")))
    first = first_epoch(event.get("firstTimestamp"), event.get("eventTime"),
                        meta.get("creationTimestamp"))
    last = first_epoch(series.get("lastObservedTime"), event.get("lastTimestamp"),
                       event.get("eventTime"), event.get("firstTimestamp"),
                       meta.get("creationTimestamp"))
    message = _text(event.get("message"))
    uid = _text(meta.get("uid"))
    return EventRecord(
        id=uid or _fallback_id(obj["object_id"], reason, meta.get("name"), first),
        reason=reason, type=event_type, message=message,
        count=_count(series.get("count"), event.get("count")),
        first_seen=first, last_seen=last if last is not None else first,
        severity=severity_of(event_type, reason),
        source_component=_text(source.get("component") or event.get("reportingComponent")),
        source_host=_text(source.get("host") or event.get("reportingInstance")),
        **obj,
    )


def _events_v1(event: dict[str, Any]) -> EventRecord:
    meta = event.get("metadata") or {}
    series = event.get("series") or {}
    source = event.get("deprecatedSource") or {}
    reason = _text(event.get("reason"))
    event_type = _text(event.get("type")) or "Normal"
    obj = _object(event.get("regarding") or {}, _text(meta.get("namespace")))
    first = first_epoch(event.get("deprecatedFirstTimestamp"), event.get("eventTime"),
                        meta.get("creationTimestamp"))
    last = first_epoch(series.get("lastObservedTime"), event.get("deprecatedLastTimestamp"),
                       event.get("eventTime"), meta.get("creationTimestamp"))
    uid = _text(meta.get("uid"))
    return EventRecord(
        id=uid or _fallback_id(obj["object_id"], reason, meta.get("name"), first),
        reason=reason, type=event_type, message=_text(event.get("note")),
        count=_count(series.get("count"), event.get("deprecatedCount")),
        first_seen=first, last_seen=last if last is not None else first,
        severity=severity_of(event_type, reason),
        source_component=_text(event.get("reportingController") or source.get("component")),
        source_host=_text(source.get("host") or event.get("reportingInstance")),
        **obj,
    )


def _already_normalized(event: dict[str, Any]) -> EventRecord:
    kind = _text(event.get("involved_object_kind")) or ("Pod" if event.get("pod_name") else "")
    name = _text(event.get("involved_object_name") or event.get("pod_name"))
    namespace = _text(event.get("namespace"))
    obj = _object({"kind": kind, "name": name, "namespace": namespace,
                   "uid": event.get("involved_object_uid")}, namespace)
    reason = _text(event.get("reason"))
    message = _text(event.get("message"))
    seen = first_epoch(event.get("timestamp"), event.get("last_seen"))
    first = first_epoch(event.get("first_seen"), event.get("timestamp")) or seen
    event_type = _text(event.get("type")) or "Normal"
    severity = _text(event.get("severity")).lower()
    if severity not in _SEVERITIES:
        severity = severity_of(event_type, reason)
    return EventRecord(
        id=_text(event.get("id") or event.get("uid"))
        or _fallback_id(obj["object_id"], reason, message, seen),
        reason=reason, type=event_type, message=message, count=_count(event.get("count")),
        first_seen=first, last_seen=seen, severity=severity,
        source_component=_text(event.get("source_component") or event.get("source")),
        source_host=_text(event.get("source_host") or event.get("node_name")),
        **obj,
    )


def normalize_event(value: Any) -> list[EventRecord]:
    """One input value to its events (a list or a watch frame holds several or one).

    Raises :class:`RejectedRecordError` (reason ``unrecognized-event``) when the value
    is none of the accepted shapes.
    """
    if not isinstance(value, dict):
        raise RejectedRecordError("unrecognized-event",
                                  f"an event must be a JSON object, not {type(value).__name__}")
    if isinstance(value.get("items"), list):
        return [event for item in value["items"] for event in normalize_event(item)]
    if isinstance(value.get("object"), dict) and value.get("type") in (
            "ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
        return normalize_event(value["object"])
    if isinstance(value.get("involvedObject"), dict):
        return [_core_v1(value)]
    if isinstance(value.get("regarding"), dict):
        return [_events_v1(value)]
    if value.get("reason") and (value.get("involved_object_name") or value.get("pod_name")):
        return [_already_normalized(value)]
    raise RejectedRecordError(
        "unrecognized-event",
        "not a Kubernetes Event (no involvedObject or regarding) nor a normalized event "
        f"(reason + involved_object_name or pod_name); keys: {sorted(value)[:12]}")
