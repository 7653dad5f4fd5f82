"""Pods change the way the scheduler and the kubelet change them, with their Events.

The module functions only change a pod's status (the topology uses them to build pods
that have been running for a while). :class:`Kubelet` also records the Events that the
real component records at that moment, stores the pod and re-syncs its owners, so a
pod's status, its Events and its controllers always tell the same story.
"""

from __future__ import annotations

import hashlib

from kgcelery.demo.controllers import sync_owners
from kgcelery.demo.objects import Obj
from kgcelery.demo.signals import EventBook
from kgcelery.demo.world import DemoRecord, World
from kgcelery.model.timeparse import iso


def image_id(image: str) -> str:
    """The digest an image tag resolves to (stable per tag, like a registry's)."""
    return f"{image.rsplit(':', 1)[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def node_ip(node: Obj) -> str:
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def container_status(pod: Obj, name: str) -> Obj:
    statuses = pod["status"].setdefault("containerStatuses", [])
    for status in statuses:
        if status["name"] == name:
            return status
    image = next(c["image"] for c in pod["spec"]["containers"] if c["name"] == name)
    status = {"name": name, "image": image, "imageID": "", "ready": False, "started": False,
              "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}},
              "lastState": {}}
    statuses.append(status)
    return status


def set_condition(obj: Obj, kind: str, value: str, at: float, *, reason: str = "",
                  message: str = "") -> None:
    conditions = obj["status"].setdefault("conditions", [])
    condition = next((c for c in conditions if c["type"] == kind), None)
    if condition is None:
        condition = {"type": kind, "status": value, "lastProbeTime": None,
                     "lastTransitionTime": iso(at)}
        conditions.append(condition)
    elif condition["status"] != value:
        condition["lastTransitionTime"] = iso(at)
    condition["status"] = value
    condition.pop("reason", None)
    condition.pop("message", None)
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message


def bind(pod: Obj, node: Obj, pod_ip: str, at: float) -> None:
    """The pod is assigned to ``node`` and gets its IP; its containers are being created."""
    pod["spec"]["nodeName"] = node["metadata"]["name"]
    host = node_ip(node)
    pod["status"].update({"hostIP": host, "hostIPs": [{"ip": host}], "podIP": pod_ip,
                          "podIPs": [{"ip": pod_ip}], "startTime": iso(at)})
    set_condition(pod, "PodScheduled", "True", at)
    set_condition(pod, "Initialized", "True", at)
    for spec in pod["spec"]["containers"]:
        container_status(pod, spec["name"])
    refresh(pod, at)


def run(pod: Obj, name: str, at: float, container_id: str, *, ready: bool = True) -> None:
    status = container_status(pod, name)
    status.update({"state": {"running": {"startedAt": iso(at)}}, "ready": ready,
                   "started": True, "containerID": f"containerd://{container_id}",
                   "imageID": image_id(status["image"])})
    refresh(pod, at)


def terminate(pod: Obj, name: str, at: float, *, reason: str, exit_code: int) -> None:
    """The container exited; the kubelet will restart it after a back-off."""
    status = container_status(pod, name)
    started = status["state"].get("running", {}).get("startedAt", iso(at))
    status["lastState"] = {"terminated": {
        "exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": iso(at),
        "containerID": status.get("containerID", "")}}
    status.update({"restartCount": status["restartCount"] + 1, "ready": False,
                   "started": False})
    refresh(pod, at)


def wait(pod: Obj, name: str, at: float, reason: str, message: str) -> None:
    status = container_status(pod, name)
    status.update({"state": {"waiting": {"reason": reason, "message": message}},
                   "ready": False, "started": False})
    refresh(pod, at)


def complete(pod: Obj, name: str, at: float) -> None:
    """A run-to-completion container finished well: the pod Succeeded."""
    status = container_status(pod, name)
    started = status["state"].get("running", {}).get("startedAt", iso(at))
    status.update({"ready": False, "started": False, "state": {"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": iso(at),
        "containerID": status.get("containerID", "")}}})
    pod["status"]["phase"] = "Succeeded"
    for kind in ("Ready", "ContainersReady"):
        set_condition(pod, kind, "False", at, reason="PodCompleted")


def refresh(pod: Obj, at: float) -> None:
    """Phase and readiness conditions from the container statuses."""
    statuses = pod["status"].get("containerStatuses", [])
    if pod["status"]["phase"] in ("Succeeded", "Failed"):
        return
    # A container that ever ran (even one crash-looping now) makes the pod Running.
    ran = any("running" in s["state"] or s["restartCount"] for s in statuses)
    pod["status"]["phase"] = "Running" if ran else "Pending"
    unready = [s["name"] for s in statuses if not s["ready"]]
    for kind in ("ContainersReady", "Ready"):
        if unready:
            set_condition(pod, kind, "False", at, reason="ContainersNotReady",
                          message=f"containers with unready status: [{' '.join(unready)}]")
        else:
            set_condition(pod, kind, "True", at)


