"""What the kg-rca-agent puts on Kafka, record by record, built the way it builds them.

Pure functions, one per row of ``AGENT_FORMATS.md`` (the shared list of the agent's
streams), read from the public sources of ``anuragvishwa/kgroot-latest``: the chart
2.1.x templates ``client-light/helm-chart/templates/`` (registry, register, deregister
and heartbeat jobs; the Vector configuration), ``state-watcher/main.go`` and
``alert-receiver/main.go``. Each returns :class:`WireRecord` s: the agent's default topic,
the key bytes and the value bytes exactly as its producer writes them, including the
shell pipelines' key splitting (``kafka-console-producer`` ``parse.key``, ``kcat -K``).

Serialisation follows each producer: Go's ``encoding/json`` (struct fields in
declaration order, map keys sorted, ``<``/``>``/``&`` escaped, ``time.Time`` as RFC 3339
with trimmed nanoseconds, ``metav1.Time`` with seconds) for the state-watcher and the
alert-receiver; Vector's JSON codec (every object's keys sorted) for Vector; the literal
shell text for the jobs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The agent's default topics (values.yaml / configmap.yaml defaults of chart 2.1.x).
REGISTRY = "cluster.registry"
HEARTBEAT = "cluster.heartbeat"
RESOURCES = "state.k8s.resource"
TOPOLOGY = "state.k8s.topology"
PROM_TARGETS = "state.prom.targets"
LOGS = "logs.normalized"
RAW_LOGS = "raw.k8s.logs"  # vector.rawLogsTopic, empty (off) by default
EVENTS = "events.normalized"
RAW_EVENTS = "raw.k8s.events"  # eventExporter.rawTopic, empty (off) by default
RAW_ALERTS = "raw.prom.alerts"
ALERTS = "alerts.raw"
#: Every topic the agent writes by default (the raw mirrors are off unless configured).
AGENT_TOPICS = (REGISTRY, HEARTBEAT, RESOURCES, TOPOLOGY, PROM_TARGETS, LOGS, EVENTS,
                RAW_ALERTS, ALERTS)

CHART_VERSION = "2.1.2"
#: The kinds the state-watcher has informers for (no StatefulSet, no Namespace).
WATCHED_KINDS = ("Pod", "Service", "Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob",
                 "Node")


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One Kafka record as the agent produces it (topic is the agent's default name)."""

    topic: str
    key: bytes | None
    value: bytes | None

    def decoded(self) -> Any:
        """The value as JSON (None for a tombstone); raises on a value that is not JSON."""
        return None if self.value is None else json.loads(self.value)


# --- encodings and clocks ---------------------------------------------------------------

def go_json(value: Any) -> bytes:
    """``json.Marshal``: compact, UTF-8, with Go's HTML escaping (dict order is kept, so
    callers build structs in field order and maps with :func:`go_map`)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def go_map(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    """A Go map: ``encoding/json`` writes its keys sorted."""
    return dict(sorted((mapping or {}).items()))


def vector_json(value: Any) -> bytes:
    """Vector's ``json`` codec: its events are B-tree maps, so every object is sorted."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=True).encode()


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def rfc3339_nano(epoch: float) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: fraction without trailing zeros."""
    micros = round(epoch * 1_000_000)
    whole, fraction = divmod(micros, 1_000_000)
    text = _utc(whole).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction * 1000:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def rfc3339(epoch: float) -> str:
    """Seconds, ``Z``: Go's ``time.RFC3339``, ``metav1.Time`` and ``date -u +%FT%TZ``."""
    return _utc(int(epoch)).strftime("%Y-%m-%dT%H:%M:%SZ")


def vector_time(epoch: float) -> str:
    """A Vector timestamp in JSON (RFC 3339, as many fraction digits as it has)."""
    return rfc3339_nano(epoch)


def tenant_key(client_id: str, key: str) -> bytes:
    """The state-watcher's ``tenantKey``: ``<client>::<key>``."""
    if not client_id:
        return key.encode()
    if not key:
        return client_id.encode()
    return f"{client_id}::{key}".encode()


# --- the shell producers' key splitting --------------------------------------------------

