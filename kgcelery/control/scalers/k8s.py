"""The ``kubernetes`` scaler: one worker Deployment per client, or a KEDA ScaledObject.

Objects are rendered from the templates in ``deploy/`` (``$name``-style placeholders)
and applied through the official ``kubernetes`` client (``pip install
'kgcelery[kubernetes]'``). Two modes (``KUBERNETES_MODE``):

- ``deployment``: kgcelery decides; replicas are patched through the Deployment's
  scale subresource to the desired count (0 for a retired client; its Deployment stays).
- ``keda``: KEDA decides from the queue length; kgcelery's desired count is the
  ScaledObject's ``minReplicaCount`` (so drains and pins hold as a floor), and a
  retired client's ScaledObject is deleted and its Deployment scaled to 0.

Every Deployment carries a hash of what was rendered for it (``TEMPLATE_HASH``, the
replicas left out): when a new image, template or setting changes the hash, the
Deployment is re-applied by server-side apply, so an upgrade of kgcelery rolls to the
workers of every client. In keda mode the replicas stay out of the applied body: the
HPA owns them.

The API objects are passed in, so tests drive this with a recorded fake; see
``docs/CONTROL_PLANE.md`` for what was not exercised against a real cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kgcelery.clients import queue_for
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

CLIENT_LABEL = "kgcelery.io/client"
#: The annotation that says what a Deployment was rendered from (see the module doc).
TEMPLATE_HASH = "kgcelery.io/template-hash"
#: kgcelery's field manager for server-side apply.
FIELD_MANAGER = "kgcelery"
APPLY_PATCH = "application/apply-patch+yaml"
SELECTOR = "app.kubernetes.io/name=kgcelery-worker"
KEDA = {"group": "keda.sh", "version": "v1alpha1", "plural": "scaledobjects"}
DEPLOYMENT_TEMPLATE = "worker-deployment.yaml"
SCALED_OBJECT_TEMPLATE = "worker-scaledobject.yaml"
#: The TriggerAuthentication a ScaledObject refers to when the broker wants a password
#: (deploy/keda/redis-trigger-authentication.yaml, applied once by ops).
REDIS_TRIGGER_AUTH = "kgcelery-redis"


def name_for(client_id: str) -> str:
    """The Deployment (and ScaledObject) of a client; a valid DNS-1123 name."""
    return f"kgcelery-worker-{client_id}"


def template_hash(deployment: Mapping[str, Any]) -> str:
    """What a rendered Deployment is, apart from its replicas (which the scaler or the
    HPA changes) and this hash itself."""
    spec = {k: v for k, v in deployment["spec"].items() if k != "replicas"}
    metadata = {k: v for k, v in deployment["metadata"].items() if k != "annotations"}
    text = json.dumps({"metadata": metadata, "spec": spec}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Templates:
    """Renders the per-client objects from ``deploy/`` with the settings filled in."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = Path(settings.kubernetes_template_dir)

    def _render(self, template: str, **values: Any) -> dict[str, Any]:
        import yaml  # from the kubernetes extra, like the client itself

        text = (self.directory / template).read_text()
        return dict(yaml.safe_load(string.Template(text).substitute(values)))

    def deployment(self, client_id: str, replicas: int) -> dict[str, Any]:
        s = self.settings
        body = self._render(
            DEPLOYMENT_TEMPLATE, name=name_for(client_id), namespace=s.kubernetes_namespace,
            client=client_id, queue=queue_for(client_id), replicas=replicas,
            image=s.kubernetes_worker_image, concurrency=s.worker_concurrency,
            grace_seconds=s.task_time_limit_s + 30)
        body["metadata"].setdefault("annotations", {})[TEMPLATE_HASH] = template_hash(body)
        return body

    def scaled_object(self, client_id: str, min_replicas: int) -> dict[str, Any]:
        s = self.settings
        broker = urlparse(s.broker_url)
        tasks_per_replica = math.ceil(s.scale_target_records_per_worker / s.batch_max_records)
        scaled = self._render(
            SCALED_OBJECT_TEMPLATE, name=name_for(client_id), namespace=s.kubernetes_namespace,
            client=client_id, queue=queue_for(client_id), min_replicas=min_replicas,
            max_replicas=max(min_replicas, s.scale_max_workers),
            scale_down_window_seconds=int(s.scale_cooldown_s),
            redis_address=f"{broker.hostname}:{broker.port or 6379}",
            redis_db=(broker.path or "/0").lstrip("/") or "0",
            list_length=max(tasks_per_replica, 1))
        # The password never goes into the object: KEDA reads it from a Secret.
        for trigger in scaled["spec"]["triggers"]:
            if broker.password:
                trigger["authenticationRef"] = {"name": REDIS_TRIGGER_AUTH}
            if broker.scheme == "rediss":
                trigger["metadata"]["enableTLS"] = "true"
        return scaled


