"""What a full Kubernetes object says about its state: pods and their containers
(restarts, waiting reasons, the last termination such as OOMKilled), nodes, workloads.

Pure functions over the JSON the API server returns; :mod:`.resources` calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kgcelery.model.objects import container_id
from kgcelery.model.timeparse import first_epoch
from kgcelery.normalize.common import filled, optional_int, pairs, text

#: Every state property of a container node and its empty value (each row names all
#: of them; see ``common.filled``).
CONTAINER_DEFAULTS: dict[str, Any] = {
    "image": "", "ready": False, "restart_count": 0, "state": "", "state_reason": "",
    "started_at": 0.0, "last_termination_reason": "", "last_exit_code": 0,
    "last_terminated_at": 0.0, "init": False}

_TIME_FIELDS = frozenset((
    "lastTransitionTime", "lastUpdateTime", "lastProbeTime", "lastHeartbeatTime", "startedAt",
    "finishedAt", "time", "startTime", "lastScheduleTime", "creationTimestamp",
    "deletionTimestamp", "completionTime"))


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """A container as its pod's observation ``v`` saw it."""

    id: str
    pod_id: str
    name: str
    namespace: str
    v: str
    props: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "pod_id": self.pod_id, "name": self.name,
                "namespace": self.namespace, "v": self.v,
                "props": filled(self.props, CONTAINER_DEFAULTS)}


def newest_time(obj: dict[str, Any]) -> float | None:
    """The newest timestamp a full object contains: when it was observed, at the latest
    (the API server does not say when a GET happened). Walked with a stack, not
    recursive generators: this walk was a third of normalizing a resource."""
    newest: float | None = None
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _TIME_FIELDS and isinstance(value, str):
                    parsed = first_epoch(value)
                    if parsed is not None and (newest is None or parsed > newest):
                        newest = parsed
                elif (isinstance(value, dict | list) and depth < 6
                      and key not in ("spec", "annotations")):
                    stack.append((value, depth + 1))
        elif depth < 6:
            stack.extend((item, depth + 1) for item in node if isinstance(item, dict | list))
    return newest


