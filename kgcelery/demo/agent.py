"""The kg-rca-agent of one simulated cluster: what its parts put on Kafka.

The simulation (:mod:`kgcelery.demo.cluster`) says what happens in a cluster as
Kubernetes objects, Events, log lines and Alertmanager notifications. This module is
the agent installed in it (chart 2.1.x): its install jobs register the cluster (rows 1
and 2 of ``AGENT_FORMATS.md``); the state-watcher turns object changes into resource
records, topology edges and their tombstones, heartbeats and Prometheus targets (rows
5-8); the heartbeat CronJob beats (row 4); Vector ships logs (row 9) and the
Alertmanager webhook (rows 12, 13); the alert-receiver gets the same notifications
(row 14). Records are built by :mod:`kgcelery.demo.agent_wire`.

One deliberate difference: the chart's kubernetes-event-exporter keys an Event by its
uid alone (row 11), which names no client, and kgcelery dead-letters it (``bad-key``).
The demo's exporter is the fixed one ``docs/AGENTS.md`` asks for: same value, key
``<client>::<uid>``; it sends new Events only, as the chart's exporter does.

Pure and deterministic, like the simulation: every time is given, every uuid drawn
from a generator seeded by the client and the seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from typing import Any

from kgcelery.demo import agent_wire as wire
from kgcelery.demo.objects import Obj
from kgcelery.demo.world import DemoRecord

#: How often the state-watcher beats and polls Prometheus' targets, and the CronJob beats.
WATCHER_HEARTBEAT_S = 30.0
PROM_TARGETS_S = 30.0
CRONJOB_HEARTBEAT_S = 60.0
_CONTROLLERS = ("ReplicaSet", "DaemonSet", "Job")  # the last one an owner has wins (Go)

Ref = str  # an object ref as the state-watcher writes it: pod:shop:web-1


def _selected(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class StateWatcher:
    """``state-watcher/main.go`` over the simulated API: its informers' handlers, with
    the same bookkeeping (which pods each service selects, each pod's controller)."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        # The configmap sets CLUSTER_NAME from client.id, not from cluster.name.
        self.cluster = client_id
        self.pods: dict[tuple[str, str], Obj] = {}
        self.services: dict[tuple[str, str], Obj] = {}
        self.service_pods: dict[Ref, set[Ref]] = {}
        self.pod_controller: dict[Ref, Ref] = {}

    # What the API server would answer the handlers' List calls with.
    def observe(self, objs: Iterable[Obj]) -> None:
        for obj in objs:
            meta = obj["metadata"]
            if obj["kind"] == "Pod":
                self.pods[(meta["namespace"], meta["name"])] = obj
            elif obj["kind"] == "Service":
                self.services[(meta["namespace"], meta["name"])] = obj

    def translate(self, record: DemoRecord) -> list[wire.WireRecord]:
        """The records the watcher sends for one change of the simulated API."""
        value = record.value
        if value.get("op") == "DELETE":
            if value["kind"] not in wire.WATCHED_KINDS:
                return []
            return self.delete(value["kind"], value.get("namespace", ""), value["name"],
                               value["uid"])
        if value.get("kind") not in wire.WATCHED_KINDS:
            return []
        self.observe([value])
        return self.push(value, record.ts)

    def push(self, obj: Obj, at: float) -> list[wire.WireRecord]:
        kind, meta = obj["kind"], obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        out: list[wire.WireRecord] = []
        if kind == "Pod":
            out += self._pod_edges(obj, at)
        elif kind == "Service":
            out += self._service_edges(obj, at)
        elif kind in ("ReplicaSet", "Job"):
            owner_kind = "Deployment" if kind == "ReplicaSet" else "CronJob"
            owner = next((r["name"] for r in meta.get("ownerReferences", ())
                          if r["kind"] == owner_kind), None)
            if owner:
                out.append(self._edge("CONTROLS", wire.object_ref(owner_kind, ns, owner),
                                      wire.object_ref(kind, ns, name), at))
        out.append(wire.resource_record(self.client_id, self.cluster, obj, at))
        return out

    def delete(self, kind: str, ns: str, name: str, uid: str) -> list[wire.WireRecord]:
        out: list[wire.WireRecord] = []
        if kind == "Pod":
            pod = wire.object_ref("pod", ns, name)
            controller = self.pod_controller.pop(pod, None)
            if controller:
                out.append(wire.edge_tombstone(self.client_id, controller, pod))
            for (svc_ns, svc_name) in sorted(self.services):
                service = wire.object_ref("service", svc_ns, svc_name)
                if svc_ns == ns and pod in self.service_pods.get(service, set()):
                    out.append(wire.edge_tombstone(self.client_id, service, pod))
                    self.service_pods[service].discard(pod)
            # deletePod leaves the RUNS_ON edge alone: the agent never removes it.
            self.pods.pop((ns, name), None)
        elif kind == "Service":
            service = wire.object_ref("service", ns, name)
            out += [wire.edge_tombstone(self.client_id, service, pod)
                    for pod in sorted(self.service_pods.pop(service, set()))]
            self.services.pop((ns, name), None)
        out.append(wire.resource_tombstone(self.client_id, kind, uid))
        return out

    def _edge(self, edge_type: str, source: Ref, target: Ref, at: float) -> wire.WireRecord:
        return wire.edge_record(self.client_id, self.cluster, edge_type, source, target, at)

    def _pod_edges(self, pod_obj: Obj, at: float) -> list[wire.WireRecord]:
        meta, node = pod_obj["metadata"], pod_obj["spec"].get("nodeName", "")
        ns, pod = meta["namespace"], wire.object_ref("pod", meta["namespace"], meta["name"])
        out = []
        if node:
            out.append(self._edge("RUNS_ON", pod, wire.object_ref("node", "", node), at))
        controller = ""
        for kind in _CONTROLLERS:
            name = next((r["name"] for r in meta.get("ownerReferences", ())
                         if r["kind"] == kind), None)
            if name:
                controller = wire.object_ref(kind, ns, name)
        if controller:
            out.append(self._edge("CONTROLS", controller, pod, at))
            previous = self.pod_controller.get(pod)
            if previous != controller:
                if previous:
                    out.append(wire.edge_tombstone(self.client_id, previous, pod))
                self.pod_controller[pod] = controller
        labels = meta.get("labels") or {}
        for (svc_ns, svc_name), service_obj in sorted(self.services.items()):
            if svc_ns != ns:
                continue
            service = wire.object_ref("service", svc_ns, svc_name)
            members = self.service_pods.setdefault(service, set())
            selector = service_obj["spec"].get("selector") or {}
            match, had = _selected(selector, labels), pod in members
            if match and not had:
                out.append(self._edge("SELECTS", service, pod, at))
                members.add(pod)
            elif had and not match:
                out.append(wire.edge_tombstone(self.client_id, service, pod))
                members.discard(pod)
        return out

    def _service_edges(self, service_obj: Obj, at: float) -> list[wire.WireRecord]:
        meta = service_obj["metadata"]
        ns, service = meta["namespace"], wire.object_ref("service", meta["namespace"],
                                                         meta["name"])
        selector = service_obj["spec"].get("selector") or {}
        previous = self.service_pods.get(service, set())
        current = {wire.object_ref("pod", ns, name) for (pod_ns, name), pod in self.pods.items()
                   if pod_ns == ns and _selected(selector, pod["metadata"].get("labels") or {})}
        out = [self._edge("SELECTS", service, pod, at) for pod in sorted(current - previous)]
        out += [wire.edge_tombstone(self.client_id, service, pod)
                for pod in sorted(previous - current)]
        self.service_pods[service] = current
        return out

    # --- Prometheus targets (runPromTargetSync) ----------------------------------------
    def prom_targets(self, nodes: list[Obj], previous: set[str], now: float
                     ) -> tuple[list[wire.WireRecord], set[str]]:
        """One poll of ``/api/v1/targets``: every active target, then tombstones for the
        targets of the previous poll that are gone. Returns the records and the keys."""
        out, keys = [], set()
        for target in _targets(nodes, self.pods.values(), self.services.values(), now):
            out.append(wire.prom_target(self.client_id, self.cluster, target, now))
            keys.add(wire.target_key(self.cluster, target["labels"]))
        for key in sorted(previous - keys):
            out.append(wire.WireRecord(wire.PROM_TARGETS, wire.tenant_key(self.client_id, key),
                                       None))
        return out, keys


def _targets(nodes: Iterable[Obj], pods: Iterable[Obj], services: Iterable[Obj],
             now: float) -> list[dict[str, Any]]:
    """What kube-prometheus-stack would scrape: each node's kubelet, and each pod behind a
    service on its container port (down, with the error, while it is not ready)."""
    scraped = wire.rfc3339_nano(now - 7.5)
    targets = []
    for node in nodes:
        name = node["metadata"]["name"]
        ip = next((a["address"] for a in node["status"].get("addresses", ())
                   if a["type"] == "InternalIP"), name)
        ready = wire.node_ready(node)
        targets.append({
            "labels": {"endpoint": "https-metrics", "instance": f"{ip}:10250", "job": "kubelet",
                       "metrics_path": "/metrics", "namespace": "kube-system", "node": name,
                       "service": "kube-prometheus-stack-kubelet"},
            "scrapeUrl": f"https://{ip}:10250/metrics", "health": "up" if ready else "down",
            "lastScrape": scraped,
            "lastError": "" if ready else f'Get "https://{ip}:10250/metrics": context deadline '
                                          "exceeded"})
    for service in services:
        selector = service["spec"].get("selector") or {}
        svc_ns, svc_name = service["metadata"]["namespace"], service["metadata"]["name"]
        for pod in pods:
            meta, status = pod["metadata"], pod["status"]
            if meta["namespace"] != svc_ns or not status.get("podIP") \
                    or not _selected(selector, meta.get("labels") or {}):
                continue
            container = pod["spec"]["containers"][0]
            port = (container.get("ports") or [{"containerPort": 8080}])[0]["containerPort"]
            url = f"http://{status['podIP']}:{port}/metrics"
            up = status.get("phase") == "Running" and all(
                s.get("ready") for s in status.get("containerStatuses", ()))
            targets.append({
                "labels": {"container": container["name"], "endpoint": "http",
                           "instance": f"{status['podIP']}:{port}", "job": svc_name,
                           "namespace": svc_ns, "pod": meta["name"], "service": svc_name},
                "scrapeUrl": url, "health": "up" if up else "down", "lastScrape": scraped,
                "lastError": "" if up else f'Get "{url}": dial tcp {status["podIP"]}:{port}: '
                                           "connect: connection refused"})
    return targets


class Agent:
    """Every part of the agent of one cluster, in front of its simulation."""

    def __init__(self, client_id: str, cluster_name: str, *, region: str = "",
                 seed: int = 0) -> None:
        self.client_id = client_id
        self.cluster_name = cluster_name
        self.region = region
        self.watcher = StateWatcher(client_id)
        self._rng = random.Random(f"kgcelery-demo-agent/{client_id}/{seed}")
        self._events_sent: set[str] = set()
        self._targets: set[str] = set()
        self._started: float | None = None

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def install(self, now: float) -> list[wire.WireRecord]:
        """``helm install``'s post-install hooks: both registration jobs of the chart."""
        self._started = now
        return [wire.registry_job_registration(self.client_id, self.cluster_name, now,
                                               region=self.region),
                wire.register_job_registration(self.client_id, self.cluster_name, now)]

    def cronjob_heartbeat(self, now: float) -> wire.WireRecord:
        return wire.cronjob_heartbeat(self.client_id, now)

    def watcher_heartbeat(self, now: float) -> wire.WireRecord:
        # main.go passes a message counter to runHeartbeat that nothing increments.
        started = self._started if self._started is not None else now
        return wire.watcher_heartbeat(self.client_id, now, resources_sent=0,
                                      uptime_seconds=int(now - started))

    def prom_targets(self, nodes: list[Obj], now: float) -> list[wire.WireRecord]:
        records, self._targets = self.watcher.prom_targets(nodes, self._targets, now)
        return records

    def snapshot(self, records: list[DemoRecord]) -> list[wire.WireRecord]:
        """The informers' initial lists: every watched object is added."""
        self.watcher.observe(record.value for record in records)
        out: list[wire.WireRecord] = []
        for record in records:
            out += self.watcher.translate(record)
        return out

    def translate(self, records: Iterable[DemoRecord]) -> list[wire.WireRecord]:
        """What the agent sends for what the simulation did, in the same order."""
        out: list[wire.WireRecord] = []
        for record in records:
            if record.kind == "resource":
                out += self.watcher.translate(record)
            elif record.kind == "log":
                out.append(wire.vector_log(self.client_id, record.value, record.ts))
            elif record.kind == "event":
                out += self._event(record.value)
            elif record.kind == "alert":
                out += self._alert(record.value, record.ts)
        return out

    def _event(self, event: dict[str, Any]) -> list[wire.WireRecord]:
        uid = event["metadata"]["uid"]
        if uid in self._events_sent:  # an update (count + 1): the exporter skips it
            return []
        self._events_sent.add(uid)
        involved = event["involvedObject"]
        labels = None
        for kind, objs in (("Pod", self.watcher.pods), ("Service", self.watcher.services)):
            if involved["kind"] == kind:
                obj = objs.get((involved.get("namespace", ""), involved["name"]))
                labels = obj["metadata"].get("labels") if obj else None
        exported = wire.exported_event(event, involved_labels=labels)
        return [wire.WireRecord(exported.topic, f"{self.client_id}::{uid}".encode(),
                                exported.value)]

    def _alert(self, webhook: dict[str, Any], at: float) -> list[wire.WireRecord]:
        alerts = webhook.get("alerts") or []
        out = [wire.vector_raw_alert(self.client_id, webhook, at)]
        out += wire.vector_alert_twins(self.client_id, webhook, at,
                                       [self.uuid4() for _ in alerts])
        out += wire.alert_receiver_events(self.client_id, webhook, at,
                                          [self.uuid4() for _ in alerts])
        return out
