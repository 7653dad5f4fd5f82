"""The graph model: the allow-listed labels and relationship types, and stable ids.

Labels and relationship types are never taken from input: a Kubernetes kind is
mapped through :data:`KIND_LABELS`, and anything else becomes a plain ``Resource``.

Every Kubernetes object node carries the label ``Resource`` plus the label of its
kind, and is keyed by ``id`` = ``<Kind>/<namespace>/<name>`` (``<Kind>/<name>`` for
cluster-scoped kinds). The uid is a property. XXX: a name key, not the uid, because
alerts, logs and ``spec.nodeName`` name objects without a uid; keying by name lets
every source link to the same node whatever arrives first. The cost: two
incarnations of one name (a pod deleted and recreated) share a node, whose ``uid``
is the newest one. A reference that carries only a uid (a topology edge) resolves
through the indexed ``uid`` property, or waits on a placeholder node
(:func:`placeholder_id`) that the object's resource record later adopts.
"""

from __future__ import annotations

#: Kubernetes kind -> graph label.
KIND_LABELS: dict[str, str] = {
    "Cluster": "Cluster",
    "Namespace": "Namespace",
    "Node": "Node",
    "Pod": "Pod",
    "Container": "Container",
    "Deployment": "Deployment",
    "ReplicaSet": "ReplicaSet",
    "StatefulSet": "StatefulSet",
    "DaemonSet": "DaemonSet",
    "Job": "Job",
    "CronJob": "CronJob",
    "Service": "Service",
}

#: The label every Kubernetes object node has, whatever its kind.
RESOURCE = "Resource"
EVENT, ALERT, LOG_PATTERN = "Event", "Alert", "LogPattern"
#: A Prometheus scrape target (the agent's ``state.prom.targets``).
PROM_TARGET = "PromTarget"
#: Ledger of log batches already counted (log counts add up, so a replay must not).
LOG_BATCH = "LogBatch"

#: Every label a query may name.
LABELS = frozenset({RESOURCE, EVENT, ALERT, LOG_PATTERN, LOG_BATCH, PROM_TARGET,
                    *KIND_LABELS.values()})

#: Every relationship type a query may name.
RELATIONSHIPS = frozenset({
    "SCHEDULED_ON", "IN_NAMESPACE", "OWNS", "SELECTS", "ABOUT", "EMITTED", "HAS_CONTAINER",
    "SCRAPES",
})

#: Edge types of topology records -> relationship types of the graph.
TOPOLOGY_TYPES: dict[str, str] = {"RUNS_ON": "SCHEDULED_ON", "SELECTS": "SELECTS",
                                  "CONTROLS": "OWNS"}

#: Kinds that live outside any namespace.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole",
    "ClusterRoleBinding", "CustomResourceDefinition", "APIService", "Cluster",
    "PriorityClass", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
})

#: Lower-case spellings agents use (``pod``, ``pods``, ``po``, ``svc``) -> the kind.
_KIND_ALIASES: dict[str, str] = {
    **{kind.lower(): kind for kind in KIND_LABELS},
    **{kind.lower() + "s": kind for kind in KIND_LABELS},
    "po": "Pod", "no": "Node", "ns": "Namespace", "svc": "Service", "deploy": "Deployment",
    "rs": "ReplicaSet", "sts": "StatefulSet", "ds": "DaemonSet", "cj": "CronJob",
    "cronjobs": "CronJob", "namespaces": "Namespace",
}


def canonical_kind(kind: str) -> str:
    """``pod``, ``pods`` or ``Pod`` -> ``Pod``; unknown kinds are kept as written."""
    return _KIND_ALIASES.get(kind.lower(), kind) if kind else kind


def label_for(kind: str) -> str:
    """The graph label of a Kubernetes kind; unknown kinds are plain ``Resource``."""
    return KIND_LABELS.get(kind, RESOURCE)


def object_id(kind: str, namespace: str | None, name: str) -> str:
    """The stable id of a Kubernetes object node."""
    if kind in CLUSTER_SCOPED or not namespace:
        return f"{kind}/{name}"
    return f"{kind}/{namespace}/{name}"


def container_id(namespace: str, pod: str, container: str) -> str:
    """Containers are named within their pod: ``Container/<ns>/<pod>/<container>``."""
    return f"Container/{namespace}/{pod}/{container}"


def placeholder_id(uid: str) -> str:
    """The node that stands for an object known only by its uid, until it is adopted."""
    return f"uid:{uid}"


def target_id(key: str) -> str:
    """A scrape target, by the agent's key ``cluster|job|namespace|service|instance``."""
    return f"{PROM_TARGET}/{key}"


def cluster_id(client_id: str) -> str:
    """The one Cluster node of a client's graph (it holds the last complete snapshot)."""
    return f"Cluster/{client_id}"


def parse_object_id(text: str) -> tuple[str, str, str] | None:
    """``Kind/ns/name`` or ``Kind/name`` -> (kind, namespace, name); None if not an id."""
    parts = text.split("/")
    if len(parts) == 2 and all(parts):
        kind = canonical_kind(parts[0])
        return kind, "", parts[1]
    if len(parts) == 3 and parts[0] and parts[2]:
        kind = canonical_kind(parts[0])
        return kind, ("" if kind in CLUSTER_SCOPED else parts[1]), parts[2]
    return None
