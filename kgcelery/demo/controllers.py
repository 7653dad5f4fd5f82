"""Controller status, recomputed from the pods the way the controllers report it.

After a pod changes, :func:`sync_owners` brings its ReplicaSet, Deployment, StatefulSet
or DaemonSet up to date, so that e.g. ``readyReplicas`` drops when a pod crashes. Only
owners whose status really changed are stored (and so produce a resource record).
"""

from __future__ import annotations

from typing import Any

from kgcelery.demo.objects import Obj
from kgcelery.demo.world import DemoRecord, World
from kgcelery.model.timeparse import iso


def is_ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod["status"].get("conditions", ()))


def revision(replica_set: Obj) -> int:
    return int(replica_set["metadata"].get("annotations", {})
               .get("deployment.kubernetes.io/revision", "0"))


def sync_owners(world: World, at: float, obj: Obj) -> list[DemoRecord]:
    """Recompute the status of ``obj``'s owners, up the chain; records of the changed ones."""
    records: list[DemoRecord] = []
    for ref in obj["metadata"].get("ownerReferences", ()):
        owner = world.objects.get(ref["uid"])
        if owner is not None:
            records.extend(sync(world, at, owner))
            records.extend(sync_owners(world, at, owner))
    return records


def sync(world: World, at: float, obj: Obj) -> list[DemoRecord]:
    """Recompute the status of one controller; its record if the status changed."""
    status = status_of(world, obj, at)
    if status is None or status == obj["status"]:
        return []
    obj["status"] = status
    return [world.put(obj, at)]


def status_of(world: World, obj: Obj, at: float) -> dict[str, Any] | None:
    """The status the controller of ``obj`` would report now; None for kinds it leaves alone."""
    kind, generation = obj["kind"], obj["metadata"].get("generation", 1)
    if kind == "ReplicaSet":
        pods = world.children(obj, "Pod")
        ready = sum(map(is_ready, pods))
        return {"replicas": len(pods), "fullyLabeledReplicas": len(pods),
                "readyReplicas": ready, "availableReplicas": ready,
                "observedGeneration": generation}
    if kind == "Deployment":
        return _deployment_status(world, obj, at)
    if kind == "StatefulSet":
        pods = world.children(obj, "Pod")
        ready = sum(map(is_ready, pods))
        revision_name = obj["status"].get("currentRevision") or next(
            (p["metadata"]["labels"].get("controller-revision-hash", "") for p in pods), "")
        return {"observedGeneration": generation, "replicas": len(pods), "readyReplicas": ready,
                "currentReplicas": len(pods), "updatedReplicas": len(pods),
                "availableReplicas": ready, "currentRevision": revision_name,
                "updateRevision": revision_name, "collisionCount": 0}
    if kind == "DaemonSet":
        pods = world.children(obj, "Pod")
        ready = sum(map(is_ready, pods))
        scheduled = sum(1 for p in pods if p["spec"].get("nodeName"))
        return {"observedGeneration": generation, "currentNumberScheduled": scheduled,
                "desiredNumberScheduled": len(world.of_kind("Node")), "numberReady": ready,
                "numberAvailable": ready, "numberMisscheduled": 0,
                "updatedNumberScheduled": len(pods)}
    return None


def _deployment_status(world: World, deployment: Obj, at: float) -> dict[str, Any]:
    sets = sorted(world.children(deployment, "ReplicaSet"), key=revision)
    pods = [pod for replica_set in sets for pod in world.children(replica_set, "Pod")]
    newest = sets[-1] if sets else None
    updated = world.children(newest, "Pod") if newest else []
    wanted = deployment["spec"]["replicas"]
    ready = sum(map(is_ready, pods))
    old = {c["type"]: c for c in deployment["status"].get("conditions", ())}
    # maxUnavailable is 25% (rounded down): below that the Deployment is not Available.
    if ready >= wanted - wanted // 4:
        available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        available = ("False", "MinimumReplicasUnavailable",
                     "Deployment does not have minimum availability.")
    name = newest["metadata"]["name"] if newest else ""
    if newest is not None and len(pods) == wanted and sum(map(is_ready, updated)) == wanted:
        progressing = ("True", "NewReplicaSetAvailable",
                       f'ReplicaSet "{name}" has successfully progressed.')
    else:
        progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
    status: dict[str, Any] = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": len(pods), "updatedReplicas": len(updated), "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [_condition(old.get(kind), kind, value, at)
                       for kind, value in (("Available", available),
                                           ("Progressing", progressing))],
    }
    if len(pods) > ready:
        status["unavailableReplicas"] = len(pods) - ready
    return status


def _condition(old: Obj | None, kind: str, value: tuple[str, str, str], at: float) -> Obj:
    status, reason, message = value
    if old is not None and (old["status"], old["reason"], old["message"]) == value:
        return old
    moved = old is not None and old["status"] != status
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": iso(at),
            "lastTransitionTime": iso(at) if old is None or moved else old["lastTransitionTime"]}
