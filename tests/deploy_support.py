"""Reading the deployment files as Docker Compose and Kubernetes would read them.

No Docker engine or cluster runs here, so the tests read the files themselves:
Compose's variable interpolation (``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``,
``$$``) with the values of ``.env.example``, the merge of an override file, and the
Kubernetes manifests as lists of objects.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENTERPRISE = ROOT / "docker-compose.enterprise.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY = ROOT / "deploy"
TEMPLATES = ("worker-deployment.yaml", "worker-scaledobject.yaml")
IMAGE = "kgcelery:latest"

_VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|(\w+))")


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty, as Compose refuses it."""


def referenced_variables(text: str) -> set[str]:
    return {m.group(2) or m.group(5) for m in _VARIABLE.finditer(text) if not m.group(1)}


def documented_variables() -> dict[str, str]:
    """Variables in ``.env.example``, set or commented out (``# NAME=value``)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def example_environment() -> dict[str, str]:
    """``.env.example`` with a made-up value wherever it leaves one to the user."""
    values = {name: value or f"test-{name.lower().replace('_', '-')}"
              for name, value in documented_variables().items()}
    values["FLOWER_BASIC_AUTH"] = "admin:test-flower"
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        escaped, name, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = name or bare
        current = env.get(name)
        unset = current is None or (current == "" and operator and operator.startswith(":"))
        if operator and operator.endswith("?") and unset:
            raise InterpolationError(f"{name}: {argument}")
        if operator and operator.endswith("-") and unset:
            return str(interpolate(argument, env))
        return current or ""

    return _VARIABLE.sub(replace, value)


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file, for the mappings these files use."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return override


def load_compose(*files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose model after interpolation and merging, as ``docker compose config``."""
    env = example_environment() if env is None else env
    model: dict[str, Any] = {}
    for path in files or (COMPOSE,):
        model = merge(model, interpolate(yaml.safe_load(path.read_text()), env))
    return model


def kgcelery_services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in model["services"].items()
            if service.get("image") == IMAGE}


def settings_env(environment: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in environment.items()
            if key.startswith("KGCELERY_")}


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest in deploy/ except the per-client templates."""
    return sorted(p for p in DEPLOY.glob("*.yaml")
                  if p.name not in TEMPLATES and p.name != "kustomization.yaml")


def kustomization(directory: Path = DEPLOY) -> dict[str, Any]:
    return dict(yaml.safe_load((directory / "kustomization.yaml").read_text()))


def _field(obj: Any, path: str) -> tuple[Any, str]:
    """The parent of a kustomize fieldPath (``a.b.[name=x].c``) and the last key."""
    *parents, last = path.split(".")
    for part in parents:
        match = re.fullmatch(r"\[(\w+)=(.*)\]", part)
        obj = (next(item for item in obj if item.get(match.group(1)) == match.group(2))
               if match else obj[part])
    return obj, last


def _images(obj: Any, images: list[dict[str, str]]) -> None:
    """kustomize's images transformer, on the containers of a workload."""
    if obj.get("kind") not in ("Deployment", "Job"):
        return
    for container in obj["spec"]["template"]["spec"]["containers"]:
        name, _, _tag = container["image"].partition(":")
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def _selected(obj: dict[str, Any], select: dict[str, Any]) -> bool:
    metadata = obj["metadata"]
    return (obj["kind"] == select["kind"] and metadata["name"] == select["name"]
            and select.get("namespace", metadata.get("namespace")) == metadata.get("namespace"))


def _json_patch(obj: dict[str, Any], operation: dict[str, Any]) -> None:
    """One JSON 6902 operation (add, replace, remove) on a path of object keys."""
    *parents, last = operation["path"].strip("/").split("/")
    for key in parents:
        obj = obj[key]
    if operation["op"] == "remove":
        del obj[last]
    elif operation["op"] == "replace":
        assert last in obj, operation
        obj[last] = operation["value"]
    else:
        assert operation["op"] == "add", operation
        obj[last] = operation["value"]


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _patch(objects: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """kustomize's ``patches:`` entry with an inline patch: JSON 6902 operations on the
    targets, or a strategic merge patch (``$patch: delete`` drops the object)."""
    patch = yaml.safe_load(entry["patch"])
    if isinstance(patch, list):
        targets = [o for o in objects if _selected(o, entry["target"])]
        assert targets, entry
        for obj in targets:
            for operation in patch:
                _json_patch(obj, operation)
        return objects
    select = {"kind": patch["kind"], **patch["metadata"]}
    assert [o for o in objects if _selected(o, select)], entry
    if patch.get("$patch") == "delete":
        return [o for o in objects if not _selected(o, select)]
    for obj in objects:
        if _selected(obj, select):
            _merge(obj, patch)
    return objects


def _resources(directory: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = directory / resource
        if path.is_dir():
            objects.extend(render_kustomization(path))
        else:
            objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def render_kustomization(directory: Path = DEPLOY) -> list[dict[str, Any]]:
    """What ``kustomize build`` makes of a kustomization, for what kgcelery's use:
    resources (files and directories), components, inline patches, images and
    replacements (in kustomize's order: images before replacements). Checked against
    the real kustomize by tests/test_deploy_k8s.py wherever one is installed."""
    spec = kustomization(directory)
    objects = copy.deepcopy(_resources(directory, spec))
    for component in spec.get("components", []):
        # A Component adds its resources and patches what was accumulated.
        inner = kustomization(directory / component)
        objects += copy.deepcopy(_resources(directory / component, inner))
        for entry in inner.get("patches", []):
            objects = _patch(objects, entry)
    for entry in spec.get("patches", []):
        objects = _patch(objects, entry)
    for obj in objects:
        _images(obj, spec.get("images", []))
    for replacement in spec.get("replacements", []):
        source = replacement["source"]
        [origin] = [o for o in objects if o["kind"] == source["kind"]
                    and o["metadata"]["name"] == source["name"]]
        parent, key = _field(origin, source["fieldPath"])
        value = parent[key]
        for target in replacement["targets"]:
            select = target["select"]
            for obj in objects:
                if obj["kind"] == select["kind"] and obj["metadata"]["name"] == select["name"]:
                    for path in target["fieldPaths"]:
                        parent, key = _field(obj, path)
                        parent[key] = value
    return objects


def kustomize_command() -> list[str] | None:
    """A real kustomize: ``kustomize build`` or ``kubectl kustomize``, if installed."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    command = kustomize_command()
    assert command is not None
    done = subprocess.run([*command, str(directory)], capture_output=True, text=True,
                          timeout=120, check=True)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def manifests() -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k deploy/`` applies."""
    return render_kustomization()


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{workload name: pod spec}`` of the Deployments and Jobs."""
    return {obj["metadata"]["name"]: obj["spec"]["template"]["spec"] for obj in objects
            if obj["kind"] in ("Deployment", "Job")}


def config_env(objects: list[dict[str, Any]], namespace: str) -> dict[str, str]:
    """The ``kgcelery-config`` ConfigMap of a namespace, plus the Secret deploy/README.md
    tells the operator to create (with made-up values)."""
    config = next(obj["data"] for obj in objects if obj["kind"] == "ConfigMap"
                  and obj["metadata"] == {**obj["metadata"], "name": "kgcelery-config",
                                          "namespace": namespace})
    return {**config, "KGCELERY_BROKER_URL": "redis://:test@redis.redis.svc:6379/0",
            "KGCELERY_GRAPH_PASSWORD": "test-neo4j"}