def console_producer_split(line: str, separator: str, *,
                           null_marker: str | None = None) -> tuple[bytes | None, bytes | None]:
    """``kafka-console-producer --property parse.key=true --property key.separator=S``:
    key before the first separator, value after it; a part equal to ``null.marker`` is
    null."""
    key, found, value = line.partition(separator)
    if not found:
        raise ValueError(f"kafka-console-producer rejects a line without {separator!r}")

    def part(text: str) -> bytes | None:
        return None if null_marker is not None and text == null_marker else text.encode()

    return part(key), part(value)


def kcat_split(line: str, delimiter: str, default_key: str) -> tuple[bytes, bytes]:
    """``kcat -P -K <delimiter> -k <default_key>``: a line holding the delimiter is split
    at its first occurrence; a line without it is all value, keyed ``-k``."""
    key, found, value = line.partition(delimiter)
    if found:
        return key.encode(), value.encode()
    return default_key.encode(), line.encode()


# --- rows 1-5: control records -------------------------------------------------------------

def registry_job_registration(client_id: str, cluster_name: str, at: float, *,
                              region: str = "", chart_version: str = CHART_VERSION) -> WireRecord:
    """Row 1: ``cluster-registry-job``, an ``echo`` piped into the console producer
    (``key.separator=::``): the key is the bare client id."""
    line = (f'{client_id}::{{"client_id":"{client_id}","cluster_name":"{cluster_name}",'
            f'"region":"{region or "unknown"}","timestamp":"{rfc3339(at)}",'
            f'"chart_version":"{chart_version}"}}')
    key, value = console_producer_split(line, "::")
    return WireRecord(REGISTRY, key, value)


def registration_line(client_id: str, cluster_name: str, at: float, *, namespace: str,
                      release: str, chart_version: str = CHART_VERSION) -> str:
    """The one line of JSON that ``register-cluster-job`` hands to kcat."""
    return (f'{{"client_id":"{client_id}","cluster_name":"{cluster_name or client_id}",'
            f'"version":"{chart_version}","registered_at":"{rfc3339(at)}",'
            f'"metadata":{{"namespace":"{namespace}","release_name":"{release}",'
            f'"chart_version":"{chart_version}"}}}}')


def register_job_registration(client_id: str, cluster_name: str, at: float, *,
                              namespace: str = "observability", release: str = "kg-rca-agent",
                              chart_version: str = CHART_VERSION) -> WireRecord:
    """Row 2: ``register-cluster-job``, ``kcat -K: -k <client>``: the JSON line holds
    ``:``, so kcat splits it there: key ``{"client_id"``, value the rest."""
    line = registration_line(client_id, cluster_name, at, namespace=namespace, release=release,
                             chart_version=chart_version)
    key, value = kcat_split(line, ":", client_id)
    return WireRecord(REGISTRY, key, value)


def deregistration(client_id: str) -> WireRecord:
    """Row 3: ``deregister-cluster-job``, ``echo "<client>:"`` into the console producer
    with ``key.separator=:`` and ``null.marker=`` (empty): a tombstone keyed by the id."""
    key, value = console_producer_split(f"{client_id}:", ":", null_marker="")
    return WireRecord(REGISTRY, key, value)


def cronjob_heartbeat(client_id: str, at: float) -> WireRecord:
    """Row 4: ``heartbeat-cronjob``, ``kcat -K:: -k <client>``: the line has no ``::``."""
    line = f'{{"client_id":"{client_id}","timestamp":"{rfc3339(at)}"}}'
    key, value = kcat_split(line, "::", client_id)
    return WireRecord(HEARTBEAT, key, value)


def watcher_heartbeat(client_id: str, at: float, *, resources_sent: int,
                      uptime_seconds: int) -> WireRecord:
    """Row 5: the state-watcher's ``runHeartbeat``: ``sendJSON(..., clientID, hb)`` keys it
    ``tenantKey(client, client)`` = ``<client>::<client>``; a Go map, so keys sorted."""
    value = go_map({"client_id": client_id, "timestamp": rfc3339(at), "status": "healthy",
                    "metrics": go_map({"resources_sent": resources_sent,
                                       "uptime_seconds": uptime_seconds})})
    return WireRecord(HEARTBEAT, tenant_key(client_id, client_id), go_json(value))


