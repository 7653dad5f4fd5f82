"""Reading the deployment files as Docker Compose and Kubernetes would read them.

No Docker engine or cluster runs here, so the tests read the files themselves:
Compose's variable interpolation (``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``,
``$$``) with the values of ``.env.example``, the merge of an override file, and the
Kubernetes manifests as lists of objects.
"""

from __future__ import annotations

import re
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


def manifests() -> list[dict[str, Any]]:
    objects = []
    for path in manifest_files():
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


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