class Kubelet:
    """The scheduler and the kubelets of the cluster, as far as pods go."""

    def __init__(self, world: World, events: EventBook) -> None:
        self.world = world
        self.events = events
        self._next_host: dict[str, int] = {}

    def new_pod_ip(self, node: Obj) -> str:
        """The next free address of the node's pod CIDR (``10.244.N.0/24``)."""
        name = node["metadata"]["name"]
        host = self._next_host.get(name, 2)
        self._next_host[name] = host % 250 + 1
        return node["spec"]["podCIDR"].rsplit(".", 1)[0] + f".{host}"

    def _store(self, at: float, pod: Obj) -> list[DemoRecord]:
        return [self.world.put(pod, at), *sync_owners(self.world, at, pod)]

    def _emit(self, at: float, pod: Obj, reason: str, message: str, container: str = "",
              *, warning: bool = False) -> DemoRecord:
        return self.events.emit(at, pod, reason, message, component="kubelet",
                                host=pod["spec"].get("nodeName", ""), container=container,
                                warning=warning)

    def schedule(self, at: float, pod: Obj, node: Obj) -> list[DemoRecord]:
        bind(pod, node, self.new_pod_ip(node), at)
        meta = pod["metadata"]
        scheduled = self.events.emit(
            at, pod, "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to "
            f"{node['metadata']['name']}", component="default-scheduler")
        return [scheduled, *self._store(at, pod)]

    def pull(self, at: float, pod: Obj, name: str, *, cached: bool) -> list[DemoRecord]:
        image = container_status(pod, name)["image"]
        if cached:
            return [self._emit(at, pod, "Pulled",
                               f'Container image "{image}" already present on machine', name)]
        took = round(self.world.rng.uniform(0.8, 6.0), 3)
        return [self._emit(at, pod, "Pulling", f'Pulling image "{image}"', name),
                self._emit(at, pod, "Pulled", f'Successfully pulled image "{image}" in '
                           f"{took}s ({took}s including waiting)", name)]

    def start(self, at: float, pod: Obj, name: str, *, ready: bool = True) -> list[DemoRecord]:
        run(pod, name, at, self.world.hex(64), ready=ready)
        return [self._emit(at, pod, "Created", f"Created container {name}", name),
                self._emit(at, pod, "Started", f"Started container {name}", name),
                *self._store(at, pod)]

    def crash(self, at: float, pod: Obj, name: str, *, reason: str, exit_code: int,
              backoff: float) -> list[DemoRecord]:
        """The container exited and now waits ``backoff`` seconds in CrashLoopBackOff."""
        terminate(pod, name, at, reason=reason, exit_code=exit_code)
        meta = pod["metadata"]
        who = f"{meta['name']}_{meta['namespace']}({meta['uid']})"
        wait(pod, name, at, "CrashLoopBackOff",
             f"back-off {backoff:.0f}s restarting failed container={name} pod={who}")
        return [self._emit(at, pod, "BackOff",
                           f"Back-off restarting failed container {name} in pod {who}", name,
                           warning=True), *self._store(at, pod)]

    def pull_failed(self, at: float, pod: Obj, name: str, error: str) -> list[DemoRecord]:
        image = container_status(pod, name)["image"]
        wait(pod, name, at, "ErrImagePull", error)
        return [self._emit(at, pod, "Pulling", f'Pulling image "{image}"', name),
                self._emit(at, pod, "Failed", f'Failed to pull image "{image}": {error}', name,
                           warning=True),
                self._emit(at, pod, "Failed", "Error: ErrImagePull", name, warning=True),
                *self._store(at, pod)]

    def pull_back_off(self, at: float, pod: Obj, name: str) -> list[DemoRecord]:
        image = container_status(pod, name)["image"]
        message = f'Back-off pulling image "{image}"'
        wait(pod, name, at, "ImagePullBackOff", message)
        return [self._emit(at, pod, "BackOff", message, name),
                self._emit(at, pod, "Failed", "Error: ImagePullBackOff", name, warning=True),
                *self._store(at, pod)]

    def probe_failed(self, at: float, pod: Obj, name: str, probe: str, detail: str, *,
                     take_out: bool = False) -> list[DemoRecord]:
        """A failed probe; ``take_out`` (failureThreshold reached) makes the container unready."""
        records = [self._emit(at, pod, "Unhealthy", f"{probe} probe failed: {detail}", name,
                              warning=True)]
        status = container_status(pod, name)
        if take_out and status["ready"]:
            status["ready"] = False
            refresh(pod, at)
            records.extend(self._store(at, pod))
        return records

    def set_ready(self, at: float, pod: Obj, name: str) -> list[DemoRecord]:
        status = container_status(pod, name)
        if status["ready"] or "running" not in status["state"]:
            return []
        status["ready"] = True
        refresh(pod, at)
        return self._store(at, pod)

    def kill(self, at: float, pod: Obj, name: str, why: str) -> DemoRecord:
        return self._emit(at, pod, "Killing", f"Container {name} {why}, will be restarted",
                          name)
