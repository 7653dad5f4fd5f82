"""Kubernetes events, in every shape the wire contract accepts, to one event record.

Accepted shapes: core/v1 ``Event`` (also as a watch frame ``{"type", "object"}`` or an
``EventList``), ``events.k8s.io/v1`` ``Event`` (``regarding``/``note``/``series``),
kubernetes-event-exporter's enriched form (core/v1 plus involvedObject labels and
owners), and an already normalized event (``reason``, ``message``, ``namespace``,
``pod_name``, ``involved_object_kind/name``, ``timestamp``, ``severity``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kgcelery.errors import RejectedRecordError
from kgcelery.model.objects import CLUSTER_SCOPED, canonical_kind, label_for, object_id
from kgcelery.model.timeparse import first_epoch
from kgcelery.normalize.common import count, digest, object_ref, text, version

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

    #: Newest observation first: last seen, then count, then content.
    v: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "v", version(self.last_seen, self.count, content=[
            self.reason, self.type, self.message, self.severity, self.source_component,
            self.source_host, self.field_path, self.first_seen]))

    def row(self) -> dict[str, Any]:
        """The graph row: merged fields apart, the newest observation's fields in props."""
        return {
            "id": self.id, "v": self.v, "count": self.count,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
            "object_id": self.object_id,
            "props": {"reason": self.reason, "type": self.type, "message": self.message,
                      "severity": self.severity, "source_component": self.source_component,
                      "source_host": self.source_host, "field_path": self.field_path,
                      "namespace": self.object_namespace},
        }

    def object_row(self) -> dict[str, Any]:
        """The row naming the object this event is about (``cypher.merge_objects``)."""
        return object_ref(self.object_id, self.object_kind, self.object_namespace,
                          self.object_name, self.object_uid)


def severity_of(event_type: str, reason: str) -> str:
    if reason in _CRITICAL_REASONS:
        return "critical"
    if reason in _ERROR_REASONS:
        return "error"
    if event_type.lower() == "warning":
        return "warning"
    return "info"


def _fallback_id(*parts: Any) -> str:
    return f"ev:{digest(list(parts), 20)}"


def _object(ref: dict[str, Any], default_namespace: str) -> dict[str, str]:
    kind = canonical_kind(text(ref.get("kind"))) or "Unknown"
    name = text(ref.get("name"))
    if not name:
        raise RejectedRecordError("unrecognized-event", "the event names no object")
    # Cluster-scoped objects (a Node) sometimes carry the event's namespace anyway.
    namespace = "" if kind in CLUSTER_SCOPED else (
        text(ref.get("namespace")) or default_namespace)
    oid = object_id(kind, namespace, name)
    return {"object_id": oid, "object_label": label_for(kind), "object_kind": kind,
            "object_namespace": namespace, "object_name": name,
            "object_uid": text(ref.get("uid")), "field_path": text(ref.get("fieldPath"))}


def _core_v1(event: dict[str, Any]) -> EventRecord:
    meta = event.get("metadata") or {}
    series = event.get("series") or {}
    source = event.get("source") or {}
    reason = text(event.get("reason"))
    event_type = text(event.get("type")) or "Normal"
    obj = _object(event.get("involvedObject") or {}, text(meta.get("namespace")))
    first = first_epoch(event.get("firstTimestamp"), event.get("eventTime"),
                        meta.get("creationTimestamp"))
    last = first_epoch(series.get("lastObservedTime"), event.get("lastTimestamp"),
                       event.get("eventTime"), event.get("firstTimestamp"),
                       meta.get("creationTimestamp"))
    message = text(event.get("message"))
    uid = text(meta.get("uid"))
    return EventRecord(
        id=uid or _fallback_id(obj["object_id"], reason, meta.get("name"), first),
        reason=reason, type=event_type, message=message,
        count=count(series.get("count"), event.get("count")),
        first_seen=first, last_seen=last if last is not None else first,
        severity=severity_of(event_type, reason),
        source_component=text(source.get("component") or event.get("reportingComponent")),
        source_host=text(source.get("host") or event.get("reportingInstance")),
        **obj,
    )


def _events_v1(event: dict[str, Any]) -> EventRecord:
    meta = event.get("metadata") or {}
    series = event.get("series") or {}
    source = event.get("deprecatedSource") or {}
    reason = text(event.get("reason"))
    event_type = text(event.get("type")) or "Normal"
    obj = _object(event.get("regarding") or {}, text(meta.get("namespace")))
    first = first_epoch(event.get("deprecatedFirstTimestamp"), event.get("eventTime"),
                        meta.get("creationTimestamp"))
    last = first_epoch(series.get("lastObservedTime"), event.get("deprecatedLastTimestamp"),
                       event.get("eventTime"), meta.get("creationTimestamp"))
    uid = text(meta.get("uid"))
    return EventRecord(
        id=uid or _fallback_id(obj["object_id"], reason, meta.get("name"), first),
        reason=reason, type=event_type, message=text(event.get("note")),
        count=count(series.get("count"), event.get("deprecatedCount")),
        first_seen=first, last_seen=last if last is not None else first,
        severity=severity_of(event_type, reason),
        source_component=text(event.get("reportingController") or source.get("component")),
        source_host=text(source.get("host") or event.get("reportingInstance")),
        **obj,
    )


def _already_normalized(event: dict[str, Any]) -> EventRecord:
    kind = text(event.get("involved_object_kind")) or ("Pod" if event.get("pod_name") else "")
    name = text(event.get("involved_object_name") or event.get("pod_name"))
    namespace = text(event.get("namespace"))
    obj = _object({"kind": kind, "name": name, "namespace": namespace,
                   "uid": event.get("involved_object_uid")}, namespace)
    reason = text(event.get("reason"))
    message = text(event.get("message"))
    seen = first_epoch(event.get("timestamp"), event.get("last_seen"))
    first = first_epoch(event.get("first_seen"), event.get("timestamp")) or seen
    event_type = text(event.get("type")) or "Normal"
    severity = text(event.get("severity")).lower()
    if severity not in _SEVERITIES:
        severity = severity_of(event_type, reason)
    return EventRecord(
        id=text(event.get("id") or event.get("uid"))
        or _fallback_id(obj["object_id"], reason, message, seen),
        reason=reason, type=event_type, message=message, count=count(event.get("count")),
        first_seen=first, last_seen=seen, severity=severity,
        source_component=text(event.get("source_component") or event.get("source")),
        source_host=text(event.get("source_host") or event.get("node_name")),
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
