"""What every part of a simulated cluster shares, and the steps they have in common."""

from __future__ import annotations

from dataclasses import dataclass

from kgcelery.demo import objects
from kgcelery.demo.controllers import sync_owners
from kgcelery.demo.kubelet import Kubelet
from kgcelery.demo.objects import AppSpec, Obj
from kgcelery.demo.signals import AlertBook, EventBook, log_record
from kgcelery.demo.world import DemoRecord, World

#: The kubelet's restart back-off: 10 s, doubling, at most 5 minutes.
BACKOFFS = (10.0, 20.0, 40.0, 80.0, 160.0, 300.0)


def backoff(attempt: int) -> float:
    """The back-off before restart number ``attempt + 1`` (0 is the first)."""
    return BACKOFFS[min(attempt, len(BACKOFFS) - 1)]


@dataclass(slots=True)
class Sim:
    """One simulated cluster: its objects, Event and alert books, and its kubelets."""

    world: World
    events: EventBook
    alerts: AlertBook
    kubelet: Kubelet

    @classmethod
    def create(cls, client_id: str, cluster_name: str, seed: int) -> Sim:
        world = World(client_id, cluster_name, seed)
        events = EventBook(world)
        return cls(world, events, AlertBook(world), Kubelet(world, events))

    def log(self, at: float, pod: Obj, container: str, message: str, *,
            stream: str = "stdout") -> DemoRecord:
        return log_record(at, pod, container, message, stream=stream)

    def pods_of(self, namespace: str, app: str) -> list[Obj]:
        """The pods of an app (by its ``app.kubernetes.io/name`` label), by name."""
        return sorted((pod for pod in self.world.of_kind("Pod")
                       if pod["metadata"]["namespace"] == namespace
                       and pod["metadata"]["labels"].get("app.kubernetes.io/name") == app),
                      key=lambda pod: pod["metadata"]["name"])

    def node_of(self, pod: Obj) -> Obj:
        return self.world.get("Node", "", pod["spec"]["nodeName"])

    def roomiest_node(self) -> Obj:
        """The node with the fewest pods (the scheduler spreads pods out)."""
        load = {node["metadata"]["name"]: 0 for node in self.world.of_kind("Node")}
        for pod in self.world.of_kind("Pod"):
            name = pod["spec"].get("nodeName")
            if name in load and pod["status"]["phase"] in ("Pending", "Running"):
                load[name] += 1
        name = min(load, key=lambda node: (load[node], node))
        return self.world.get("Node", "", name)

    def create_deployment(self, at: float, spec: AppSpec, *,
                          cpu: str | None = None) -> tuple[list[DemoRecord], list[Obj]]:
        """A new Deployment, its ReplicaSet and Pending pods, with the controllers' Events."""
        world, events = self.world, self.events
        deployment = objects.workload(world, spec, at, spec.image, cpu=cpu)
        records = [world.put(deployment, at)]
        replica_set = objects.replica_set(world, deployment, world.suffix(10), 1, spec.replicas,
                                          at)
        records.append(world.put(replica_set, at))
        records.append(events.emit(
            at, deployment, "ScalingReplicaSet",
            f"Scaled up replica set {replica_set['metadata']['name']} to {spec.replicas}",
            component="deployment-controller"))
        created, pods = self.create_pods(at, replica_set, spec.replicas)
        return records + created, pods

    def create_pods(self, at: float, owner: Obj, count: int, *,
                    extra_labels: dict[str, str] | None = None
                    ) -> tuple[list[DemoRecord], list[Obj]]:
        """``count`` Pending pods of a ReplicaSet or DaemonSet, with SuccessfulCreate."""
        records: list[DemoRecord] = []
        pods: list[Obj] = []
        component = {"ReplicaSet": "replicaset-controller", "DaemonSet": "daemonset-controller",
                     "Job": "job-controller"}[owner["kind"]]
        base = owner["metadata"]["name"]
        for _ in range(count):
            pod = objects.pod(self.world, owner, f"{base}-{self.world.suffix()}", at,
                              extra_labels=extra_labels)
            records.append(self.world.put(pod, at))
            records.append(self.events.emit(at, owner, "SuccessfulCreate",
                                            f"Created pod: {pod['metadata']['name']}",
                                            component=component))
            pods.append(pod)
        if pods:
            records.extend(sync_owners(self.world, at, pods[0]))
        return records, pods
