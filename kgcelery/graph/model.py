"""The graph model: the allow-listed labels and relationship types, and stable ids.

Labels and relationship types are never taken from input: a Kubernetes kind is
mapped through :data:`KIND_LABELS`, and anything else becomes a plain ``Resource``.

Every Kubernetes object node carries the label ``Resource`` plus the label of its
kind, and is keyed by ``id`` = ``<Kind>/<namespace>/<name>`` (``<Kind>/<name>`` for
cluster-scoped kinds). The uid is a property. XXX: a name key, not the uid, because
alerts, logs and ``spec.nodeName`` name objects without a uid; keying by name lets
every source link to the same node whatever arrives first. The cost: two
incarnations of one name (a pod deleted and recreated) share a node, whose ``uid``
is the newest one.
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

#: Every label a query may name.
LABELS = frozenset({RESOURCE, EVENT, ALERT, LOG_PATTERN, *KIND_LABELS.values()})

#: Every relationship type a query may name.
RELATIONSHIPS = frozenset({
    "SCHEDULED_ON", "IN_NAMESPACE", "OWNS", "SELECTS", "ABOUT", "EMITTED", "HAS_CONTAINER",
})

#: Kinds that live outside any namespace.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole",
    "ClusterRoleBinding", "CustomResourceDefinition", "APIService", "Cluster",
    "PriorityClass", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
})


def label_for(kind: str) -> str:
    """The graph label of a Kubernetes kind; unknown kinds are plain ``Resource``."""
    return KIND_LABELS.get(kind, RESOURCE)


def object_id(kind: str, namespace: str | None, name: str) -> str:
    """The stable id of a Kubernetes object node."""
    if kind in CLUSTER_SCOPED or not namespace:
        return f"{kind}/{name}"
    return f"{kind}/{namespace}/{name}"


def namespace_id(namespace: str) -> str:
    return object_id("Namespace", None, namespace)
