"""Scaler backends: the Celery fleet against real workers; kubernetes against a fake.

The fleet test assigns client queues to real workers through Celery remote control and
checks that a worker which restarts (and so forgets its runtime queues) gets them back.
The kubernetes backend is driven against a recorded fake; its rendered objects are
validated with the official client's models, and its recorded calls are replayed
through the official client up to the network (a closed local port).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from kgcelery.clients import queue_for
from kgcelery.control.observe import active_queues
from kgcelery.control.scalers.fleet import FleetScaler
from kgcelery.control.scalers.k8s import KubernetesScaler, Templates, name_for
from kgcelery.control.scalers.local import worker_argv
from kgcelery.embedded.stack import free_port
from kgcelery.graph import GraphStore
from kgcelery.settings import Settings
from tests.control_support import event_count, send_events
from tests.fake_k8s import FakeAppsV1Api, FakeCustomObjectsApi
from tests.helpers import Processes, wait_for

DEPLOY = Path(__file__).parents[1] / "deploy"


# -- celery: a real fleet ------------------------------------------------------------------
def _fleet_worker(processes: Processes, settings: Settings, name: str) -> Any:
    argv = [sys.executable, "-m", "celery", "-A", "kgcelery.app", "worker", "-Q", "fleet.idle",
            "-n", f"{name}@%h", "--concurrency", "1", "--without-mingle", "--without-gossip",
            "--loglevel", "INFO"]
    return processes.start(name, argv, settings, ready_log="ready.")


def _holders(app: Celery, client: str) -> list[str]:
    return sorted(w for w, queues in active_queues(app, 1.0).items()
                  if queue_for(client) in queues)


def _settled(app: Celery, want: dict[str, int]) -> bool:
    """The fleet consumes as wanted (add_consumer answers before the worker acts)."""
    return all(len(_holders(app, client)) == n for client, n in want.items())


@pytest.mark.integration
def test_fleet_assigns_queues_and_reasserts_after_a_restart(
        settings: Settings, processes: Processes, app: Celery, graph: GraphStore,
        client_ids: list[str]) -> None:
    a, b = client_ids[:2]
    first = _fleet_worker(processes, settings, "fleet-1")
    _fleet_worker(processes, settings, "fleet-2")
    scaler = FleetScaler(app, pattern="fleet-*@*", timeout=1)

    assert scaler.apply({a: 2, b: 1}) == {a: 2, b: 1}
    wait_for(lambda: _settled(app, {a: 2, b: 1}), timeout=10, what="a on 2 workers, b on 1")
    # The queues really are consumed: a task for b reaches b's graph.
    send_events(app, b, 5)
    wait_for(lambda: event_count(graph, b) == 5, timeout=30, what="b's events written")

    # Fewer wanted: a shrinks to one worker; b, no longer wanted, is cancelled.
    assert scaler.apply({a: 1}) == {a: 1}
    wait_for(lambda: _settled(app, {a: 1, b: 0}), timeout=10, what="a on 1 worker, b on none")

    # The worker holding a restarts and comes back with its command-line queue only;
    # the next pass puts a's queue back on the fleet.
    holder = _holders(app, a)[0]
    victim = first if holder.startswith("fleet-1@") else processes.started[1]
    victim.stop(timeout=15)
    victim.start()
    wait_for(lambda: victim.tail(1000).count("ready.") == 2, timeout=30,
             what="the worker back")
    wait_for(lambda: len(active_queues(app, 1.0)) == 2, timeout=30, what="both answering")
    assert _holders(app, a) == [], "a restarted worker forgets its runtime queues"
    scaler.apply({a: 1})
    wait_for(lambda: _settled(app, {a: 1}), timeout=10, what="a's queue re-asserted")


# -- kubernetes: templates, a recorded fake, and the real client's validation -------------
@pytest.fixture
def k8s_settings() -> Settings:
    return Settings(kubernetes_template_dir=DEPLOY, kubernetes_namespace="kg",
                    kubernetes_worker_image="registry.example/kgcelery:1.2",
                    broker_url="redis://redis.kg.svc:6379/2", scale_max_workers=5)


def test_local_workers_run_below_the_bridges_cpu_priority() -> None:
    niced = worker_argv("af-9", 2, Settings(worker_nice=5))
    assert niced[:4] == ["nice", "-n", "5", sys.executable]
    assert niced[niced.index("-Q") + 1] == "client.af-9" and "af-9-2@%h" in niced
    assert worker_argv("af-9", 2, Settings(worker_nice=0))[0] == sys.executable
    with pytest.raises(ValueError):
        Settings(worker_nice=20)


def test_rendered_deployment_is_a_valid_worker_of_one_client(k8s_settings: Settings) -> None:
    client = pytest.importorskip("kubernetes.client")
    body = Templates(k8s_settings).deployment("af-9", replicas=2)
    deployment = client.V1Deployment.from_dict(body)
    assert deployment.metadata.name == "kgcelery-worker-af-9"
    assert deployment.metadata.namespace == "kg"
    assert deployment.spec.replicas == 2
    assert deployment.spec.selector.match_labels["kgcelery.io/client"] == "af-9"
    pod = deployment.spec.template.spec
    args = pod.containers[0].args
    assert args[args.index("-Q") + 1] == "client.af-9"
    assert pod.containers[0].image == "registry.example/kgcelery:1.2"
    assert pod.termination_grace_period_seconds > k8s_settings.task_time_limit_s


def test_rendered_scaled_object_watches_the_client_queue(k8s_settings: Settings) -> None:
    body = Templates(k8s_settings).scaled_object("af-9", min_replicas=1)
    assert body["apiVersion"] == "keda.sh/v1alpha1" and body["kind"] == "ScaledObject"
    spec = body["spec"]
    assert spec["scaleTargetRef"]["name"] == name_for("af-9")
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 5)
    trigger = spec["triggers"][0]
    assert trigger["type"] == "redis"
    assert trigger["metadata"] == {"address": "redis.kg.svc:6379", "databaseIndex": "2",
                                   "listName": "client.af-9", "listLength": "10"}


def test_deployment_mode_patches_replicas(k8s_settings: Settings) -> None:
    apps = FakeAppsV1Api()
    scaler = KubernetesScaler(k8s_settings, apps)
    assert scaler.apply({"af-9": 1, "bq-2": 2}) == {}
    assert sorted(apps.deployments) == [name_for("af-9"), name_for("bq-2")]
    assert apps.deployments[name_for("bq-2")]["spec"]["replicas"] == 2
    apps.calls.clear()
    assert scaler.apply({"af-9": 3, "bq-2": 2}) == {"af-9": 1, "bq-2": 2}
    assert [c for c in apps.calls if c[0] != "list_namespaced_deployment"] == [
        ("patch_namespaced_deployment_scale",
         {"name": name_for("af-9"), "namespace": "kg", "body": {"spec": {"replicas": 3}}})]
    apps.calls.clear()
    # A client missing from the map (retired) goes to 0; its Deployment is kept.
    scaler.apply({"af-9": 3})
    assert apps.deployments[name_for("bq-2")]["spec"]["replicas"] == 0
    apps.calls.clear()
    assert scaler.apply({"af-9": 3}) == {"af-9": 3, "bq-2": 0}
    assert [c[0] for c in apps.calls] == ["list_namespaced_deployment"], "idempotent"


def test_keda_mode_manages_scaled_objects(k8s_settings: Settings) -> None:
    settings = k8s_settings.model_copy(update={"kubernetes_mode": "keda"})
    apps, custom = FakeAppsV1Api(), FakeCustomObjectsApi()
    scaler = KubernetesScaler(settings, apps, custom)
    scaler.apply({"af-9": 2})
    assert custom.objects[name_for("af-9")]["spec"]["minReplicaCount"] == 2
    scaler.apply({"af-9": 1})
    assert custom.calls[-1][0] == "patch_namespaced_custom_object"
    assert custom.objects[name_for("af-9")]["spec"]["minReplicaCount"] == 1
    assert not [c for c in apps.calls if c[0] == "patch_namespaced_deployment_scale"], \
        "KEDA owns the replicas of a live client"
    scaler.apply({"af-9": 0})
    assert custom.objects == {}
    assert apps.deployments[name_for("af-9")]["spec"]["replicas"] == 0


def _real_apis(port: int) -> tuple[Any, Any]:
    client = pytest.importorskip("kubernetes.client")
    configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 0
    api = client.ApiClient(configuration)
    return client.AppsV1Api(api), client.CustomObjectsApi(api)


def test_the_fake_has_the_real_clients_methods() -> None:
    real_apps, real_custom = _real_apis(free_port())
    for fake, real in ((FakeAppsV1Api(), real_apps), (FakeCustomObjectsApi(), real_custom)):
        for name, method in inspect.getmembers(fake, inspect.ismethod):
            if name.startswith(("list_", "create_", "patch_", "delete_")):
                wanted = [p for p in inspect.signature(method).parameters if p != "_"]
                assert set(wanted) <= set(inspect.signature(getattr(real, name)).parameters)


@pytest.mark.parametrize("mode", ["deployment", "keda"])
def test_recorded_calls_pass_the_real_clients_validation(k8s_settings: Settings,
                                                         mode: str) -> None:
    """Replayed through the official client, each call fails only at the network."""
    import urllib3

    settings = k8s_settings.model_copy(update={"kubernetes_mode": mode})
    apps, custom = FakeAppsV1Api(), FakeCustomObjectsApi()
    scaler = KubernetesScaler(settings, apps, custom)
    for desired in ({"af-9": 2}, {"af-9": 3}, {}):
        scaler.apply(desired)
    real_apps, real_custom = _real_apis(free_port())
    calls = [(real_apps, c) for c in apps.calls] + [(real_custom, c) for c in custom.calls]
    assert len(calls) >= 6
    for real, (method, kwargs) in calls:
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            getattr(real, method)(**kwargs, _request_timeout=2)
