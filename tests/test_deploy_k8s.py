"""deploy/, checked without a cluster (none runs here).

Every manifest and every per-client object that the kubernetes scaler renders is
validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown
fields are errors) and the ScaledObject against KEDA's CRD models (cloudcoil's, generated
from the CRD; a round trip proves no field was unknown). The RBAC Role must grant what
the scaler calls, and nothing else.
"""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgcelery.clients import CLIENT_ID_PATTERN
from kgcelery.control.scalers.k8s import REDIS_TRIGGER_AUTH, KubernetesScaler, Templates
from kgcelery.settings import Settings
from tests.deploy_support import (
    DEPLOY,
    config_env,
    manifest_files,
    manifests,
    pod_specs,
)
from tests.fake_k8s import FakeAppsV1Api, FakeCustomObjectsApi

KUBERNETES_VERSIONS = ("1.27", "1.37")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

#: The RBAC permission each method of the official client that the scaler calls needs.
PERMISSION = {
    "list_namespaced_deployment": ("apps", "deployments", "list"),
    "create_namespaced_deployment": ("apps", "deployments", "create"),
    "patch_namespaced_deployment_scale": ("apps", "deployments/scale", "patch"),
    "list_namespaced_custom_object": ("keda.sh", "scaledobjects", "list"),
    "create_namespaced_custom_object": ("keda.sh", "scaledobjects", "create"),
    "patch_namespaced_custom_object": ("keda.sh", "scaledobjects", "patch"),
    "delete_namespaced_custom_object": ("keda.sh", "scaledobjects", "delete"),
}


def validate_kubernetes(obj: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.path))
            raise AssertionError(f"{obj['kind']} {obj['metadata']['name']} on {version}: "
                                 f"{where}: {exc.message}") from exc


def validate_scaled_object(obj: dict[str, Any]) -> None:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    model = ScaledObject.model_validate(obj)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj, \
        "the ScaledObject has fields KEDA's CRD does not know"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return manifests()


@pytest.fixture(scope="module")
def cluster_settings(objects: list[dict[str, Any]]) -> Settings:
    """The settings the control worker gets from deploy/config.yaml (templates local)."""
    env = config_env(objects, "kgcelery")
    fields = {k.removeprefix("KGCELERY_").lower(): v for k, v in env.items()}
    return Settings.model_validate({**fields, "kubernetes_template_dir": DEPLOY})


def test_every_manifest_is_valid_kubernetes(objects: list[dict[str, Any]]) -> None:
    kinds = sorted({obj["kind"] for obj in objects})
    assert kinds == ["ConfigMap", "Deployment", "Job", "Namespace", "Role", "RoleBinding",
                     "Service", "ServiceAccount"]
    for obj in objects:
        validate_kubernetes(obj)
    # Strict validation bites: a misspelt field is refused.
    broken = json.loads(json.dumps(next(o for o in objects if o["kind"] == "Deployment")))
    broken["spec"]["replica"] = 2
    with pytest.raises(AssertionError, match="replica"):
        validate_kubernetes(broken)


def test_the_kustomization_applies_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifest_files())


@given(client=st.from_regex(CLIENT_ID_PATTERN, fullmatch=True), replicas=st.integers(0, 20))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rendered_objects_of_any_client_are_valid(client: str, replicas: int) -> None:
    s = Settings(kubernetes_template_dir=DEPLOY, kubernetes_namespace="kgcelery-workers",
                 broker_url="redis://:secret@redis.redis.svc:6379/0")
    templates = Templates(s)
    deployment = templates.deployment(client, replicas)
    validate_kubernetes(deployment)
    scaled = templates.scaled_object(client, min_replicas=replicas)
    validate_scaled_object(scaled)
    for obj in (deployment, scaled):
        assert len(obj["metadata"]["name"]) <= 253 and DNS_LABEL.fullmatch(
            obj["metadata"]["name"])
        assert all(len(v) <= 63 for v in obj["metadata"]["labels"].values())


def test_keda_reads_the_broker_password_from_a_secret_never_from_the_object() -> None:
    from cloudcoil.models.keda.v1alpha1 import TriggerAuthentication

    [auth] = yaml.safe_load_all((DEPLOY / "keda" / "redis-trigger-authentication.yaml")
                                .read_text())
    model = TriggerAuthentication.model_validate(auth)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == auth
    assert auth["metadata"] == {**auth["metadata"], "name": REDIS_TRIGGER_AUTH,
                                "namespace": "kgcelery-workers"}
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "kgcelery-redis", "key": "password"}]

    def trigger(url: str) -> dict[str, Any]:
        scaled = Templates(Settings(kubernetes_template_dir=DEPLOY, broker_url=url)
                           ).scaled_object("af-9", min_replicas=1)
        validate_scaled_object(scaled)
        assert "hunter2" not in yaml.safe_dump(scaled)
        [only] = scaled["spec"]["triggers"]
        return dict(only)

    plain = trigger("redis://redis.redis.svc:6379/2")
    assert "authenticationRef" not in plain and "enableTLS" not in plain["metadata"]
    assert plain["metadata"]["databaseIndex"] == "2"
    secured = trigger("rediss://:hunter2@redis.redis.svc:6380/0?ssl_cert_reqs=required"
                      "&ssl_ca_certs=/etc/kgcelery/ca.pem")
    assert secured["authenticationRef"] == {"name": REDIS_TRIGGER_AUTH}
    assert secured["metadata"]["enableTLS"] == "true"
    assert secured["metadata"]["address"] == "redis.redis.svc:6380"


