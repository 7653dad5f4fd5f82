"""The workloads of a simulated cluster, and how it looks when the simulation starts.

Every cluster runs the same kind of shop: a storefront, a cart service, a catalog,
redis and a payments service on postgres, DNS, a log agent on every node, and a
CronJob that reconciles the ledger. Names, ids, IPs and times differ per cluster.
The scenarios add two Deployments later (``fraud-scorer``, ``recommender``).
"""

from __future__ import annotations

from kgcelery.demo import objects
from kgcelery.demo.controllers import status_of
from kgcelery.demo.kubelet import Kubelet, bind, run
from kgcelery.demo.objects import AppSpec, Obj
from kgcelery.demo.world import World

NAMESPACES = ("default", "kube-system", "monitoring", "shop", "payments")
HOUR, DAY = 3600.0, 86400.0
REGIONS = ("eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2")


def org_of(client_id: str) -> str:
    """The image registry organisation of a client: ``acme-prod`` -> ``acme``."""
    return client_id.split("-", 1)[0]


def apps(org: str) -> list[AppSpec]:
    """The workloads that run from the start."""
    registry = f"ghcr.io/{org}"
    return [
        AppSpec("kube-system", "coredns", "Deployment", 2,
                "registry.k8s.io/coredns/coredns:v1.11.1", 53, "coredns", memory="70Mi",
                memory_limit="170Mi", probe_path="/ready", service="kube-dns",
                labels={"k8s-app": "kube-dns"}),
        AppSpec("monitoring", "vector", "DaemonSet", 0, "timberio/vector:0.39.0-distroless-libc",
                8686, "vector", probe_path=None),
        AppSpec("monitoring", "kube-state-metrics", "Deployment", 1,
                "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.12.0", 8080, "ksm",
                service="kube-state-metrics"),
        AppSpec("shop", "frontend", "Deployment", 2, f"{registry}/storefront:2.4.1", 3000,
                "storefront", container="web", service="frontend"),
        AppSpec("shop", "cart", "Deployment", 2, f"{registry}/cart-service:1.12.0", 8080, "cart",
                memory="384Mi", memory_limit="512Mi", probe_path="/actuator/health/readiness",
                service="cart"),
        AppSpec("shop", "catalog", "Deployment", 2, f"{registry}/catalog:3.1.4", 8080, "catalog",
                service="catalog"),
        AppSpec("shop", "redis", "StatefulSet", 2, "redis:7.2.4", 6379, "redis",
                probe_path=None, service="redis"),
        AppSpec("payments", "payments-api", "Deployment", 2, f"{registry}/payments-api:0.9.3",
                8443, "payments", container="api", service="payments-api"),
        AppSpec("payments", "postgres", "StatefulSet", 1, "postgres:16.2", 5432, "postgres",
                memory="1Gi", memory_limit="2Gi", probe_path=None, service="postgres"),
    ]


def reconcile_job(org: str) -> AppSpec:
    return AppSpec("payments", "ledger-reconcile", "CronJob", 1,
                   f"ghcr.io/{org}/ledger-tools:0.9.3", 9000, "reconcile", container="reconcile",
                   probe_path=None)


def node_names(world: World, count: int, region: str) -> list[tuple[str, str, str]]:
    """(name, InternalIP, zone) of ``count`` nodes in distinct subnets."""
    nodes = []
    for index in range(count):
        subnet, host = 16 * index + world.rng.randint(1, 15), world.rng.randint(10, 250)
        zone = f"{region}{'abc'[index % 3]}"
        nodes.append((f"ip-10-0-{subnet}-{host}.{region}.compute.internal",
                      f"10.0.{subnet}.{host}", zone))
    return nodes


def build(world: World, kubelet: Kubelet, start: float) -> None:
    """Fill ``world`` with a cluster that has been running for weeks at ``start``."""
    rng = world.rng
    born = start - rng.uniform(20, 90) * DAY
    for name in NAMESPACES:
        world.put(objects.namespace(world, name, born), born)
    region = rng.choice(REGIONS)
    for index, (name, ip, zone) in enumerate(node_names(world, rng.choice((2, 3, 3)), region)):
        created = born + rng.uniform(0, 10) * DAY
        world.put(objects.node(world, name, created, ip=ip, pod_cidr=f"10.244.{index}.0/24",
                               zone=zone, instance_type="m5.xlarge", pool="general", cpu=4,
                               memory_gi=16), created)
    used_ips = {"10.96.0.1", "10.96.0.10"}
    for spec in apps(org_of(world.client_id)):
        created = start - rng.uniform(6 * HOUR, 15 * DAY)
        controller = objects.workload(world, spec, created, spec.image)
        world.put(controller, created)
        for pod in _pods(world, kubelet, spec, controller, created, start):
            world.put(pod, created)
        if spec.service:
            dns = spec.service == "kube-dns"
            cluster_ip = "10.96.0.10" if dns else _cluster_ip(world, used_ips)
            world.put(objects.service(world, spec.service, spec.namespace, created,
                                      selector=spec.selector, port=spec.port,
                                      cluster_ip=cluster_ip), created)
    for obj in list(world.objects.values()):
        status = status_of(world, obj, start)
        if status is not None:
            obj["status"] = status
            world.put(obj, start)


def _cluster_ip(world: World, used: set[str]) -> str:
    while True:
        ip = f"10.96.{world.rng.randint(1, 254)}.{world.rng.randint(2, 254)}"
        if ip not in used:
            used.add(ip)
            return ip


def _pods(world: World, kubelet: Kubelet, spec: AppSpec, controller: Obj, created: float,
          start: float) -> list[Obj]:
    """The running pods of a controller, spread over the nodes."""
    nodes = world.of_kind("Node")
    offset = world.rng.randrange(len(nodes))
    revision_hash = world.suffix(10)
    pods: list[Obj] = []
    if spec.kind == "Deployment":
        owner = objects.replica_set(world, controller, revision_hash, 1, spec.replicas, created)
        world.put(owner, created)
        names = [f"{owner['metadata']['name']}-{world.suffix()}" for _ in range(spec.replicas)]
        extra: dict[str, str] = {}
    elif spec.kind == "StatefulSet":
        owner = controller
        names = [f"{spec.name}-{index}" for index in range(spec.replicas)]
        extra = {"controller-revision-hash": f"{spec.name}-{revision_hash}"}
    else:
        owner = controller
        names = [f"{spec.name}-{world.suffix()}" for _ in nodes]
        extra = {"controller-revision-hash": revision_hash, "pod-template-generation": "1"}
    for index, name in enumerate(names):
        born = world.rng.uniform(created, start - HOUR)
        labels = dict(extra)
        if spec.kind == "StatefulSet":
            labels["statefulset.kubernetes.io/pod-name"] = name
        pod = objects.pod(world, owner, name, born, extra_labels=labels)
        node = nodes[index if spec.kind == "DaemonSet" else (offset + index) % len(nodes)]
        bind(pod, node, kubelet.new_pod_ip(node), born)
        run(pod, spec.container_name, born + world.rng.uniform(2, 9), world.hex(64))
        pods.append(pod)
    return pods

