"""The Helm chart deploy/helm/kgcelery, linted and rendered by a real helm.

helm comes from ``make tools`` (built from its Go module into ~/.cache/kgcelery/tools,
once per version), ``KGCELERY_HELM`` or the PATH; without one these tests skip and say
so. With its defaults the chart renders the objects of the kustomize base, apart from
Helm's own labels and hooks; with production values (external Kafka, Redis and Neo4j,
their Secrets, KEDA, a PodMonitor) every object is valid Kubernetes, passes Pod
Security "restricted", and the settings reach the per-client workers it would create.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kgcelery.control.scalers.k8s import Templates
from kgcelery.settings import Settings
from tests.deploy_support import DEPLOY, ROOT, config_env, pod_specs, render_kustomization
from tests.test_deploy_k8s import (
    CLIENT_IDS,
    SECRETS_OF,
    fleet_overlay,
    pod_security_violations,
    validate_kubernetes,
    validate_scaled_object,
)

CHART = DEPLOY / "helm" / "kgcelery"
TOOLS = Path.home() / ".cache" / "kgcelery" / "tools"
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance")
HELM_ANNOTATIONS = ("helm.sh/hook", "helm.sh/hook-delete-policy")

PRODUCTION = {
    "image": {"repository": "registry.example/kgcelery", "tag": "1.4.2"},
    "kafka": {"bootstrapServers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
              "securityProtocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-512",
              "saslUsername": "kgcelery", "saslPassword": "kafka-secret"},
    "topics": {"partitions": 16, "replicationFactor": 3},
    "redis": {"url": "redis://:redis-secret@redis.redis.svc:6379/0"},
    "neo4j": {"uri": "neo4j+s://graph.example:7687", "password": "neo4j-secret",
              "tenancy": "database"},
    "secrets": {"create": True},
    "flower": {"basicAuth": "admin:flower-secret"},
    "scaling": {"mode": "keda", "maxWorkers": 6, "globalMaxWorkers": 40,
                "cooldownSeconds": 120},
    "keda": {"triggerAuthentication": True, "redisPassword": "redis-secret"},
    "metrics": {"podMonitor": True},
}
SECRET_VALUES = ("kafka-secret", "redis-secret", "neo4j-secret", "flower-secret")


def helm_binary() -> str | None:
    if os.environ.get("KGCELERY_HELM"):
        return os.environ["KGCELERY_HELM"]
    built = sorted(TOOLS.glob("helm-*/helm"))
    if built:
        return str(built[-1])
    return shutil.which("helm")


@pytest.fixture(scope="module")
def helm() -> str:
    found = helm_binary()
    if not found or not Path(found).exists():
        pytest.skip("no helm: `make tools` builds it (Go needed) into ~/.cache/kgcelery/"
                    "tools; or set KGCELERY_HELM. The chart was NOT checked.")
    return found


def render(helm: str, tmp_path: Path, values: dict[str, Any] | None = None
           ) -> list[dict[str, Any]]:
    command = [helm, "template", "kg", str(CHART)]
    if values:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        command += ["-f", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def without_helm(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(obj["metadata"])
    labels = {k: v for k, v in metadata.get("labels", {}).items() if k not in HELM_LABELS}
    annotations = {k: v for k, v in metadata.get("annotations", {}).items()
                   if k not in HELM_ANNOTATIONS}
    metadata["labels"] = labels
    metadata.pop("annotations", None)
    if annotations:
        metadata["annotations"] = annotations
    return {**obj, "metadata": metadata}


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def test_helm_lint(helm: str) -> None:
    done = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    refused = subprocess.run([helm, "template", "kg", str(CHART), "--set",
                              "secrets.create=true"], capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode != 0 and "is required with secrets.create" in refused.stderr, \
        "secrets.create without their values must be refused"


def test_defaults_render_the_kustomize_base(helm: str, tmp_path: Path) -> None:
    chart = sorted((without_helm(o) for o in render(helm, tmp_path)), key=_key)
    base = sorted(render_kustomization(), key=_key)
    assert [_key(o) for o in chart] == [_key(o) for o in base]
    for mine, theirs in zip(chart, base, strict=True):
        assert mine == theirs, _key(mine)


def test_a_fleet_renders_the_kustomize_fleet_component(helm: str, tmp_path: Path) -> None:
    chart = sorted((without_helm(o) for o in render(helm, tmp_path,
                                                     {"workers": {"mode": "fleet"}})), key=_key)
    base = sorted(render_kustomization(fleet_overlay(tmp_path)), key=_key)
    assert [_key(o) for o in chart] == [_key(o) for o in base]
    for mine, theirs in zip(chart, base, strict=True):
        assert mine == theirs, _key(mine)


def test_a_production_fleet_is_sized_by_its_values(helm: str, tmp_path: Path) -> None:
    values = {**PRODUCTION, "scaling": {"globalMaxWorkers": 40},
              "workers": {"mode": "fleet", "fleet": {"replicas": 6, "concurrency": 4}}}
    objects = render(helm, tmp_path, values)
    assert not {o["kind"] for o in objects} & {"Role", "RoleBinding", "ServiceAccount"}
    for obj in objects:
        if obj["kind"] not in ("PodMonitor", "TriggerAuthentication"):
            validate_kubernetes(obj)
    [fleet] = [o for o in objects if o["kind"] == "Deployment"
               and o["metadata"]["name"] == "kgcelery-fleet"]
    assert fleet["spec"]["replicas"] == 6
    args = fleet["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--concurrency") + 1] == "4"
    env = config_env(objects, "kgcelery")
    assert env == config_env(objects, "kgcelery-workers")
    assert (env["KGCELERY_SCALER_BACKEND"], env["KGCELERY_SCALE_MAX_WORKERS"],
            env["KGCELERY_SCALE_GLOBAL_MAX_WORKERS"]) == ("celery", "6", "40")
    for name, pod in pod_specs(objects).items():
        assert pod_security_violations(pod) == [], name
    refused = subprocess.run([helm, "template", "kg", str(CHART), "--set",
                              "workers.mode=both"], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "workers.mode must be perClient or fleet" in refused.stderr


def test_production_values_render_valid_least_privilege_objects(helm: str,
                                                                 tmp_path: Path) -> None:
    objects = render(helm, tmp_path, PRODUCTION)
    kinds = {o["kind"] for o in objects}
    assert {"Secret", "PodMonitor", "TriggerAuthentication", "Job"} <= kinds
    for obj in objects:
        if obj["kind"] == "TriggerAuthentication":
            validate_scaled_object_like(obj)
        elif obj["kind"] != "PodMonitor":
            validate_kubernetes(obj)
    # No secret outside a Secret.
    for obj in objects:
        if obj["kind"] != "Secret":
            text = yaml.safe_dump(obj)
            assert not [s for s in SECRET_VALUES if s in text], _key(obj)
    secrets = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["stringData"]
               for o in objects if o["kind"] == "Secret"}
    assert secrets[("kgcelery-workers", "kgcelery-graph")] == {
        "KGCELERY_GRAPH_PASSWORD": "neo4j-secret"}
    assert ("kgcelery", "kgcelery-graph") not in secrets, "the graph password stays with workers"
    for name, pod in pod_specs(objects).items():
        assert pod_security_violations(pod) == [], name
        for container in pod["containers"]:
            assert container["image"] == "registry.example/kgcelery:1.4.2"
            refs = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
            refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])}
            assert refs == SECRETS_OF[name], name
    # The settings, as the control worker reads them, render valid per-client workers.
    env = config_env(objects, "kgcelery")
    assert env == config_env(objects, "kgcelery-workers")
    fields = {k.removeprefix("KGCELERY_").lower(): v for k, v in env.items()}
    unknown = [f for f in fields if f not in Settings.model_fields]
    assert not unknown
    s = Settings.model_validate({**fields, "kubernetes_template_dir": DEPLOY,
                                 "kafka_sasl_username": "kgcelery",
                                 "kafka_sasl_password": "kafka-secret"})
    assert s.kubernetes_worker_image == "registry.example/kgcelery:1.4.2"
    assert (s.kubernetes_mode, s.scale_max_workers, s.scale_global_max_workers) == (
        "keda", 6, 40)
    assert s.kafka_security_protocol == "SASL_SSL" and s.topic_partitions == 16
    for client in CLIENT_IDS:
        deployment = Templates(s).deployment(client, 1)
        validate_kubernetes(deployment)
        assert deployment["metadata"]["labels"]["kgcelery.io/client"] == client
        [pod] = pod_specs([deployment]).values()
        assert pod_security_violations(pod) == []
        scaled = Templates(s).scaled_object(client, 1)
        validate_scaled_object(scaled)
        assert scaled["spec"]["maxReplicaCount"] == 6


def validate_scaled_object_like(obj: dict[str, Any]) -> None:
    from cloudcoil.models.keda.v1alpha1 import TriggerAuthentication

    model = TriggerAuthentication.model_validate(obj)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj


def test_topics_left_to_you_and_no_policies(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, {"topics": {"mode": "external"},
                                      "networkPolicies": False,
                                      "namespaces": {"create": False}})
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Job", "NetworkPolicy", "Namespace"}


def test_the_chart_is_documented() -> None:
    text = (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    assert "deploy/helm/kgcelery" in text
