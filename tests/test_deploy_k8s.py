"""deploy/, checked without a cluster (none runs here).

Every manifest and every per-client object that the kubernetes scaler renders is
validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown
fields are errors) and the ScaledObject against KEDA's CRD models (cloudcoil's, generated
from the CRD; a round trip proves no field was unknown). The RBAC Role must grant what
the scaler calls, and nothing else.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgcelery.clients import CLIENT_ID_PATTERN
from kgcelery.control.scalers.fleet import FLEET_IDLE_QUEUE
from kgcelery.control.scalers.k8s import REDIS_TRIGGER_AUTH, KubernetesScaler, Templates
from kgcelery.settings import Settings
from tests.deploy_support import (
    DEPLOY,
    config_env,
    kustomization,
    kustomize_build,
    kustomize_command,
    manifest_files,
    manifests,
    pod_specs,
    render_kustomization,
)
from tests.fake_k8s import FakeAppsV1Api, FakeCustomObjectsApi

KUBERNETES_VERSIONS = ("1.27", "1.37")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

#: The RBAC permission each method of the official client that the scaler calls needs.
PERMISSION = {
    "list_namespaced_deployment": ("apps", "deployments", "list"),
    "create_namespaced_deployment": ("apps", "deployments", "create"),
    "patch_namespaced_deployment": ("apps", "deployments", "patch"),
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
    assert kinds == ["ConfigMap", "Deployment", "Job", "Namespace", "NetworkPolicy",
                     "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount"]
    for obj in objects:
        validate_kubernetes(obj)
    # Strict validation bites: a misspelt field is refused.
    broken = json.loads(json.dumps(next(o for o in objects if o["kind"] == "Deployment")))
    broken["spec"]["replica"] = 2
    with pytest.raises(AssertionError, match="replica"):
        validate_kubernetes(broken)


def test_the_kustomization_applies_every_manifest() -> None:
    assert sorted(kustomization()["resources"]) == sorted(p.name for p in manifest_files())


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def test_the_image_is_named_once_and_reaches_the_client_workers(tmp_path: Path) -> None:
    """kustomization.yaml's images: set the image of every pod and, through its
    replacements, KGCELERY_KUBERNETES_WORKER_IMAGE, which the scaler renders."""
    overlay = tmp_path / "deploy"
    shutil.copytree(DEPLOY, overlay)
    spec = kustomization(overlay)
    spec["images"] = [{"name": "kgcelery", "newName": "registry.example/kg", "newTag": "1.2.3"}]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    objects = render_kustomization(overlay)
    images = {c["image"] for pod in pod_specs(objects).values() for c in pod["containers"]}
    assert images == {"registry.example/kg:1.2.3"}
    for namespace in ("kgcelery", "kgcelery-workers"):
        env = config_env(objects, namespace)
        assert env["KGCELERY_KUBERNETES_WORKER_IMAGE"] == "registry.example/kg:1.2.3"
    if kustomize_command() is None:
        pytest.skip("no kustomize or kubectl here: the base was rendered by "
                    "tests/deploy_support.render_kustomization only")
    # The real kustomize renders the same objects.
    for directory in (DEPLOY, overlay):
        real = kustomize_build(directory)
        mine = render_kustomization(directory)
        assert sorted(real, key=_key) == sorted(mine, key=_key)


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
        # An upgrade: a new image re-applies every Deployment.
        upgraded = s.model_copy(update={"kubernetes_worker_image": "kgcelery:next"})
        KubernetesScaler(upgraded, apps, custom).apply({"af-9": 1})
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
            assert "kgcelery-config" in sources, name


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


# -- Pod Security, probes, Secrets, disruption, network, monitoring -----------------------
#: The ids whose YAML reading is not a string unless quoted, and an ordinary one.
CLIENT_IDS = ("yes", "af-9", "off", "null", "true")
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def pod_security_violations(pod: dict[str, Any]) -> list[str]:
    """What Pod Security "restricted" (v1.27 and later) would refuse in a pod spec."""
    found = []
    pod_security = pod.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(field)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {kinds}")
    for container in pod["containers"] + pod.get("initContainers", []):
        where = container["name"]
        security = container.get("securityContext", {})
        if security.get("privileged"):
            found.append(f"{where}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation")
        if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            found.append(f"{where}: runAsNonRoot")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            found.append(f"{where}: runAsUser 0")
        seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where}: seccompProfile")
        capabilities = security.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{where}: capabilities not dropped")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{where}: capabilities added")
        if any("hostPort" in port for port in container.get("ports", [])):
            found.append(f"{where}: hostPort")
    return found


def client_deployments() -> list[dict[str, Any]]:
    s = Settings(kubernetes_template_dir=DEPLOY, kubernetes_namespace="kgcelery-workers",
                 kubernetes_worker_image="registry.example/kgcelery:1.2.3")
    return [Templates(s).deployment(client, 2) for client in CLIENT_IDS]


def all_pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {**pod_specs(objects), **pod_specs(client_deployments())}


def test_pod_security_restricted_refuses_what_it_should() -> None:
    [pod] = pod_specs(client_deployments()[:1]).values()
    assert pod_security_violations(pod) == []
    broken = json.loads(json.dumps(pod))
    broken["securityContext"].pop("seccompProfile")
    broken["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    broken["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert len(pod_security_violations(broken)) == 3


def test_every_pod_passes_pod_security_restricted(objects: list[dict[str, Any]]) -> None:
    for name, pod in all_pods(objects).items():
        assert pod_security_violations(pod) == [], name
        token = pod.get("automountServiceAccountToken")
        assert token is (None if name == "kgcelery-control-worker" else False), name
        mounts = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in mounts, f"{name}: /tmp is no emptyDir"
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    assert {n["metadata"]["name"] for n in namespaces} == {"kgcelery", "kgcelery-workers"}
    for namespace in namespaces:
        labels = namespace["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_client_deployments_of_awkward_ids_are_valid_and_keep_the_id() -> None:
    for deployment, client in zip(client_deployments(), CLIENT_IDS, strict=True):
        validate_kubernetes(deployment)
        assert deployment["metadata"]["labels"]["kgcelery.io/client"] == client
        assert deployment["spec"]["selector"]["matchLabels"]["kgcelery.io/client"] == client
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("-n") + 1] == f"{client}@%h"
        assert args[args.index("-Q") + 1] == f"client.{client}"
        scaled = Templates(Settings(kubernetes_template_dir=DEPLOY)).scaled_object(client, 1)
        validate_scaled_object(scaled)
        assert scaled["metadata"]["labels"]["kgcelery.io/client"] == client


def _role(container: dict[str, Any]) -> str:
    args = container["args"]
    if args[:2] == ["kgcelery", "bridge"]:
        return "bridge"
    if args[0] == "celery" and args[3] in ("beat", "worker"):
        return str(args[3])
    return "other"


def test_probes_read_the_roles_own_loop_never_redis(objects: list[dict[str, Any]]) -> None:
    """A liveness probe that asks Redis fails exactly when Redis refuses writes (the
    bridge's backpressure): each role's probe reads the file its own loop touches."""
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    deployments.update({d["metadata"]["name"]: d for d in client_deployments()})
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            role = _role(container)
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{name} has no {probe}"
                command = container[probe].get("exec", {}).get("command")
                if role == "other":
                    assert "httpGet" in container[probe], name  # Flower's own HTTP
                    continue
                assert command[:4] == ["python", "-m", "kgcelery.liveness", role], name


def _secret_names(container: dict[str, Any]) -> set[str]:
    refs = [s["secretRef"] for s in container["envFrom"] if "secretRef" in s]
    refs += [e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
             if "secretKeyRef" in e.get("valueFrom", {})]
    assert all(not ref.get("optional") for ref in refs), "a Secret is optional"
    return {ref["name"] for ref in refs}


#: Least privilege: each role gets the Secrets of what it talks to, and no other.
SECRETS_OF = {
    "kgcelery-topics": {"kgcelery-kafka"},
    "kgcelery-bridge": {"kgcelery-broker", "kgcelery-kafka"},
    "kgcelery-beat": {"kgcelery-broker"},
    "kgcelery-control-worker": {"kgcelery-broker"},
    "kgcelery-flower": {"kgcelery-broker", "kgcelery-flower"},
    # Workers write the graph and dead-letter to Kafka.
    "kgcelery-worker": {"kgcelery-broker", "kgcelery-graph", "kgcelery-kafka"},
    "kgcelery-fleet": {"kgcelery-broker", "kgcelery-graph", "kgcelery-kafka"},
}


def test_secrets_are_required_and_per_role(objects: list[dict[str, Any]]) -> None:
    for name, pod in all_pods(objects).items():
        role = "kgcelery-worker" if name.startswith("kgcelery-worker-") else name
        for container in pod["containers"]:
            assert _secret_names(container) == SECRETS_OF[role], name


def test_bridges_survive_drains_and_spread(objects: list[dict[str, Any]]) -> None:
    [pdb] = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    bridge = next(o for o in objects if o["metadata"]["name"] == "kgcelery-bridge"
                  and o["kind"] == "Deployment")
    labels = bridge["spec"]["template"]["metadata"]["labels"]
    assert pdb["metadata"]["namespace"] == bridge["metadata"]["namespace"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] < bridge["spec"]["replicas"]
    spread = bridge["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} == {"kubernetes.io/hostname",
                                                  "topology.kubernetes.io/zone"}
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()


def test_only_flower_and_metrics_take_connections(objects: list[dict[str, Any]]) -> None:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    denied = {p["metadata"]["namespace"] for p in policies
              if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]}
    assert denied == {"kgcelery", "kgcelery-workers"}
    pods = {o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]: o
            for o in objects if o["kind"] == "Deployment"}
    for policy in policies:
        if "ingress" not in policy["spec"]:
            continue
        target = pods[policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]]
        ports = {p["containerPort"] for c in target["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert allowed <= ports, policy["metadata"]["name"]


def test_metrics_are_served_and_scraped(objects: list[dict[str, Any]]) -> None:
    """The bridges' and the control worker's metrics ports are set, named, open to
    Prometheus and scraped (tests/test_deploy_liveness.py serves the control metrics
    from a real control worker)."""
    env = config_env(objects, "kgcelery")
    monitors = {m["metadata"]["name"]: m for m in yaml.safe_load_all(
        (DEPLOY / "monitoring" / "podmonitor.yaml").read_text())}
    pods = pod_specs(objects)
    for workload, setting in (("kgcelery-bridge", "KGCELERY_BRIDGE_METRICS_PORT"),
                              ("kgcelery-control-worker", "KGCELERY_CONTROL_METRICS_PORT")):
        port = int(env[setting])
        assert port > 0, setting
        container = pods[workload]["containers"][0]
        assert {"name": "metrics", "containerPort": port} in container["ports"], workload
        monitor = monitors[workload]
        assert monitor["kind"] == "PodMonitor"
        assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
        assert monitor["spec"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": workload}


def test_one_reconciler_and_a_reappliable_topics_job(objects: list[dict[str, Any]]) -> None:
    control = next(o for o in objects if o["metadata"]["name"] == "kgcelery-control-worker")
    assert control["spec"]["strategy"] == {"type": "Recreate"}
    [job] = [o for o in objects if o["kind"] == "Job"]
    assert job["spec"]["ttlSecondsAfterFinished"] <= 3600


def test_keda_slows_scale_down_with_hpa_behavior() -> None:
    s = Settings(kubernetes_template_dir=DEPLOY, scale_cooldown_s=120)
    spec = Templates(s).scaled_object("af-9", min_replicas=1)["spec"]
    assert "cooldownPeriod" not in spec, "KEDA's cooldown applies only to scaling to 0"
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 120


# -- upgrades: a changed rendering re-applies the Deployment ---------------------------
@pytest.mark.parametrize("mode", ["deployment", "keda"])
def test_a_new_image_rolls_to_every_client(cluster_settings: Settings, mode: str) -> None:
    s = cluster_settings.model_copy(update={"kubernetes_mode": mode})
    apps, custom = FakeAppsV1Api(), FakeCustomObjectsApi()
    KubernetesScaler(s, apps, custom).apply({"af-9": 2, "yes": 1})
    apps.calls.clear()
    KubernetesScaler(s, apps, custom).apply({"af-9": 2, "yes": 1})
    assert not [c for c in apps.calls if c[0] == "patch_namespaced_deployment"], \
        "an unchanged rendering is not re-applied"
    upgraded = s.model_copy(update={"kubernetes_worker_image": "kgcelery:next"})
    KubernetesScaler(upgraded, apps, custom).apply({"af-9": 2, "yes": 1})
    applied = [kw for method, kw in apps.calls if method == "patch_namespaced_deployment"]
    assert sorted(kw["name"] for kw in applied) == ["kgcelery-worker-af-9",
                                                     "kgcelery-worker-yes"]
    for kw in applied:
        assert kw["_content_type"] == "application/apply-patch+yaml"
        assert kw["field_manager"] == "kgcelery" and kw["force"] is True
        pod = kw["body"]["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == "kgcelery:next"
        # KEDA's HPA owns the replicas of a live client; kgcelery applies them otherwise.
        assert ("replicas" in kw["body"]["spec"]) is (mode == "deployment")
    for deployment in apps.deployments.values():
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
            "kgcelery:next"
    apps.calls.clear()
    KubernetesScaler(upgraded, apps, custom).apply({"af-9": 2, "yes": 1})
    assert not [c for c in apps.calls if c[0] == "patch_namespaced_deployment"]


def test_production_commits_only_fsynced_hand_offs(objects: list[dict[str, Any]]) -> None:
    from tests.deploy_support import load_compose

    for namespace in ("kgcelery", "kgcelery-workers"):
        assert config_env(objects, namespace)["KGCELERY_BRIDGE_DURABLE"] == "aof"
    compose = load_compose()
    assert compose["services"]["bridge"]["environment"]["KGCELERY_BRIDGE_DURABLE"] == "aof"
    assert "--appendonly yes" in compose["services"]["redis"]["command"][2]


def test_keda_mode_states_the_global_cap_it_cannot_enforce(
        cluster_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    s = cluster_settings.model_copy(update={"kubernetes_mode": "keda", "scale_max_workers": 4,
                                            "scale_global_max_workers": 10})
    scaler = KubernetesScaler(s, FakeAppsV1Api(), FakeCustomObjectsApi())
    with caplog.at_level("WARNING", logger="kgcelery.control.scalers.k8s"):
        scaler.apply({"af-9": 1, "yes": 1})  # 8 at most: within the cap
        assert "GLOBAL_MAX_WORKERS" not in caplog.text
        scaler.apply({"af-9": 1, "yes": 1, "bq-2": 1})  # 12 at most
        assert "up to 12 workers" in caplog.text
        caplog.clear()
        scaler.apply({"af-9": 1, "yes": 1, "bq-2": 1})
        assert not caplog.text, "said once"


# -- the fleet component: a worker fleet instead of a Deployment per client ----------------
def fleet_overlay(tmp_path: Path, images: list[dict[str, str]] | None = None) -> Path:
    """An operator's kustomization, outside deploy/: the base and the fleet component."""
    shutil.copytree(DEPLOY, tmp_path / "kgcelery" / "deploy")
    overlay = tmp_path / "ops"
    overlay.mkdir()
    spec: dict[str, Any] = {"resources": ["../kgcelery/deploy"],
                            "components": ["../kgcelery/deploy/fleet"]}
    if images:
        spec["images"] = images
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return overlay


def test_the_fleet_component_swaps_the_client_deployments_for_a_fleet(tmp_path: Path) -> None:
    overlay = fleet_overlay(tmp_path, [{"name": "kgcelery", "newName": "registry.example/kg",
                                        "newTag": "1.2.3"}])
    objects = render_kustomization(overlay)
    for obj in objects:
        validate_kubernetes(obj)
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Role", "RoleBinding", "ServiceAccount"}, "a fleet needs no API access"
    pods = pod_specs(objects)
    fleet = pods["kgcelery-fleet"]
    for name, pod in pods.items():
        assert pod_security_violations(pod) == [], name
        assert pod.get("automountServiceAccountToken") is False, name
        assert "serviceAccountName" not in pod, name
        for container in pod["containers"]:
            assert container["image"] == "registry.example/kg:1.2.3", name
            assert _secret_names(container) == SECRETS_OF[name], name
    # The settings send the client queues to the fleet, and the fleet is what they find.
    env = config_env(objects, "kgcelery")
    assert env == config_env(objects, "kgcelery-workers")
    assert not [k for k in env if k.startswith("KGCELERY_KUBERNETES_")]
    s = Settings.model_validate({k.removeprefix("KGCELERY_").lower(): v
                                 for k, v in env.items()})
    [deployment] = [o for o in objects if o["metadata"]["name"] == "kgcelery-fleet"
                    and o["kind"] == "Deployment"]
    assert s.scaler_backend == "celery"
    assert s.scale_max_workers == deployment["spec"]["replicas"]
    args = fleet["containers"][0]["args"]
    assert args[args.index("-Q") + 1] == FLEET_IDLE_QUEUE
    assert fnmatch.fnmatchcase(args[args.index("-n") + 1].replace("%h", "kgcelery-fleet-x"),
                               s.fleet_worker_pattern)
    assert _role(fleet["containers"][0]) == "worker"
    assert any(o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "kgcelery-fleet"
               for o in objects)
    if kustomize_command() is None:
        pytest.skip("no kustomize or kubectl here: the component was rendered by "
                    "tests/deploy_support.render_kustomization only")
    assert sorted(kustomize_build(overlay), key=_key) == sorted(objects, key=_key)