# --- rows 6-8: the state-watcher -----------------------------------------------------------

def object_ref(kind: str, namespace: str, name: str) -> str:
    """``idFor``: ``<kind-lower>:<namespace>:<name>``, ``<kind-lower>:<name>`` without one."""
    if not namespace:
        return f"{kind.lower()}:{name}"
    return f"{kind.lower()}:{namespace}:{name}"


def edge_id(source: str, target: str) -> str:
    """``edgeID``: ``idFor("edge", "", from+"->"+to)`` = ``edge:<from>-><to>``."""
    return object_ref("edge", "", f"{source}->{target}")


def _owner_refs(meta: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"kind": ref["kind"], "name": ref["name"]} for ref in meta.get("ownerReferences", ())]


def _label_selector(selector: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``metav1.LabelSelector`` as JSON (nil pointer: null)."""
    if selector is None:
        return None
    out: dict[str, Any] = {}
    if selector.get("matchLabels"):
        out["matchLabels"] = go_map(selector["matchLabels"])
    if selector.get("matchExpressions"):
        out["matchExpressions"] = selector["matchExpressions"]
    return out


def _meta_time(value: str | None) -> str | None:
    """A ``*metav1.Time`` from an object: RFC 3339 seconds, null when unset."""
    if not value:
        return None
    return rfc3339(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def _service_port(port: Mapping[str, Any]) -> dict[str, Any]:
    """``corev1.ServicePort`` in field order, ``omitempty`` fields left out when empty."""
    out: dict[str, Any] = {}
    for name in ("name", "protocol", "appProtocol"):
        if port.get(name):
            out[name] = port[name]
    out["port"] = port["port"]
    if port.get("targetPort") not in (None, "", 0):
        out["targetPort"] = port["targetPort"]
    if port.get("nodePort"):
        out["nodePort"] = port["nodePort"]
    return out


def _service_ips(spec: Mapping[str, Any]) -> list[str]:
    """``collectServiceIPs``: ``clusterIPs`` then ``clusterIP`` again (so usually twice)."""
    ips = list(spec.get("clusterIPs") or [])
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        ips.append(spec["clusterIP"])
    return ips


def node_ready(node: Mapping[str, Any]) -> bool:
    """``nodeReady``: the Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", ()))


def _per_kind(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The hint fields each ``push<Kind>`` sets, in ``ResourceRecord`` field order."""
    kind, spec, status = obj["kind"], obj.get("spec", {}), obj.get("status", {})
    statuses = status.get("containerStatuses") or []
    if kind == "Pod":
        return {"node": spec.get("nodeName", ""), "podIP": status.get("podIP", ""),
                "status": go_map({"phase": status.get("phase", ""),
                                  "restartCount": sum(s.get("restartCount", 0) for s in statuses),
                                  "containerReady": all(s.get("ready") for s in statuses)})}
    if kind == "Service":
        return {"serviceSelector": go_map(spec.get("selector")),
                "serviceIPs": _service_ips(spec),
                "spec": go_map({"type": spec.get("type", "ClusterIP"),
                                "ports": [_service_port(p) for p in spec.get("ports", ())],
                                "ipFamilyPolicy": spec.get("ipFamilyPolicy", "SingleStack")})}
    if kind == "Deployment":
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        return {"replicas": spec.get("replicas", 1),
                "spec": go_map({"strategy": strategy,
                                "selector": _label_selector(spec.get("selector"))})}
    if kind == "ReplicaSet":
        return {"replicas": spec.get("replicas", 1),
                "spec": {"selector": _label_selector(spec.get("selector"))}}
    if kind == "DaemonSet":
        return {"status": go_map({"desired": status.get("desiredNumberScheduled", 0),
                                  "ready": status.get("numberReady", 0),
                                  "available": status.get("numberAvailable", 0)}),
                "spec": {"selector": _label_selector(spec.get("selector"))}}
    if kind == "Job":
        return {"status": go_map({"active": status.get("active", 0),
                                  "succeeded": status.get("succeeded", 0),
                                  "failed": status.get("failed", 0),
                                  "startTime": _meta_time(status.get("startTime")),
                                  "completion": _meta_time(status.get("completionTime"))}),
                "spec": go_map({"parallelism": spec.get("parallelism", 1),
                                "completions": spec.get("completions", 1)})}
    if kind == "CronJob":
        return {"status": go_map({"lastScheduleTime": _meta_time(status.get("lastScheduleTime")),
                                  "active": len(status.get("active") or [])}),
                "spec": go_map({"schedule": spec.get("schedule", ""),
                                "suspend": spec.get("suspend", False)})}
    if kind == "Node":
        return {"status": {"ready": node_ready(obj)}}
    raise ValueError(f"the state-watcher has no informer for {kind}")


#: ``ResourceRecord`` fields after the common ones, in declaration order (all omitempty).
_HINTS = ("node", "podIP", "serviceSelector", "serviceIPs", "image", "replicas", "status", "spec")


def resource_record(client_id: str, cluster: str, obj: Mapping[str, Any],
                    at: float) -> WireRecord:
    """Row 6: ``push<Kind>``'s ``ResourceRecord`` of a Kubernetes object, keyed
    ``<client>::<kind-lower>:<uid>``."""
    meta = obj["metadata"]
    value: dict[str, Any] = {"op": "UPSERT", "at": rfc3339_nano(at), "client_id": client_id,
                             "cluster": cluster, "kind": obj["kind"], "uid": meta["uid"]}
    if obj["kind"] != "Node" and meta.get("namespace"):  # pushNode sets no namespace
        value["namespace"] = meta["namespace"]
    value["name"] = meta["name"]
    if meta.get("labels"):
        value["labels"] = go_map(meta["labels"])
    if obj["kind"] != "Node" and _owner_refs(meta):
        value["ownerRefs"] = _owner_refs(meta)
    hints = _per_kind(obj)
    for name in _HINTS:  # omitempty: "" and empty maps/slices left out; a 0 replicas kept
        if name in hints and hints[name] not in ("", None, [], {}):
            value[name] = hints[name]
    return WireRecord(RESOURCES, resource_key(client_id, obj["kind"], meta["uid"]),
                      go_json(value))


def resource_key(client_id: str, kind: str, uid: str) -> bytes:
    """``tenantKey(client, keyFor(kind, uid))``: ``<client>::<kind-lower>:<uid>``."""
    return tenant_key(client_id, f"{kind.lower()}:{uid}")


def resource_tombstone(client_id: str, kind: str, uid: str) -> WireRecord:
    """Row 6, deletion: ``delete<Kind>`` sends a null value under the object's key."""
    return WireRecord(RESOURCES, resource_key(client_id, kind, uid), None)


def edge_record(client_id: str, cluster: str, edge_type: str, source: str, target: str,
                at: float) -> WireRecord:
    """Row 7: an ``EdgeRecord`` between two object refs (:func:`object_ref`)."""
    eid = edge_id(source, target)
    value = {"op": "UPSERT", "at": rfc3339_nano(at), "client_id": client_id, "cluster": cluster,
             "id": eid, "from": source, "to": target, "type": edge_type}
    return WireRecord(TOPOLOGY, tenant_key(client_id, eid), go_json(value))


def edge_tombstone(client_id: str, source: str, target: str) -> WireRecord:
    """Row 7, removal: a null value under the edge's key."""
    return WireRecord(TOPOLOGY, tenant_key(client_id, edge_id(source, target)), None)


def target_key(cluster: str, labels: Mapping[str, str]) -> str:
    """``targetKey``: ``<cluster>|<job>|<namespace>|<service>|<instance>``."""
    return "|".join([cluster, *(labels.get(name, "") for name in
                                ("job", "namespace", "service", "instance"))])


def prom_target(client_id: str, cluster: str, target: Mapping[str, Any],
                at: float) -> WireRecord:
    """Row 8: a ``TargetRecord`` of one active target of Prometheus' ``/api/v1/targets``
    (``labels``, ``scrapeUrl``, ``health``, ``lastScrape``, ``lastError`` as it answers)."""
    value: dict[str, Any] = {"op": "UPSERT", "at": rfc3339_nano(at), "client_id": client_id,
                             "cluster": cluster, "labels": go_map(target["labels"]),
                             "scrapeUrl": target["scrapeUrl"], "health": target["health"],
                             "lastScrape": target["lastScrape"]}
    if target.get("lastError"):
        value["lastError"] = target["lastError"]
    return WireRecord(PROM_TARGETS, tenant_key(client_id, target_key(cluster, target["labels"])),
                      go_json(value))


def prom_target_tombstone(client_id: str, cluster: str,
                          labels: Mapping[str, str]) -> WireRecord:
    """Row 8, gone: a null value for a target that left ``activeTargets``."""
    return WireRecord(PROM_TARGETS, tenant_key(client_id, target_key(cluster, labels)), None)


# --- rows 9-10: Vector's logs --------------------------------------------------------------

def vector_log(client_id: str, log: Mapping[str, Any], now: float) -> WireRecord:
    """Row 9: a ``kubernetes_logs`` record through the chart's ``normalize`` remap, to
    ``logs.normalized`` with ``key_field = "message_key"`` (``<client>::<pod_uid>``)."""
    kube = log.get("kubernetes") or {}
    pod_uid = str(kube.get("pod_uid") or "")
    pod_ns = str(kube.get("pod_namespace") or "default")
    pod_name = str(kube.get("pod_name") or "unknown")
    value = {**log, "client_id": client_id, "event_time": vector_time(now), "etype": "k8s.log",
             "subject": {"kind": "Pod", "uid": pod_uid, "ns": pod_ns, "name": pod_name},
             "pod_uid": pod_uid, "pod_namespace": pod_ns, "pod_name": pod_name,
             "message_key": f"{client_id}::{pod_uid}"}
    return WireRecord(LOGS, value["message_key"].encode(), vector_json(value))


def raw_log_mirror(log: Mapping[str, Any]) -> WireRecord:
    """Row 10: ``vector.rawLogsTopic`` set: the ``kubernetes_logs`` record as is, no
    ``key_field``, so a null key and no client anywhere."""
    return WireRecord(RAW_LOGS, None, vector_json(log))


# --- rows 11, 15: the kubernetes-event-exporter --------------------------------------------

def exported_event(event: Mapping[str, Any], *, involved_labels: Mapping[str, str] | None = None,
                   topic: str = EVENTS) -> WireRecord:
    """Row 11: the event exporter's Kafka sink: ``EnhancedEvent`` JSON (the core/v1 Event,
    ``involvedObject`` with the object's ``labels``) keyed by the Event's uid alone.
    It sends new Events only (``sentUpdateEvent`` is not set by the chart)."""
    involved = dict(event["involvedObject"])
    if involved_labels:
        involved["labels"] = go_map(involved_labels)
    value = {**event, "involvedObject": involved}
    return WireRecord(topic, str(event["metadata"]["uid"]).encode(), go_json(value))


def per_client_topic_event(client_id: str, event: Mapping[str, Any]) -> WireRecord:
    """Row 15 (chart 1.0.x): the same Event on the client's own ``<client>.events.normalized``."""
    return exported_event(event, topic=f"{client_id}.{EVENTS}")


def per_client_topic_log(client_id: str, log: Mapping[str, Any], now: float) -> WireRecord:
    """Row 15 (chart 1.0.x): a log line on ``<client>.logs.normalized``, unkeyed: its
    Vector remap only adds ``client_id`` and ``event_time = now()``."""
    return WireRecord(f"{client_id}.{LOGS}", None, vector_json(
        {**log, "client_id": client_id, "event_time": vector_time(now)}))


def on_client_topic(client_id: str, record: WireRecord) -> WireRecord:
    """Row 15 (chart 1.0.x): the state-watcher's and alert-receiver's records (keys and
    values as above) on the client's own topics, ``<client>.state.k8s.resource`` ..."""
    return WireRecord(f"{client_id}.{record.topic}", record.key, record.value)


# --- rows 12-14: alerts ----------------------------------------------------------------

def _webhook_received(client_id: str, webhook: Mapping[str, Any], received: float) -> dict:
    """The ``http_server`` source's event (body + ``path``, ``source_type``, ``timestamp``)
    after ``prom_alerts_raw_key`` added ``message_key``."""
    key = webhook.get("groupKey") or webhook.get("externalURL")
    return {**webhook, "path": "/", "source_type": "http_server",
            "timestamp": vector_time(received), "message_key": f"{client_id}::{key}"}


def vector_raw_alert(client_id: str, webhook: Mapping[str, Any], received: float) -> WireRecord:
    """Row 13: the Alertmanager webhook body on ``raw.prom.alerts``, keyed by
    ``message_key`` = ``<client>::<groupKey>``."""
    event = _webhook_received(client_id, webhook, received)
    return WireRecord(RAW_ALERTS, event["message_key"].encode(), vector_json(event))


def _text(value: Any) -> str:
    """VRL ``to_string`` of a missing field, with the remap's fallbacks: ``""``."""
    return "" if value is None else str(value)


def vector_alert_twins(client_id: str, webhook: Mapping[str, Any], received: float,
                       event_ids: list[str]) -> list[WireRecord]:
    """Row 12: ``prom_alerts_explode`` + ``prom_alerts_norm`` on ``events.normalized``:
    one record per alert, the webhook's fields kept and ``alerts`` holding that ONE alert.

    The remap reads ``.labels``/``.annotations`` at the top level, where a webhook has
    none, so reason and severity come from ``commonLabels``, the message is empty and the
    subject is a nameless Service: exactly what the chart's VRL does. ``event_ids`` are
    its ``uuid_v4()`` draws, one per alert.
    """
    base = _webhook_received(client_id, webhook, received)
    out = []
    for alert, event_id in zip(webhook.get("alerts") or [], event_ids, strict=True):
        event = {**base, "alerts": alert, "labels": {}, "annotations": {}}
        common = webhook.get("commonLabels") or {}
        reason = _text(common.get("alertname")) or "UNKNOWN"
        severity = (_text(common.get("severity")) or "WARNING").upper()
        event.update({"event_id": event_id, "event_time": vector_time(received),
                      "etype": "prom.alert", "reason": reason,
                      "status": _text(webhook.get("status")) or "firing", "severity": severity,
                      "message": "", "subject": {"kind": "Service", "ns": "", "name": ""}})
        out.append(WireRecord(EVENTS, base["message_key"].encode(), vector_json(event)))
    return out


def alert_receiver_events(client_id: str, webhook: Mapping[str, Any], received: float,
                          event_ids: list[str]) -> list[WireRecord]:
    """Row 14: the alert-receiver's ``transformAlertToNormalizedEvent`` per alert, on
    ``alerts.raw`` keyed ``<client>::<event_id>`` (``event_ids``: its ``uuid.New()``)."""
    out = []
    for alert, event_id in zip(webhook.get("alerts") or [], event_ids, strict=True):
        labels, notes = alert.get("labels") or {}, alert.get("annotations") or {}
        kind, name = "Service", ""
        for label, label_kind in (("pod", "Pod"), ("service", "Service"),
                                  ("deployment", "Deployment"), ("node", "Node")):
            if labels.get(label):
                kind, name = label_kind, labels[label]
                break
        alertname = labels.get("alertname") or "UnknownAlert"
        severity = str(labels.get("severity", "")).upper()
        if severity not in ("CRITICAL", "WARNING", "INFO"):
            severity = "WARNING"
        message = (notes.get("description") or notes.get("summary")
                   or f"Alert {alertname} is {alert.get('status', '')}")
        value: dict[str, Any] = {"event_id": event_id, "event_time": rfc3339(received)}
        if client_id:
            value["client_id"] = client_id
        value.update({"etype": "prom.alert", "severity": severity, "reason": alertname,
                      "message": message,
                      "subject": {"kind": kind, "uid": labels.get("uid", ""),
                                  "ns": labels.get("namespace") or "default", "name": name}})
        key = f"{client_id}::{event_id}" if client_id else event_id
        out.append(WireRecord(ALERTS, key.encode(), go_json(value)))
    return out
