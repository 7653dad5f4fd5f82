"""Pods that never get going: an image tag that does not exist, a pod that fits nowhere."""

from __future__ import annotations

from kgcelery.demo import objects
from kgcelery.demo.controllers import is_ready
from kgcelery.demo.kubelet import set_condition
from kgcelery.demo.objects import AppSpec, Obj
from kgcelery.demo.sim import Sim, backoff
from kgcelery.demo.topology import org_of
from kgcelery.demo.world import DemoRecord

#: Alertmanager's repeat interval, shortened for a demo.
REPEAT_S = 60.0


class MissingImageTag:
    """``catalog`` is rolled out to tag 3.2.0, which CI never pushed.

    The Deployment gets a new template and revision 2, a new ReplicaSet is scaled up to
    1 (``ScalingReplicaSet``, ``SuccessfulCreate``); its pod is scheduled and then waits
    in ErrImagePull / ImagePullBackOff forever (``Failed`` "... not found", ``Failed``
    "Error: ErrImagePull", ``BackOff`` "Back-off pulling image"), pulls retried with the
    kubelet's back-off. The old pods keep serving. ``KubeDeploymentReplicasMismatch``
    fires after 15 s and is repeated every minute.
    """

    container = "catalog"

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.image = f"ghcr.io/{org_of(sim.world.client_id)}/catalog:3.2.0"
        self.pod_name = ""
        self.pulls = 0

    @property
    def pod(self) -> Obj:
        return self.sim.world.get("Pod", "shop", self.pod_name)

    def begin(self, at: float) -> list[DemoRecord]:
        sim, world = self.sim, self.sim.world
        deployment = world.get("Deployment", "shop", "catalog")
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = self.image
        deployment["metadata"]["generation"] += 1
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "2"
        records = [world.put(deployment, at)]
        replica_set = objects.replica_set(world, deployment, world.suffix(10), 2, 1, at)
        records.append(world.put(replica_set, at))
        records.append(sim.events.emit(
            at, deployment, "ScalingReplicaSet",
            f"Scaled up replica set {replica_set['metadata']['name']} to 1",
            component="deployment-controller"))
        created, pods = sim.create_pods(at, replica_set, 1)
        self.pod_name = pods[0]["metadata"]["name"]
        world.at(at + 0.5, self._schedule)
        world.at(at + 15, self._mismatch)
        return records + created

    def _schedule(self, at: float) -> list[DemoRecord]:
        self.sim.world.at(at + 1, self._pull)
        return self.sim.kubelet.schedule(at, self.pod, self.sim.roomiest_node())

    def _pull(self, at: float) -> list[DemoRecord]:
        error = (f'rpc error: code = NotFound desc = failed to pull and unpack image '
                 f'"{self.image}": failed to resolve reference "{self.image}": '
                 f"{self.image}: not found")
        self.sim.world.at(at + 1, self._back_off)
        return self.sim.kubelet.pull_failed(at, self.pod, self.container, error)

    def _back_off(self, at: float) -> list[DemoRecord]:
        self.sim.world.at(at + backoff(self.pulls), self._pull)
        self.pulls += 1
        return self.sim.kubelet.pull_back_off(at, self.pod, self.container)

    def _mismatch(self, at: float) -> list[DemoRecord]:
        deployment = self.sim.world.get("Deployment", "shop", "catalog")
        self.sim.world.at(at + REPEAT_S, self._mismatch)
        return [self.sim.alerts.fire(
            at, "KubeDeploymentReplicasMismatch",
            {"namespace": "shop", "deployment": "catalog", "job": "kube-state-metrics"},
            summary="Deployment has not matched the expected number of replicas.",
            description=f"Deployment shop/catalog has not matched the expected number of "
                        f"replicas for longer than 15 minutes "
                        f"({deployment['status'].get('updatedReplicas', 0)} of "
                        f"{deployment['spec']['replicas']} updated).",
            expr="kube_deployment_spec_replicas != kube_deployment_status_replicas_available "
                 "or kube_deployment_status_replicas_updated != kube_deployment_spec_replicas")]


def recommender(org: str) -> AppSpec:
    return AppSpec("shop", "recommender", "Deployment", 1, f"ghcr.io/{org}/recommender:0.3.0",
                   8080, "recommender", memory="2Gi", memory_limit="4Gi")