def _termination(status: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """The newest termination a container status records (current or last state)."""
    found: tuple[dict[str, Any], float] = ({}, -1.0)
    for state in (status.get("state") or {}, status.get("lastState") or {}):
        terminated = state.get("terminated")
        if isinstance(terminated, dict):
            finished = first_epoch(terminated.get("finishedAt")) or 0.0
            if finished > found[1]:
                found = (terminated, finished)
    return found


def _container(status: dict[str, Any], pod_id: str, namespace: str, pod: str, v: str,
               init: bool) -> ContainerRecord:
    name = text(status.get("name"))
    state = status.get("state") or {}
    current = next(iter(state), "") if isinstance(state, dict) else ""
    detail = state.get(current) or {} if current else {}
    terminated, finished = _termination(status)
    return ContainerRecord(
        id=container_id(namespace, pod, name), pod_id=pod_id, name=name, namespace=namespace,
        v=v, props={
            "image": text(status.get("image")) or None, "ready": bool(status.get("ready")),
            "restart_count": optional_int(status.get("restartCount")) or 0,
            "state": current or None, "state_reason": text(detail.get("reason")) or None,
            "started_at": first_epoch(detail.get("startedAt")),
            "last_termination_reason": text(terminated.get("reason")) or None,
            "last_exit_code": optional_int(terminated.get("exitCode")),
            "last_terminated_at": finished if finished > 0 else None, "init": init})


def pod_state(pod: dict[str, Any], pod_id: str, namespace: str, name: str,
              v: str) -> tuple[dict[str, Any], tuple[ContainerRecord, ...]]:
    """A pod's state properties and its containers."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = [(s, False) for s in status.get("containerStatuses") or []]
    statuses += [(s, True) for s in status.get("initContainerStatuses") or []]
    containers = tuple(_container(s, pod_id, namespace, name, v, init)
                       for s, init in statuses if isinstance(s, dict) and s.get("name"))
    main = [c for c in containers if not c.props["init"]]
    last = max(containers, key=lambda c: c.props["last_terminated_at"] or 0, default=None)
    waiting = next((c.props["state_reason"] for c in containers
                    if c.props["state"] == "waiting" and c.props["state_reason"]), None)
    images = [text(c.get("image")) for c in spec.get("containers") or [] if isinstance(c, dict)]
    return {
        "status": text(status.get("phase")) or None, "reason": text(status.get("reason")) or None,
        "message": text(status.get("message")) or None,
        "pod_ip": text(status.get("podIP")) or None, "images": images or None,
        "restart_count": sum(c.props["restart_count"] for c in containers),
        "ready": bool(main) and all(c.props["ready"] for c in main),
        "waiting_reason": waiting,
        "last_termination_reason": last.props["last_termination_reason"] if last else None,
        "last_exit_code": last.props["last_exit_code"] if last else None,
        "last_terminated_at": last.props["last_terminated_at"] if last else None,
        "conditions": _conditions(status),
    }, containers


def _conditions(status: dict[str, Any]) -> list[str] | None:
    items = [f"{c.get('type')}={c.get('status')}" for c in status.get("conditions") or []
             if isinstance(c, dict) and c.get("type")]
    return sorted(items) or None


def _template_images(spec: dict[str, Any]) -> list[str] | None:
    template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get(
        "template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    return [text(c.get("image")) for c in containers if isinstance(c, dict)] or None


def workload_state(kind: str, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """State properties of nodes, namespaces and workload controllers."""
    conditions = _conditions(status)
    if kind == "Node":
        ready = next((c.get("status") for c in status.get("conditions") or []
                      if isinstance(c, dict) and c.get("type") == "Ready"), None)
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []
                     if isinstance(a, dict)}
        return {"status": {"True": "Ready", "False": "NotReady"}.get(text(ready), "Unknown"),
                "ready": ready == "True", "conditions": conditions,
                "unschedulable": bool(spec.get("unschedulable")),
                "kubelet_version": text((status.get("nodeInfo") or {}).get("kubeletVersion"))
                or None, "internal_ip": text(addresses.get("InternalIP")) or None}
    if kind == "Namespace":
        return {"status": text(status.get("phase")) or None}
    state: dict[str, Any] = {"conditions": conditions, "images": _template_images(spec)}
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        match = (spec.get("selector") or {}).get("matchLabels")
        strategy = spec.get("strategy") or spec.get("updateStrategy") or {}
        state.update(selector=pairs(match) or None,
                     strategy=text(strategy.get("type")) if isinstance(strategy, dict)
                     else None)
    if kind == "DaemonSet":
        state.update(replicas=optional_int(status.get("desiredNumberScheduled")),
                     ready_replicas=optional_int(status.get("numberReady")),
                     available_replicas=optional_int(status.get("numberAvailable")))
    elif kind in ("Job", "CronJob"):
        failed = any(c.endswith("=True") and c.startswith("Failed") for c in conditions or [])
        complete = any(c == "Complete=True" for c in conditions or [])
        state.update(succeeded=optional_int(status.get("succeeded")),
                     failed=optional_int(status.get("failed")),
                     active=optional_int(status.get("active")) if kind == "Job" else
                     len(status.get("active") or []),
                     schedule=text(spec.get("schedule")) or None,
                     suspend=spec.get("suspend") if kind == "CronJob" else None,
                     status="Failed" if failed else "Complete" if complete else None)
        if kind == "Job":
            state.update(started_at=first_epoch(status.get("startTime")),
                         completed_at=first_epoch(status.get("completionTime")),
                         parallelism=optional_int(spec.get("parallelism")),
                         completions=optional_int(spec.get("completions")))
        else:
            state["last_schedule_at"] = first_epoch(status.get("lastScheduleTime"))
    else:
        state.update(replicas=optional_int(spec.get("replicas")),
                     ready_replicas=optional_int(status.get("readyReplicas")),
                     available_replicas=optional_int(status.get("availableReplicas")))
    if state.get("replicas") is not None and kind not in ("Job", "CronJob"):
        state["status"] = f"{state.get('ready_replicas') or 0}/{state['replicas']} ready"
    return state
