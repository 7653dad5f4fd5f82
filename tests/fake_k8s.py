"""A recorded fake of the two kubernetes APIs the scaler uses (no cluster needed).

It keeps the objects it was given and records every call as (method, kwargs), with
the same method names and parameters as ``kubernetes.client.AppsV1Api`` and
``CustomObjectsApi``; ``tests/test_control_scalers.py`` checks that the signatures match
and replays the calls against the real client's request validation.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def record(self, **kwargs: Any) -> None:
        method = inspect.stack()[1].function
        self.calls.append((method, kwargs))


class FakeAppsV1Api(Recorder):
    """Deployments by name; ``ready`` replicas follow the spec at once."""

    def __init__(self) -> None:
        super().__init__()
        self.deployments: dict[str, dict[str, Any]] = {}

    def list_namespaced_deployment(self, namespace: str, label_selector: str | None = None,
                                   **_: Any) -> Any:
        self.record(namespace=namespace, label_selector=label_selector)
        # Attribute access like the client's models; labels stay a dict, as there.
        items = [SimpleNamespace(
            metadata=SimpleNamespace(name=body["metadata"]["name"],
                                     labels=dict(body["metadata"]["labels"]),
                                     annotations=dict(body["metadata"].get("annotations",
                                                                           {}))),
            spec=SimpleNamespace(replicas=body["spec"]["replicas"]),
            status=SimpleNamespace(ready_replicas=body["spec"]["replicas"]))
            for body in self.deployments.values()]
        return SimpleNamespace(items=items)

    def create_namespaced_deployment(self, namespace: str, body: Any, **_: Any) -> Any:
        self.record(namespace=namespace, body=body)
        self.deployments[body["metadata"]["name"]] = body
        return body

    def patch_namespaced_deployment(self, name: str, namespace: str, body: Any,
                                    field_manager: str | None = None,
                                    force: bool | None = None,
                                    _content_type: str | None = None, **_: Any) -> Any:
        """Server-side apply (``_content_type``): the fields given replace the stored ones."""
        self.record(name=name, namespace=namespace, body=body, field_manager=field_manager,
                    force=force, _content_type=_content_type)
        stored = self.deployments[name]
        replicas = stored["spec"]["replicas"]
        self.deployments[name] = {**body, "spec": {"replicas": replicas, **body["spec"]}}
        return body

    def patch_namespaced_deployment_scale(self, name: str, namespace: str, body: Any,
                                          **_: Any) -> Any:
        self.record(name=name, namespace=namespace, body=body)
        self.deployments[name]["spec"]["replicas"] = body["spec"]["replicas"]
        return body


class FakeCustomObjectsApi(Recorder):
    """Custom objects (KEDA ScaledObjects) by name."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, Any]] = {}

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                      plural: str, label_selector: str | None = None,
                                      **_: Any) -> Any:
        self.record(group=group, version=version, namespace=namespace, plural=plural,
                    label_selector=label_selector)
        return {"items": list(self.objects.values())}

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                        plural: str, body: Any, **_: Any) -> Any:
        self.record(group=group, version=version, namespace=namespace, plural=plural,
                    body=body)
        self.objects[body["metadata"]["name"]] = body
        return body

    def patch_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                       plural: str, name: str, body: Any, **_: Any) -> Any:
        self.record(group=group, version=version, namespace=namespace, plural=plural,
                    name=name, body=body)
        self.objects[name] = body
        return body

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                        plural: str, name: str, **_: Any) -> Any:
        self.record(group=group, version=version, namespace=namespace, plural=plural,
                    name=name)
        return self.objects.pop(name)
