"""The simulated cluster of ``kgcelery demo``: deterministic, and every signal agrees.

Pure unit tests: no services. One played history (two minutes of one-second ticks)
per seed is shared by the tests of a module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kgcelery.clients import validate_client_id
from kgcelery.demo.cluster import DemoRecord, SimulatedCluster
from kgcelery.demo.producer import demo_clients
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.events import normalize_event

T0 = 1_750_000_000.0
SECONDS = 120
RATE = 30
#: (seed, seconds, records per tick): three two-minute runs, and a long quiet one that
#: goes through OOM bursts, CronJob clean-ups and probe episodes several times.
RUNS = ((0, SECONDS, RATE), (1, SECONDS, RATE), (2, SECONDS, RATE), (7, 1800, 3))

Key = tuple[str, str, str]


@dataclass
class Played:
    """A cluster's snapshot at T0, its ticks, and the snapshot at the end."""

    first: list[DemoRecord]
    ticks: list[list[DemoRecord]]
    last: list[DemoRecord]
    rate: int
    records: list[DemoRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.records = [record for tick in self.ticks for record in tick]

    def of(self, kind: str, until: float = float("inf")) -> Iterator[dict[str, Any]]:
        return (r.value for r in self.records if r.kind == kind and r.ts <= until)


def play(seed: int, *, rate: int = RATE, seconds: int = SECONDS) -> Played:
    cluster = SimulatedCluster("acme-prod", "acme-eu-west-1", seed=seed)
    first = cluster.snapshot(T0)
    ticks = [cluster.tick(T0 + second, rate) for second in range(1, seconds + 1)]
    return Played(first, ticks, cluster.snapshot(T0 + seconds), rate)


@pytest.fixture(scope="module", params=RUNS, ids=[f"seed{s}-{n}s" for s, n, _ in RUNS])
def played(request: pytest.FixtureRequest) -> Played:
    seed, seconds, rate = request.param
    return play(seed, rate=rate, seconds=seconds)


def key(obj: dict[str, Any]) -> Key:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def objects_of(snapshot: list[DemoRecord]) -> dict[Key, dict[str, Any]]:
    return {key(record.value): record.value for record in snapshot}


def live_references(played: Played) -> Iterator[tuple[DemoRecord, dict[Key, str]]]:
    """Each telemetry record with the objects (key -> uid) that exist when it is sent."""
    live = {key(obj): obj["metadata"]["uid"] for obj in objects_of(played.first).values()}
    for record in played.records:
        value = record.value
        if record.kind == "resource" and value.get("op") == "DELETE":
            live.pop((value["kind"], value["namespace"], value["name"]), None)
        elif record.kind == "resource":
            live[key(value)] = value["metadata"]["uid"]
        yield record, live


# --- determinism ---------------------------------------------------------------------

def test_same_seed_and_calls_give_the_same_records() -> None:
    one, two = play(3, seconds=40), play(3, seconds=40)
    assert one.first == two.first
    assert one.ticks == two.ticks
    assert one.last == two.last


def test_another_seed_gives_another_cluster() -> None:
    uids = {obj["metadata"]["uid"] for obj in objects_of(play(4, seconds=1).first).values()}
    others = {obj["metadata"]["uid"] for obj in objects_of(play(5, seconds=1).first).values()}
    assert not uids & others


def test_the_story_does_not_depend_on_the_log_volume() -> None:
    quiet, loud = play(6, rate=5, seconds=60), play(6, rate=200, seconds=60)
    assert ([r for r in quiet.records if r.kind != "log"]
            == [r for r in loud.records if r.kind != "log"])


# --- the wire shapes -----------------------------------------------------------------

def test_the_cluster_runs_in_one_region_of_its_nodes_zones() -> None:
    cluster = SimulatedCluster("globex-staging", "globex-staging-gke", seed=1)
    region = cluster.region(T0)
    zones = {node["metadata"]["labels"]["topology.kubernetes.io/zone"]
             for node in cluster.nodes(T0)}
    assert zones and all(zone[:-1] == region for zone in zones)


def test_demo_client_ids_are_valid_and_distinct() -> None:
    clients = demo_clients(12)
    assert [client for client, _ in clients[:3]] == ["acme-prod", "globex-staging",
                                                     "initech-dev"]
    assert len({client for client, _ in clients}) == 12
    for client, _ in clients:
        validate_client_id(client)


def test_every_record_has_an_entity_and_serializes(played: Played) -> None:
    for record in [*played.first, *played.records, *played.last]:
        assert record.kind in ("event", "log", "resource", "alert")
        prefix, _, rest = record.entity.partition("::")
        assert prefix and rest, record.entity
        json.dumps(record.value)


def test_ticks_are_in_time_order_within_their_window(played: Played) -> None:
    since = T0
    for second, tick in enumerate(played.ticks, start=1):
        times = [record.ts for record in tick]
        assert times == sorted(times)
        assert all(since <= ts <= T0 + second for ts in times)
        since = T0 + second


def test_tick_emits_about_the_records_asked_for(played: Played) -> None:
    sizes = [len(tick) for tick in played.ticks]
    assert min(sizes) >= played.rate
    assert sum(sizes) < 1.5 * played.rate * len(sizes) + 2000


def test_info_logs_outnumber_warnings_and_errors(played: Played) -> None:
    streams = [log["stream"] for log in played.of("log")]
    assert streams.count("stderr") < 0.15 * len(streams)


def test_events_normalize(played: Played) -> None:
    for event in played.of("event"):
        (normalized,) = normalize_event(event)
        assert normalized.id == event["metadata"]["uid"]
        assert normalized.object_name == event["involvedObject"]["name"]


def test_alerts_are_alertmanager_webhooks(played: Played) -> None:
    statuses = set()
    for payload in played.of("alert"):
        assert payload["version"] == "4"
        (alert,) = payload["alerts"]
        statuses.add(alert["status"])
        assert {"alertname", "severity"} <= set(alert["labels"])
        assert to_epoch(alert["startsAt"]) is not None
        assert (to_epoch(alert["endsAt"]) is None) == (alert["status"] == "firing")
    assert statuses == {"firing", "resolved"}


# --- every signal refers to what exists ----------------------------------------------

def test_events_refer_to_existing_objects(played: Played) -> None:
    for record, live in live_references(played):
        if record.kind == "event":
            ref = record.value["involvedObject"]
            assert live.get((ref["kind"], ref.get("namespace", ""), ref["name"])) == ref["uid"]


def test_logs_come_from_existing_pods_on_existing_nodes(played: Played) -> None:
    for record, live in live_references(played):
        if record.kind == "log":
            pod = record.value["kubernetes"]
            assert live.get(("Pod", pod["pod_namespace"], pod["pod_name"])) == pod["pod_uid"]
            assert ("Node", "", pod["pod_node_name"]) in live
            assert record.entity == f"log::{pod['pod_name']}"


def test_alerts_name_existing_objects(played: Played) -> None:
    for record, live in live_references(played):
        if record.kind == "alert":
            labels = record.value["alerts"][0]["labels"]
            namespace = labels.get("namespace", "")
            for label, kind in (("pod", "Pod"), ("deployment", "Deployment"), ("node", "Node")):
                if label in labels:
                    scope = "" if kind == "Node" else namespace
                    assert (kind, scope, labels[label]) in live, labels


@pytest.mark.parametrize("moment", ["first", "last"])
def test_owners_selectors_and_nodes_exist(played: Played, moment: str) -> None:
    objects = objects_of(getattr(played, moment))
    by_uid = {obj["metadata"]["uid"]: obj for obj in objects.values()}
    allowed = {"Pod": {"ReplicaSet", "StatefulSet", "DaemonSet", "Job"},
               "ReplicaSet": {"Deployment"}, "Job": {"CronJob"}}
    for obj in objects.values():
        refs = obj["metadata"].get("ownerReferences", [])
        if obj["kind"] in allowed:
            (ref,) = refs
            owner = by_uid[ref["uid"]]
            assert ref["controller"] is True
            assert (owner["kind"], owner["metadata"]["name"]) == (ref["kind"], ref["name"])
            assert owner["kind"] in allowed[obj["kind"]]
        if obj["kind"] == "Pod" and obj["spec"].get("nodeName"):
            assert ("Node", "", obj["spec"]["nodeName"]) in objects
    pods = [obj for obj in objects.values() if obj["kind"] == "Pod"]
    for service in (obj for obj in objects.values() if obj["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        assert any(selector <= pod["metadata"]["labels"].items() for pod in pods), service


def test_daemonset_runs_one_pod_per_node(played: Played) -> None:
    objects = objects_of(played.last)
    nodes = {name for kind, _, name in objects if kind == "Node"}
    agents = [obj["spec"]["nodeName"] for obj in objects.values() if obj["kind"] == "Pod"
              and obj["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"]
    assert sorted(agents) == sorted(nodes)


def test_resource_records_replay_into_the_last_snapshot(played: Played) -> None:
    state = {obj["metadata"]["uid"]: obj for obj in objects_of(played.first).values()}
    versions: dict[str, int] = {uid: int(obj["metadata"]["resourceVersion"])
                                for uid, obj in state.items()}
    for value in played.of("resource"):
        if value.get("op") == "DELETE":
            del state[value["uid"]]
            continue
        uid, version = value["metadata"]["uid"], int(value["metadata"]["resourceVersion"])
        assert version > versions.get(uid, 0)
        versions[uid] = version
        state[uid] = value
    assert state == {obj["metadata"]["uid"]: obj for obj in objects_of(played.last).values()}


def test_recurring_events_keep_their_uid_and_count_up(played: Played) -> None:
    counts: dict[str, int] = {}
    uid_of: dict[tuple[str, str, str, str], str] = {}
    for event in played.of("event"):
        uid = event["metadata"]["uid"]
        assert event["count"] >= counts.get(uid, 1)
        counts[uid] = event["count"]
        ref = event["involvedObject"]
        identity = (ref["uid"], ref.get("fieldPath", ""), event["reason"], event["message"])
        assert uid_of.setdefault(identity, uid) == uid
        assert to_epoch(event["firstTimestamp"]) <= to_epoch(event["lastTimestamp"])
    assert max(counts.values()) >= 3


# --- the five scenarios within a minute -----------------------------------------------

MINUTE = T0 + 60


def _pods(played: Played, prefix: str) -> list[dict[str, Any]]:
    return [v for v in played.of("resource", MINUTE)
            if v.get("kind") == "Pod" and v["metadata"]["name"].startswith(prefix)]


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    """The status of a pod's (only) container; empty before the pod is scheduled."""
    return (pod["status"].get("containerStatuses") or [{}])[0]


def _events(played: Played, reason: str) -> list[dict[str, Any]]:
    return [e for e in played.of("event", MINUTE) if e["reason"] == reason]


def _alerts(played: Played, name: str) -> list[dict[str, str]]:
    return [p["alerts"][0]["labels"] for p in played.of("alert", MINUTE)
            if p["alerts"][0]["labels"]["alertname"] == name]


def _logs(played: Played, pod: str, pattern: str) -> list[str]:
    return [log["message"] for log in played.of("log", MINUTE)
            if log["kubernetes"]["pod_name"] == pod and re.search(pattern, log["message"])]


def test_oom_kill(played: Played) -> None:
    killed = [pod for pod in _pods(played, "cart-")
              if _container(pod)["lastState"].get("terminated", {}).get("reason") == "OOMKilled"]
    assert killed and _container(killed[-1])["restartCount"] >= 1
    name, node = killed[0]["metadata"]["name"], killed[0]["spec"]["nodeName"]
    assert any(e["involvedObject"]["name"] == node for e in _events(played, "OOMKilling"))
    assert any(e["involvedObject"]["name"] == name for e in _events(played, "BackOff"))
    assert _logs(played, name, r"java\.lang\.OutOfMemoryError: Java heap space")
    assert {"pod": name}.items() <= _alerts(played, "KubeContainerOOMKilled")[0].items()


def test_crash_loop(played: Played) -> None:
    looping = [pod for pod in _pods(played, "fraud-scorer-")
               if _container(pod).get("state", {}).get("waiting", {}).get("reason")
               == "CrashLoopBackOff"]
    assert looping
    name = looping[0]["metadata"]["name"]
    postgres = objects_of(played.first)[("Service", "payments", "postgres")]
    address = re.escape(postgres["spec"]["clusterIP"])
    assert _logs(played, name, rf'"{address}", port 5433 failed: Connection refused')
    assert any(e["message"].startswith(f"Back-off restarting failed container scorer in pod "
                                       f"{name}") for e in _events(played, "BackOff"))
    assert any(labels["pod"] == name for labels in _alerts(played, "KubePodCrashLooping"))


def test_image_pull_back_off(played: Played) -> None:
    waiting = {_container(pod).get("state", {}).get("waiting", {}).get("reason")
               for pod in _pods(played, "catalog-")}
    assert {"ErrImagePull", "ImagePullBackOff"} <= waiting
    failed = [e["message"] for e in _events(played, "Failed")]
    assert any(m.startswith('Failed to pull image "') and m.endswith(": not found")
               for m in failed)
    assert "Error: ErrImagePull" in failed
    assert any(e["message"].startswith("Back-off pulling image") for e in
               _events(played, "BackOff"))
    assert {"deployment": "catalog"}.items() <= _alerts(
        played, "KubeDeploymentReplicasMismatch")[0].items()


def test_failed_scheduling(played: Played) -> None:
    pending = [pod for pod in _pods(played, "recommender-")
               if pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]]
    assert pending
    name = pending[0]["metadata"]["name"]
    nodes = sum(1 for kind, _, _ in objects_of(played.first) if kind == "Node")
    assert any(e["involvedObject"]["name"] == name and e["message"].startswith(
        f"0/{nodes} nodes are available: {nodes} Insufficient cpu.")
        for e in _events(played, "FailedScheduling"))
    assert any(labels["pod"] == name for labels in _alerts(played, "KubePodNotReady"))


def test_readiness_probe_failures(played: Played) -> None:
    unhealthy = [e for e in _events(played, "Unhealthy") if e["message"] ==
                 "Readiness probe failed: HTTP probe failed with statuscode: 503"]
    assert unhealthy
    assert _logs(played, unhealthy[0]["involvedObject"]["name"], r"reporting unhealthy")