def test_deploy_render_prints_what_the_scaler_applies(cluster_settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from kgcelery.cli import main

    monkeypatch.setenv("KGCELERY_KUBERNETES_TEMPLATE_DIR", str(DEPLOY))
    result = CliRunner().invoke(main, ["deploy", "render", "af-9", "--mode", "keda",
                                       "--replicas", "2"])
    assert result.exit_code == 0, result.output
    deployment, scaled = yaml.safe_load_all(result.output)
    templates = Templates(Settings(kubernetes_template_dir=DEPLOY))
    assert deployment == templates.deployment("af-9", 2)
    assert scaled == templates.scaled_object("af-9", min_replicas=2)
    validate_kubernetes(deployment)
    validate_scaled_object(scaled)
    bad = CliRunner().invoke(main, ["deploy", "render", "AF-9"])
    assert bad.exit_code == 3 and "invalid client id" in bad.output


def _granted(objects: list[dict[str, Any]]) -> tuple[str, set[tuple[str, str, str]]]:
    [role] = [o for o in objects if o["kind"] == "Role"]
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    return role["metadata"]["namespace"], granted


def test_rbac_grants_exactly_what_the_scaler_calls(objects: list[dict[str, Any]],
                                                   cluster_settings: Settings) -> None:
    needed = set()
    for mode in ("deployment", "keda"):
        s = cluster_settings.model_copy(update={"kubernetes_mode": mode})
        apps, custom = FakeAppsV1Api(), FakeCustomObjectsApi()
        scaler = KubernetesScaler(s, apps, custom)
        for desired in ({"af-9": 1, "bq-2": 2}, {"af-9": 3, "bq-2": 2}, {"af-9": 0}, {}):
            scaler.apply(desired)
        needed |= {PERMISSION[method] for method, _ in apps.calls + custom.calls}
    namespace, granted = _granted(objects)
    assert granted == needed
    # Only in the workers' namespace, where the scaler's Deployments are.
    assert namespace == cluster_settings.kubernetes_namespace == "kgcelery-workers"
    assert all(o["metadata"]["namespace"] != namespace for o in objects
               if o["kind"] in ("Deployment", "Job"))
    [binding] = [o for o in objects if o["kind"] == "RoleBinding"]
    pods = pod_specs(objects)
    subject = binding["subjects"][0]
    assert pods["kgcelery-control-worker"]["serviceAccountName"] == subject["name"]
    for name, pod in pods.items():
        if name != "kgcelery-control-worker":
            assert pod["automountServiceAccountToken"] is False, f"{name} needs no API token"


def test_beat_is_a_single_replica_recreated(objects: list[dict[str, Any]]) -> None:
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    beat = deployments["kgcelery-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    runs_beat = [name for name, pod in pod_specs(objects).items()
                 if any("beat" in c["args"] for c in pod["containers"])]
    assert runs_beat == ["kgcelery-beat"]
    assert deployments["kgcelery-bridge"]["spec"]["replicas"] >= 2


def test_pods_run_unprivileged_with_settings_from_config(objects: list[dict[str, Any]]) -> None:
    for name, pod in pod_specs(objects).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["limits"]["memory"], name
            sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
            assert sources == {"kgcelery-config", "kgcelery-secrets"}, name


def test_both_namespaces_get_the_same_valid_settings(objects: list[dict[str, Any]]) -> None:
    control, workers = config_env(objects, "kgcelery"), config_env(objects, "kgcelery-workers")
    assert control == workers
    unknown = [k for k in control if k.removeprefix("KGCELERY_").lower()
               not in Settings.model_fields]
    assert not unknown
    s = Settings.model_validate({k.removeprefix("KGCELERY_").lower(): v
                                 for k, v in control.items()})
    assert s.scaler_backend == "kubernetes" and s.graph_backend == "neo4j"
    assert s.kubernetes_template_dir.as_posix() == "/app/deploy", "where the image has them"
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    [image] = kustomization["images"]
    assert s.kubernetes_worker_image == f"{image['newName']}:{image['newTag']}"