class KubernetesScaler:
    """Applies the per-client objects; ``apps`` / ``custom`` are the kubernetes APIs.

    :param apps: a ``kubernetes.client.AppsV1Api`` (or a fake with the same methods).
    :param custom: a ``kubernetes.client.CustomObjectsApi``; needed in keda mode.
    """

    name = "kubernetes"

    def __init__(self, settings: Settings, apps: Any, custom: Any = None) -> None:
        self.settings = settings
        self.namespace = settings.kubernetes_namespace
        self.mode = settings.kubernetes_mode
        self._warned_cap = 0
        self.templates = Templates(settings)
        self.apps = apps
        self.custom = custom
        if self.mode == "keda" and custom is None:
            raise ValueError("keda mode needs the CustomObjectsApi")

    @classmethod
    def from_settings(cls, settings: Settings) -> KubernetesScaler:
        """With the real client: in-cluster credentials, else the local kubeconfig."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls(settings, client.AppsV1Api(), client.CustomObjectsApi())

    def _deployments(self) -> dict[str, Any]:
        found = self.apps.list_namespaced_deployment(self.namespace, label_selector=SELECTOR)
        return {item.metadata.labels[CLIENT_LABEL]: item for item in found.items
                if CLIENT_LABEL in (item.metadata.labels or {})}

    def _scaled_objects(self) -> set[str]:
        found = self.custom.list_namespaced_custom_object(
            namespace=self.namespace, label_selector=SELECTOR, **KEDA)
        return {item["metadata"]["labels"][CLIENT_LABEL] for item in found.get("items", [])}

    def apply(self, desired: Mapping[str, int]) -> dict[str, int]:
        if self.mode == "keda":
            self._state_the_global_cap(desired)
        deployments = self._deployments()
        scaled = self._scaled_objects() if self.mode == "keda" else set()
        actual: dict[str, int] = {}
        for client_id in sorted(set(desired) | set(deployments)):
            wanted = desired.get(client_id, 0)
            existing = deployments.get(client_id)
            if existing is None:
                if wanted == 0:
                    continue
                log.info("creating the Deployment of %s (%d replicas)", client_id, wanted)
                self.apps.create_namespaced_deployment(
                    self.namespace, self.templates.deployment(client_id, wanted))
                current = wanted
            else:
                current = int(existing.spec.replicas or 0)
                ready = existing.status.ready_replicas if existing.status else None
                actual[client_id] = int(ready or 0)
                current = self._update_if_changed(client_id, existing, current, wanted)
            if self.mode == "keda" and wanted > 0:
                self._apply_scaled_object(client_id, wanted, client_id in scaled)
                continue
            if self.mode == "keda" and client_id in scaled:
                log.info("deleting the ScaledObject of retired %s", client_id)
                self.custom.delete_namespaced_custom_object(
                    namespace=self.namespace, name=name_for(client_id), **KEDA)
            if current != wanted:
                log.info("scaling %s from %d to %d replicas", client_id, current, wanted)
                self.apps.patch_namespaced_deployment_scale(
                    name_for(client_id), self.namespace, {"spec": {"replicas": wanted}})
        return actual

    def _state_the_global_cap(self, desired: Mapping[str, int]) -> None:
        """KEDA scales each client alone: KGCELERY_SCALE_GLOBAL_MAX_WORKERS cannot hold
        across them. Say so when the clients' maxima can exceed it (once per new sum)."""
        ceiling = sum(max(wanted, self.settings.scale_max_workers)
                      for wanted in desired.values() if wanted > 0)
        if ceiling > self.settings.scale_global_max_workers and ceiling > self._warned_cap:
            self._warned_cap = ceiling
            log.warning("keda mode: the clients' ScaledObjects allow up to %d workers, above "
                        "KGCELERY_SCALE_GLOBAL_MAX_WORKERS=%d, which KEDA does not enforce; "
                        "cap the namespace with a ResourceQuota", ceiling,
                        self.settings.scale_global_max_workers)

    def _update_if_changed(self, client_id: str, existing: Any, current: int,
                           wanted: int) -> int:
        """Re-apply the Deployment when its rendering changed; returns its replicas."""
        annotations = existing.metadata.annotations or {}
        keda_owns_replicas = self.mode == "keda" and wanted > 0
        body = self.templates.deployment(client_id, wanted if not keda_owns_replicas
                                         else current)
        if annotations.get(TEMPLATE_HASH) == body["metadata"]["annotations"][TEMPLATE_HASH]:
            return current
        if keda_owns_replicas:
            del body["spec"]["replicas"]
        log.info("re-applying the Deployment of %s (new template, image or settings)",
                 client_id)
        self.apps.patch_namespaced_deployment(
            name_for(client_id), self.namespace, body, field_manager=FIELD_MANAGER,
            force=True, _content_type=APPLY_PATCH)
        return current if keda_owns_replicas else wanted

    def _apply_scaled_object(self, client_id: str, wanted: int, exists: bool) -> None:
        body = self.templates.scaled_object(client_id, min_replicas=wanted)
        if exists:
            self.custom.patch_namespaced_custom_object(
                namespace=self.namespace, name=name_for(client_id), body=body, **KEDA)
        else:
            log.info("creating the ScaledObject of %s", client_id)
            self.custom.create_namespaced_custom_object(
                namespace=self.namespace, body=body, **KEDA)

    def close(self) -> None:
        """Nothing to release: the cluster keeps the objects."""