class NoRoomForRecommender:
    """A new ``recommender`` asks for 6 CPUs; every node has 4.

    Its pod stays Pending without a node: ``FailedScheduling`` "0/N nodes are available:
    N Insufficient cpu." (one Event, its count growing), PodScheduled False/Unschedulable,
    ``KubePodNotReady`` after 20 s. The cluster autoscaler reacts (``TriggeredScaleUp``)
    and ~40 s later a larger node joins (Node Events, a new log-agent pod on it); the
    pod is scheduled there, starts, becomes ready, and the alert resolves.
    """

    container = "recommender"

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.spec = recommender(org_of(sim.world.client_id))
        self.pod_name = ""
        self.new_node: Obj | None = None
        self.agent_name = ""

    @property
    def pod(self) -> Obj:
        return self.sim.world.get("Pod", "shop", self.pod_name)

    @property
    def labels(self) -> dict[str, str]:
        return {"namespace": "shop", "pod": self.pod_name, "job": "kube-state-metrics"}

    def begin(self, at: float) -> list[DemoRecord]:
        records, pods = self.sim.create_deployment(at, self.spec, cpu="6")
        self.pod_name = pods[0]["metadata"]["name"]
        world = self.sim.world
        world.at(at + 0.3, self._unschedulable)
        world.at(at + 2, self._scale_up)
        world.at(at + 20, self._not_ready)
        return records

    def _unschedulable(self, at: float) -> list[DemoRecord]:
        if self.new_node is not None:
            return []
        count = len(self.sim.world.of_kind("Node"))
        message = (f"0/{count} nodes are available: {count} Insufficient cpu. preemption: "
                   f"0/{count} nodes are available: {count} No preemption victims found for "
                   "incoming pod.")
        pod = self.pod
        set_condition(pod, "PodScheduled", "False", at, reason="Unschedulable", message=message)
        self.sim.world.at(at + self.sim.world.rng.uniform(10, 15), self._unschedulable)
        return [self.sim.events.emit(at, pod, "FailedScheduling", message,
                                     component="default-scheduler", warning=True),
                self.sim.world.put(pod, at)]

    def _scale_up(self, at: float) -> list[DemoRecord]:
        self.sim.world.at(at + self.sim.world.rng.uniform(35, 45), self._node_joins)
        group = f"eks-large-{self.sim.world.hex(8)}"
        return [self.sim.events.emit(at, self.pod, "TriggeredScaleUp",
                                     f"pod triggered scale-up: [{{{group} 0->1 (max: 3)}}]",
                                     component="cluster-autoscaler")]

    def _not_ready(self, at: float) -> list[DemoRecord]:
        if is_ready(self.pod):
            return []
        return [self.sim.alerts.fire(
            at, "KubePodNotReady", self.labels,
            summary="Pod has been in a non-ready state for more than 15 minutes.",
            description=f"Pod shop/{self.pod_name} has been in a non-ready state for longer "
                        "than 15 minutes.",
            expr='sum by (namespace, pod) (kube_pod_status_phase{phase=~"Pending|Unknown"}) > 0')]

    def _node_joins(self, at: float) -> list[DemoRecord]:
        sim, world = self.sim, self.sim.world
        nodes = world.of_kind("Node")
        zone = nodes[0]["metadata"]["labels"]["topology.kubernetes.io/zone"]
        subnet, host = 16 * len(nodes) + world.rng.randint(1, 15), world.rng.randint(10, 250)
        name = f"ip-10-0-{subnet}-{host}.{zone[:-1]}.compute.internal"
        node = objects.node(world, name, at, ip=f"10.0.{subnet}.{host}",
                            pod_cidr=f"10.244.{len(nodes)}.0/24", zone=zone,
                            instance_type="m5.2xlarge", pool="large", cpu=8, memory_gi=32)
        self.new_node = node
        records = [world.put(node, at)]
        for reason, message, component in (
                ("Starting", "Starting kubelet.", "kubelet"),
                ("NodeHasSufficientMemory", f"Node {name} status is now: "
                 "NodeHasSufficientMemory", "kubelet"),
                ("RegisteredNode", f"Node {name} event: Registered Node {name} in Controller",
                 "node-controller"),
                ("NodeReady", f"Node {name} status is now: NodeReady", "kubelet")):
            records.append(sim.events.emit(at, node, reason, message, component=component,
                                           host=name if component == "kubelet" else ""))
        # The log agent's DaemonSet puts a pod on every new node.
        agent = world.get("DaemonSet", "monitoring", "vector")
        sample = sim.pods_of("monitoring", "vector")[0]["metadata"]["labels"]
        created, pods = sim.create_pods(at, agent, 1, extra_labels={
            key: sample[key] for key in ("controller-revision-hash", "pod-template-generation")})
        self.agent_name = pods[0]["metadata"]["name"]
        world.at(at + 1, self._agent_starts)
        world.at(at + 3, self._scheduled)
        return records + created

    def _agent_starts(self, at: float) -> list[DemoRecord]:
        assert self.new_node is not None
        agent = self.sim.world.get("Pod", "monitoring", self.agent_name)
        records = self.sim.kubelet.schedule(at, agent, self.new_node)
        records += self.sim.kubelet.pull(at, agent, "vector", cached=False)
        return records + self.sim.kubelet.start(at, agent, "vector")

    def _scheduled(self, at: float) -> list[DemoRecord]:
        assert self.new_node is not None
        records = self.sim.kubelet.schedule(at, self.pod, self.new_node)
        records += self.sim.kubelet.pull(at, self.pod, self.container, cached=False)
        self.sim.world.at(at + 4, self._start)
        return records

    def _start(self, at: float) -> list[DemoRecord]:
        records = self.sim.kubelet.start(at, self.pod, self.container, ready=False)
        self.sim.world.at(at + 8, self._ready)
        return records

    def _ready(self, at: float) -> list[DemoRecord]:
        records = self.sim.kubelet.set_ready(at, self.pod, self.container)
        return records + self.sim.alerts.resolve(at, "KubePodNotReady", self.labels)
