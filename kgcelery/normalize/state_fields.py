"""What a state record (the kg agent's ``state.k8s.resource`` ResourceRecord) says about
each kind: the ``status`` and ``spec`` maps that ``state-watcher/main.go`` fills per kind,
read into the same state properties a full Kubernetes object gives (:mod:`.objects`).

Per kind (the Go code's field names):
- Pod: ``status: {phase, restartCount, containerReady}``;
- Node: ``status: {ready}``;
- Service: ``spec: {type, ports: [ServicePort], ipFamilyPolicy}``, ``serviceIPs``;
- Deployment / ReplicaSet / StatefulSet: ``replicas``, ``spec: {selector, strategy}``,
  and ready counts when a producer adds them to ``status``;
- DaemonSet: ``status: {desired, ready, available}``, ``spec.selector``;
- Job: ``status: {active, succeeded, failed, startTime, completion}``,
  ``spec: {parallelism, completions}``;
- CronJob: ``spec: {schedule, suspend}``, ``status: {lastScheduleTime, active}``.
Pure functions; :func:`kgcelery.normalize.resources.normalize_resource` calls them.
"""

from __future__ import annotations

from typing import Any

from kgcelery.model.timeparse import first_epoch
from kgcelery.normalize.common import optional_int, pairs, text


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _selector(spec: dict[str, Any]) -> list[str] | None:
    """A workload's ``spec.selector`` (a LabelSelector: its matchLabels) as pairs."""
    selector = _map(spec.get("selector"))
    labels = selector.get("matchLabels", selector if "matchExpressions" not in selector
                          else None)
    return pairs(labels) or None


def service_ports(ports: Any) -> tuple[list[str] | None, list[str] | None]:
    """ServicePorts as ``["80/TCP"]`` and their target ports (``["8080"]``, ``["http"]``)."""
    items = [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []
    if not items:
        return None, None
    exposed = [f"{p.get('port')}/{p.get('protocol') or 'TCP'}" for p in items]
    targets = [text(p.get("targetPort")) for p in items if p.get("targetPort") is not None]
    return exposed, targets or None


def _job_status(status: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """``Complete`` once it has a completion time, ``Failed`` when pods failed, none
    runs and too few succeeded; else none (running or pending)."""
    if status.get("completion"):
        return "Complete"
    failed, active = optional_int(status.get("failed")) or 0, optional_int(status.get("active"))
    wanted = optional_int(spec.get("completions")) or 1
    if failed and not active and (optional_int(status.get("succeeded")) or 0) < wanted:
        return "Failed"
    return None


def state_fields(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """The state properties of one state record's ``status``/``spec`` (None: absent)."""
    raw_status = record.get("status")
    status = _map(raw_status)
    spec = _map(record.get("spec"))
    props: dict[str, Any] = {}
    if not isinstance(raw_status, dict):
        props["status"] = text(raw_status) or None
    if kind == "Pod":
        phase = text(status.get("phase"))
        ready = _flag(status.get("containerReady", status.get("ready")))
        # The agent's allContainersReady is true for a pod without container statuses
        # (still Pending): not ready, as a full object says.
        ready = False if ready and phase == "Pending" else ready
        restarts = status.get("restartCount", record.get("restartCount",
                                                         record.get("restarts")))
        props.update(status=phase or props.get("status"),
                     restart_count=optional_int(restarts), ready=ready)
    elif kind == "Node":
        ready = _flag(status.get("ready"))
        props.update(ready=ready, status=props.get("status") or (
            None if ready is None else "Ready" if ready else "NotReady"))
    elif kind == "Service":
        ports, targets = service_ports(spec.get("ports"))
        ips = [text(ip) for ip in record.get("serviceIPs") or [] if ip]
        props.update(service_type=text(spec.get("type")) or None, ports=ports,
                     target_ports=targets, service_ips=sorted(set(ips)) or None,
                     cluster_ip=ips[0] if ips else None,
                     ip_family_policy=text(spec.get("ipFamilyPolicy")) or None)
    elif kind == "DaemonSet":
        props.update(replicas=optional_int(status.get("desired")),
                     ready_replicas=optional_int(status.get("ready")),
                     available_replicas=optional_int(status.get("available")),
                     selector=_selector(spec))
    elif kind == "Job":
        props.update(active=optional_int(status.get("active")),
                     succeeded=optional_int(status.get("succeeded")),
                     failed=optional_int(status.get("failed")),
                     started_at=first_epoch(status.get("startTime")),
                     completed_at=first_epoch(status.get("completion")),
                     parallelism=optional_int(spec.get("parallelism")),
                     completions=optional_int(spec.get("completions")),
                     status=props.get("status") or _job_status(status, spec))
    elif kind == "CronJob":
        props.update(schedule=text(spec.get("schedule")) or None,
                     suspend=_flag(spec.get("suspend")),
                     last_schedule_at=first_epoch(status.get("lastScheduleTime")),
                     active=optional_int(status.get("active")))
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        strategy = spec.get("strategy")
        props.update(selector=_selector(spec),
                     strategy=text(_map(strategy).get("type") or strategy) or None,
                     ready_replicas=optional_int(status.get("readyReplicas",
                                                            record.get("readyReplicas"))),
                     available_replicas=optional_int(status.get("availableReplicas")))
    if not props.get("status") and isinstance(raw_status, dict):
        props["status"] = text(status.get("phase") or status.get("state")) or None
    if props.get("replicas") is not None and kind == "DaemonSet":
        props["status"] = f"{props.get('ready_replicas') or 0}/{props['replicas']} ready"
    return props
