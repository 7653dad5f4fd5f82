"""Resource records, in every shape the wire contract accepts, to one resource record.

Accepted shapes:
- a state record ``{"op": "UPSERT"|"DELETE", "at", "kind", "uid", "namespace", "name",
  "labels", "ownerRefs", "node", "podIP", "serviceSelector", "status", "replicas",
  "image", ...}``;
- a full Kubernetes object (Pod, Node, Deployment, ReplicaSet, StatefulSet, DaemonSet,
  Job, CronJob, Service, Namespace; other kinds become plain ``Resource`` nodes), also
  inside a ``List``, a watch frame ``{"type", "object"}`` (``DELETED`` deletes) or a
  wrapper ``{"op", "at", "object"}``;
- a tombstone: a null value, whose Kafka key entity (``pod::<uid>``, ``Pod/ns/name``)
  names what is gone.

A full object carries no observation time, so its time is the newest timestamp it
contains (conditions, container states, managed fields); its resourceVersion breaks
ties. Pod, node and workload details live in :mod:`.objects`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kgcelery.errors import RejectedRecordError
from kgcelery.model.objects import (
    CLUSTER_SCOPED,
    canonical_kind,
    label_for,
    object_id,
    parse_object_id,
)
from kgcelery.model.timeparse import first_epoch
from kgcelery.normalize.common import (
    RANK_DELETE,
    RANK_UPSERT,
    filled,
    optional_int,
    pairs,
    text,
    version,
)
from kgcelery.normalize.objects import ContainerRecord, newest_time, pod_state, workload_state
from kgcelery.normalize.state_fields import service_ports, state_fields

#: Every state property a resource node can have, and its empty value ("absent").
STATE_DEFAULTS: dict[str, Any] = {
    "status": "", "reason": "", "message": "", "created_at": 0.0, "rv": "", "at": 0.0,
    "cluster": "", "labels": [], "owner_ids": [], "conditions": [], "images": [],
    "node_name": "", "pod_ip": "", "restart_count": 0, "ready": False, "waiting_reason": "",
    "last_termination_reason": "", "last_exit_code": 0, "last_terminated_at": 0.0,
    "replicas": 0, "ready_replicas": 0, "available_replicas": 0, "selector": [],
    "strategy": "", "service_type": "", "cluster_ip": "", "service_ips": [], "ports": [],
    "target_ports": [], "ip_family_policy": "", "unschedulable": False,
    "kubelet_version": "", "internal_ip": "", "schedule": "", "suspend": False,
    "last_schedule_at": 0.0, "succeeded": 0, "failed": 0, "active": 0, "started_at": 0.0,
    "completed_at": 0.0, "parallelism": 0, "completions": 0,
}
_COMMON = ("status", "reason", "message", "created_at", "rv", "at", "cluster", "labels",
           "owner_ids", "conditions", "images")
_WORKLOAD = ("replicas", "ready_replicas", "available_replicas", "selector")
#: The state properties of each kind (a row names all of them, so that a newer
#: observation replaces every one; other kinds have the common ones).
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "Pod": (*_COMMON, "node_name", "pod_ip", "restart_count", "ready", "waiting_reason",
            "last_termination_reason", "last_exit_code", "last_terminated_at"),
    "Node": (*_COMMON, "ready", "unschedulable", "kubelet_version", "internal_ip"),
    "Service": (*_COMMON, "selector", "service_type", "cluster_ip", "service_ips", "ports",
                "target_ports", "ip_family_policy"),
    "Deployment": (*_COMMON, *_WORKLOAD, "strategy"), "ReplicaSet": (*_COMMON, *_WORKLOAD),
    "StatefulSet": (*_COMMON, *_WORKLOAD, "strategy"), "DaemonSet": (*_COMMON, *_WORKLOAD),
    "Job": (*_COMMON, "succeeded", "failed", "active", "started_at", "completed_at",
            "parallelism", "completions"),
    "CronJob": (*_COMMON, "schedule", "suspend", "active", "last_schedule_at"),
}
UPSERT, DELETE, TOMBSTONE = "UPSERT", "DELETE", "TOMBSTONE"


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """An owner named by an ownerReference (same namespace, or cluster-scoped)."""

    kind: str
    id: str
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    """One observation of one Kubernetes object (or its deletion)."""

    id: str
    kind: str
    namespace: str
    name: str
    uid: str
    op: str
    at: float | None
    v: str
    node: str = ""
    owners: tuple[OwnerRef, ...] = ()
    props: dict[str, Any] = field(default_factory=dict)
    containers: tuple[ContainerRecord, ...] = ()

    @property
    def label(self) -> str:
        return label_for(self.kind)

    def row(self) -> dict[str, Any]:
        props = filled({**self.props, "at": self.at, "node_name": self.node,
                        "owner_ids": [owner.id for owner in self.owners]},
                       {key: STATE_DEFAULTS[key] for key in KIND_KEYS.get(self.kind, _COMMON)})
        return {"id": self.id, "kind": self.kind, "namespace": self.namespace,
                "name": self.name, "uid": self.uid, "uid_v": f"2.{self.v}" if self.uid else "",
                "op": self.op, "v": self.v, "at": self.at, "props": props}


def _owners(refs: Any, namespace: str) -> tuple[OwnerRef, ...]:
    owners: dict[str, OwnerRef] = {}
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, dict) and ref.get("kind") and ref.get("name"):
            kind, ns, name = canonical_kind(text(ref["kind"])), namespace, text(ref["name"])
            uid = text(ref.get("uid"))
        elif isinstance(ref, str) and (parsed := parse_object_id(ref)):
            kind, ns, name = parsed[0], parsed[1] or namespace, parsed[2]
            uid = ""
        else:
            continue
        oid, ns = _identity(kind, ns, name)
        owners[oid] = OwnerRef(kind, oid, ns, name, uid)
    return tuple(owners[oid] for oid in sorted(owners))


def _identity(kind: str, namespace: str, name: str) -> tuple[str, str]:
    namespace = "" if kind in CLUSTER_SCOPED else namespace
    return object_id(kind, namespace, name), namespace


def _full_object(obj: dict[str, Any], op: str, at: float | None) -> ResourceRecord:
    meta = obj.get("metadata") or {}
    kind = canonical_kind(text(obj.get("kind")))
    name = text(meta.get("name"))
    if not kind or not name:
        raise RejectedRecordError("unrecognized-resource", "object has no kind or name")
    oid, namespace = _identity(kind, text(meta.get("namespace")), name)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    props: dict[str, Any] = {
        "labels": pairs(meta.get("labels")), "rv": text(meta.get("resourceVersion")) or None,
        "created_at": first_epoch(meta.get("creationTimestamp")),
    }
    containers: tuple[ContainerRecord, ...] = ()
    at = at if at is not None else newest_time(obj)
    rv = meta.get("resourceVersion")
    v = version(at, rv, rank=RANK_DELETE if op == DELETE else RANK_UPSERT,
                content=[op, kind, namespace, name, meta.get("uid"), spec, status,
                         meta.get("labels"), meta.get("ownerReferences")])
    if kind == "Pod":
        state, containers = pod_state(obj, oid, namespace, name, v)
        props.update(state)
    elif kind == "Service":
        selector = spec.get("selector")
        ports, targets = service_ports(spec.get("ports"))
        ips = [text(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]
               if ip and ip != "None"]
        props.update(selector=pairs(selector) if selector else None,
                     service_type=text(spec.get("type")) or None,
                     cluster_ip=text(spec.get("clusterIP")) or None, ports=ports,
                     target_ports=targets, service_ips=sorted(set(ips)) or None,
                     ip_family_policy=text(spec.get("ipFamilyPolicy")) or None)
    else:
        props.update(workload_state(kind, spec, status))
    return ResourceRecord(
        id=oid, kind=kind, namespace=namespace, name=name, uid=text(meta.get("uid")), op=op,
        at=at, v=v, node=text(spec.get("nodeName")) if kind == "Pod" else "",
        owners=_owners(meta.get("ownerReferences"), namespace), props=props,
        containers=containers)


def _state_record(record: dict[str, Any]) -> ResourceRecord:
    op = text(record.get("op") or UPSERT).upper()
    if op not in (UPSERT, DELETE):
        raise RejectedRecordError("unrecognized-resource", f"op must be UPSERT or DELETE: {op!r}")
    kind = canonical_kind(text(record.get("kind")))
    name, uid = text(record.get("name")), text(record.get("uid"))
    if not kind or not (name or (op == DELETE and uid)):
        raise RejectedRecordError("unrecognized-resource",
                                  "a state record needs kind and name (a DELETE: name or uid)")
    oid, namespace = _identity(kind, text(record.get("namespace")), name) if name else ("", "")
    at = first_epoch(record.get("at"), record.get("timestamp"))
    rv = record.get("resourceVersion")
    v = version(at, rv, rank=RANK_DELETE if op == DELETE else RANK_UPSERT,
                content={k: record.get(k) for k in sorted(record) if k != "client_id"})
    image = record.get("image") or record.get("images")
    selector = record.get("serviceSelector")
    replicas = optional_int(record.get("replicas"))
    props: dict[str, Any] = {
        "labels": pairs(record.get("labels")), "cluster": text(record.get("cluster")) or None,
        "reason": text(record.get("reason")) or None, "rv": text(rv) or None,
        "pod_ip": text(record.get("podIP")) or None, "replicas": replicas,
        "ready_replicas": optional_int(record.get("readyReplicas")),
        "images": [text(i) for i in image] if isinstance(image, list) else (
            [text(image)] if image else None),
        "selector": pairs(selector) if isinstance(selector, dict) and selector else None,
        "created_at": first_epoch(record.get("createdAt"), record.get("creationTimestamp")),
    }
    props.update({key: value for key, value in state_fields(kind, record).items()
                  if value is not None or key not in props})
    if (kind in ("Deployment", "ReplicaSet", "StatefulSet") and replicas is not None
            and props.get("ready_replicas") is not None and not props.get("status")):
        props["status"] = f"{props['ready_replicas']}/{replicas} ready"
    return ResourceRecord(
        id=oid, kind=kind, namespace=namespace, name=name, uid=uid, op=op, at=at, v=v,
        node=text(record.get("node") or record.get("nodeName")),
        owners=_owners(record.get("ownerRefs") or record.get("ownerReferences"), namespace),
        props=props)


def tombstone(entity: str, at: float | None = None) -> ResourceRecord:
    """The deletion a null value stands for, from its key entity (``pod::<uid>``,
    ``pod:<uid>`` or ``Pod/ns/name``), versioned by its Kafka timestamp ``at`` when
    known (else it deletes as of the newest observation applied: ``v`` empty)."""
    v = version(at, None, rank=RANK_DELETE, content=entity) if at else ""
    parsed = parse_object_id(entity)
    if parsed:
        kind, namespace, name = parsed
        return ResourceRecord(id=object_id(kind, namespace, name), kind=kind,
                              namespace=namespace, name=name, uid="", op=TOMBSTONE,
                              at=at, v=v)
    kind, sep, uid = entity.partition("::") if "::" in entity else entity.partition(":")
    if not sep or not uid or not kind:
        raise RejectedRecordError(
            "unattributable-tombstone",
            f"a null resource value needs a key entity like 'pod::<uid>' or 'Pod/ns/name', "
            f"not {entity!r}")
    return ResourceRecord(id="", kind=canonical_kind(kind), namespace="", name="", uid=uid,
                          op=TOMBSTONE, at=at, v=v)


def normalize_resource(value: Any, entity: str = "",
                       produced: float | None = None) -> list[ResourceRecord]:
    """One input value to its resource records (a ``List`` holds several); a null
    value is a tombstone of ``entity``, produced (Kafka timestamp) at ``produced``.

    Raises :class:`RejectedRecordError` (``unrecognized-resource``) for anything else.
    """
    if value is None:
        return [tombstone(entity, produced)]
    if not isinstance(value, dict):
        raise RejectedRecordError("unrecognized-resource",
                                  f"a resource must be a JSON object, not {type(value).__name__}")
    if isinstance(value.get("items"), list):
        # client-go drops kind from the items of a typed List (``NodeList``).
        list_kind = text(value.get("kind")).removesuffix("List")
        return [record for item in value["items"] for record in normalize_resource(
            {"kind": list_kind, **item} if isinstance(item, dict) and list_kind else item)]
    obj = value.get("object")
    if isinstance(obj, dict):
        frame = text(value.get("type")).upper()
        op = DELETE if frame == "DELETED" or text(value.get("op")).upper() == DELETE else UPSERT
        return [_full_object(obj, op, first_epoch(value.get("at"), value.get("timestamp")))]
    if isinstance(value.get("metadata"), dict) and value.get("kind"):
        return [_full_object(value, UPSERT, first_epoch(value.get("at")))]
    if value.get("kind") and ("op" in value or "name" in value):
        return [_state_record(value)]
    raise RejectedRecordError(
        "unrecognized-resource",
        "not a state record (op, kind, name) nor a Kubernetes object (kind, metadata); "
        f"keys: {sorted(value)[:12]}")
