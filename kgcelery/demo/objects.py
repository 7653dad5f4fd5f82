"""Builders of Kubernetes objects as the API server returns them (plain JSON dicts).

Every builder takes an :class:`Ids` (the world, :class:`~kgcelery.demo.world.World`)
only for fresh ids, so the objects are as deterministic as the world's random generator.
Times are epoch seconds in, RFC 3339 out, at the second precision of Kubernetes metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from kgcelery.model.timeparse import iso

Obj = dict[str, Any]


class Ids(Protocol):
    """Where builders get fresh ids: the world, whose generator is seeded."""

    def uid(self) -> str: ...
    def hex(self, digits: int) -> str: ...


#: apiVersion of every kind the simulator builds.
API_VERSIONS = {
    "Namespace": "v1", "Node": "v1", "Pod": "v1", "Service": "v1",
    "Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1",
}


@dataclass(frozen=True, slots=True)
class AppSpec:
    """One workload of the simulated cluster: its controller, container and behaviour."""

    namespace: str
    name: str
    kind: str
    replicas: int
    image: str
    port: int
    voice: str
    container: str = ""
    cpu: str = "100m"
    memory: str = "128Mi"
    memory_limit: str = "256Mi"
    probe_path: str | None = "/healthz"
    service: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def container_name(self) -> str:
        return self.container or self.name

    @property
    def selector(self) -> dict[str, str]:
        return self.labels or {"app.kubernetes.io/name": self.name}


def meta(world: Ids, kind: str, name: str, namespace: str | None, created: float, *,
         labels: dict[str, str] | None = None, owner: Obj | None = None,
         annotations: dict[str, str] | None = None) -> Obj:
    """``metadata`` of a new object (its resourceVersion is set when the world stores it)."""
    metadata: Obj = {"name": name, "uid": world.uid(), "creationTimestamp": iso(created),
                     "labels": dict(labels or {})}
    if namespace:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
    if owner is not None:
        metadata["ownerReferences"] = [owner_ref(owner)]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job"):
        metadata["generation"] = 1
    return metadata


def new_object(world: Ids, kind: str, name: str, namespace: str | None, created: float,
               **meta_args: Any) -> Obj:
    return {"apiVersion": API_VERSIONS[kind], "kind": kind,
            "metadata": meta(world, kind, name, namespace, created, **meta_args)}


def owner_ref(owner: Obj) -> Obj:
    """The controller reference a child carries to ``owner``."""
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def namespace(world: Ids, name: str, created: float) -> Obj:
    obj = new_object(world, "Namespace", name, None, created,
                     labels={"kubernetes.io/metadata.name": name})
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}
    return obj


def node(world: Ids, name: str, created: float, *, ip: str, pod_cidr: str, zone: str,
         instance_type: str, pool: str, cpu: int, memory_gi: int) -> Obj:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": instance_type,
              "topology.kubernetes.io/zone": zone, "node-pool": pool}
    obj = new_object(world, "Node", name, None, created, labels=labels)
    obj["spec"] = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr],
                   "providerID": f"aws:///{zone}/i-0{world.hex(16)}"}
    capacity = {"cpu": str(cpu), "memory": f"{memory_gi * 1024 * 1024}Ki", "pods": "110"}
    allocatable = {"cpu": f"{cpu * 1000 - 80}m", "memory": f"{memory_gi * 1024 * 1024 - 460000}Ki",
                   "pods": "110"}
    stamp = iso(created + 40)
    conditions = [{"type": kind, "status": "False", "reason": reason,
                   "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
                  for kind, reason in (("MemoryPressure", "KubeletHasSufficientMemory"),
                                       ("DiskPressure", "KubeletHasNoDiskPressure"),
                                       ("PIDPressure", "KubeletHasSufficientPID"))]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status",
                       "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
    obj["status"] = {
        "capacity": capacity, "allocatable": allocatable, "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": ip},
                      {"type": "Hostname", "address": name}],
        "nodeInfo": {"kubeletVersion": "v1.29.4", "kubeProxyVersion": "v1.29.4",
                     "containerRuntimeVersion": "containerd://1.7.11", "osImage":
                     "Amazon Linux 2023", "operatingSystem": "linux", "architecture": "amd64",
                     "kernelVersion": "6.1.72-96.166.amzn2023.x86_64",
                     "machineID": world.hex(32), "systemUUID": world.uid()},
    }
    return obj


def container(spec: AppSpec, image: str, *, cpu: str | None = None) -> Obj:
    """The container of ``spec`` as it appears in a pod template."""
    body: Obj = {
        "name": spec.container_name, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": spec.port, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": cpu or spec.cpu, "memory": spec.memory},
                      "limits": {"memory": spec.memory_limit}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if spec.probe_path:
        probe = {"httpGet": {"path": spec.probe_path, "port": spec.port, "scheme": "HTTP"},
                 "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3}
        body["readinessProbe"] = probe
        body["livenessProbe"] = {**probe, "initialDelaySeconds": 30}
    return body


def template(spec: AppSpec, image: str, labels: dict[str, str], *, cpu: str | None = None) -> Obj:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [container(spec, image, cpu=cpu)],
                     "restartPolicy": "Always", "terminationGracePeriodSeconds": 30}}


def workload(world: Ids, spec: AppSpec, created: float, image: str, *,
             cpu: str | None = None) -> Obj:
    """A Deployment, StatefulSet or DaemonSet for ``spec``, its status up to date."""
    labels = {**spec.selector, "app.kubernetes.io/part-of": spec.namespace}
    obj = new_object(world, spec.kind, spec.name, spec.namespace, created, labels=labels)
    body: Obj = {"selector": {"matchLabels": dict(spec.selector)},
                 "template": template(spec, image, labels, cpu=cpu)}
    if spec.kind != "DaemonSet":
        body["replicas"] = spec.replicas
    if spec.kind == "Deployment":
        body["strategy"] = {"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
        body["progressDeadlineSeconds"] = 600
        obj["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    if spec.kind == "StatefulSet":
        body["serviceName"] = spec.service or spec.name
    obj["spec"] = body
    obj["status"] = {"observedGeneration": 1}
    return obj


def replica_set(world: Ids, deployment: Obj, pod_hash: str, revision: int, replicas: int,
                created: float) -> Obj:
    spec = deployment["spec"]
    labels = {**spec["template"]["metadata"]["labels"], "pod-template-hash": pod_hash}
    name = f"{deployment['metadata']['name']}-{pod_hash}"
    obj = new_object(world, "ReplicaSet", name, deployment["metadata"]["namespace"], created,
                     labels=labels, owner=deployment,
                     annotations={"deployment.kubernetes.io/revision": str(revision),
                                  "deployment.kubernetes.io/desired-replicas":
                                  str(spec["replicas"])})
    template_copy = {"metadata": {"labels": dict(labels)},
                     "spec": json_copy(spec["template"]["spec"])}
    obj["spec"] = {"replicas": replicas, "template": template_copy,
                   "selector": {"matchLabels": {**spec["selector"]["matchLabels"],
                                                "pod-template-hash": pod_hash}}}
    obj["status"] = {"replicas": 0, "observedGeneration": 1}
    return obj


def cron_job(world: Ids, spec: AppSpec, created: float, image: str, schedule: str) -> Obj:
    labels = dict(spec.selector)
    obj = new_object(world, "CronJob", spec.name, spec.namespace, created, labels=labels)
    pod_template = template(spec, image, labels)
    pod_template["spec"]["restartPolicy"] = "OnFailure"
    job_template = {"spec": {"backoffLimit": 2, "template": pod_template}}
    obj["spec"] = {"schedule": schedule, "concurrencyPolicy": "Forbid",
                   "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                   "jobTemplate": job_template}
    obj["status"] = {}
    return obj


def job(world: Ids, cronjob: Obj, name: str, created: float) -> Obj:
    template_spec = cronjob["spec"]["jobTemplate"]["spec"]
    obj = new_object(world, "Job", name, cronjob["metadata"]["namespace"], created,
                     labels=dict(cronjob["metadata"]["labels"]), owner=cronjob)
    uid = obj["metadata"]["uid"]
    labels = {**template_spec["template"]["metadata"]["labels"], "controller-uid": uid,
              "job-name": name, "batch.kubernetes.io/job-name": name,
              "batch.kubernetes.io/controller-uid": uid}
    obj["spec"] = {"backoffLimit": template_spec["backoffLimit"], "completions": 1,
                   "parallelism": 1, "selector": {"matchLabels": {"controller-uid": uid}},
                   "template": {"metadata": {"labels": labels},
                                "spec": json_copy(template_spec["template"]["spec"])}}
    obj["status"] = {"startTime": iso(created), "active": 1}
    return obj


def service(world: Ids, name: str, namespace_name: str, created: float, *,
            selector: dict[str, str], port: int, cluster_ip: str) -> Obj:
    obj = new_object(world, "Service", name, namespace_name, created,
                     labels={"app.kubernetes.io/name": name})
    obj["spec"] = {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                   "selector": dict(selector), "sessionAffinity": "None",
                   "ports": [{"name": "tcp", "port": port, "targetPort": port,
                              "protocol": "TCP"}]}
    obj["status"] = {"loadBalancer": {}}
    return obj


def pod(world: Ids, owner: Obj, name: str, created: float, *,
        extra_labels: dict[str, str] | None = None) -> Obj:
    """A Pending pod of ``owner`` from the owner's template (not yet on a node)."""
    template_body = owner["spec"]["template"]
    labels = {**template_body["metadata"]["labels"], **(extra_labels or {})}
    obj = new_object(world, "Pod", name, owner["metadata"]["namespace"], created,
                     labels=labels, owner=owner)
    obj["spec"] = {**json_copy(template_body["spec"]), "schedulerName": "default-scheduler",
                   "serviceAccountName": "default", "dnsPolicy": "ClusterFirst"}
    requests = obj["spec"]["containers"][0]["resources"]
    qos = "Burstable" if requests.get("requests") else "BestEffort"
    obj["status"] = {
        "phase": "Pending", "qosClass": qos,
        "conditions": [{"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                        "lastTransitionTime": iso(created)}],
    }
    return obj


def json_copy(value: Any) -> Any:
    """A copy of a JSON-like value (much cheaper than copy.deepcopy for these shapes)."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value

