"""Idempotency and order independence, as a property, against the real FalkorDB.

Random batches of every kind about a small world (so that they collide), applied in a
random order with some batches twice, must leave exactly the graph that applying each
once in time order leaves. Out of scope (see docs/GRAPH.md): tombstones, which carry no
time, and one name with two uids between uid-only references.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgcelery.graph import GraphStore, open_store
from kgcelery.settings import Settings
from kgcelery.tasks import ALERTS, EVENTS, LOGS, RESOURCES, TARGETS, TOPOLOGY, Kind, batch_id
from tests.graph_helpers import difference, dump, pod

pytestmark = [pytest.mark.integration, pytest.mark.both_stacks]

TIMES = [f"2026-01-12T15:0{minute}:00Z" for minute in range(1, 7)]
PODS, NODES = ["p0", "p1", "p2"], ["n0", "n1"]
_clients = itertools.count()

times = st.sampled_from(TIMES)
pod_names = st.sampled_from(PODS)
labels = st.sampled_from([{"app": "web"}, {"app": "db"}, {"app": "web", "v": "2"}])

resource = st.one_of(
    st.builds(lambda n, t, lb, node, owner, status: pod(
        n, t, labels=lb, node=node, owner=owner, status=status),
        pod_names, times, labels, st.sampled_from(NODES), st.sampled_from(["rs0", "rs1"]),
        st.sampled_from(["Pending", "Running", "Failed"])),
    st.builds(lambda n, t: pod(n, t, op="DELETE"), pod_names, times),
    st.builds(lambda t, sel: {"op": "UPSERT", "at": t, "kind": "Service", "namespace": "shop",
                              "name": "web", "uid": "uid-web", "serviceSelector": sel},
              times, st.sampled_from([{"app": "web"}, {"app": "db"}])),
)
event = st.builds(
    lambda uid, target, t, count, message: {
        "metadata": {"uid": uid, "namespace": "shop"}, "reason": "BackOff", "type": "Warning",
        "message": message, "count": count, "firstTimestamp": TIMES[0], "lastTimestamp": t,
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": target,
                           "uid": f"uid-{target}"}},
    st.sampled_from(["ev0", "ev1", "ev2"]), pod_names, times, st.integers(1, 9),
    st.sampled_from(["back-off", "back-off restarting", "oom"]))
alert = st.builds(
    lambda fp, target, status, t: {
        "status": status, "fingerprint": fp, "startsAt": TIMES[0],
        "endsAt": t if status == "resolved" else "0001-01-01T00:00:00Z", "updatedAt": t,
        "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": target},
        "annotations": {"summary": f"{target} is {status}"}},
    st.sampled_from(["f0", "f1"]), pod_names, st.sampled_from(["firing", "resolved"]), times)
edge = st.builds(
    lambda p, by_uid, node, op, t: {"op": op, "at": t, "type": "RUNS_ON", "to": f"Node/{node}",
                                    "from": f"pod::uid-{p}" if by_uid else f"Pod/shop/{p}"},
    pod_names, st.booleans(), st.sampled_from(NODES), st.sampled_from(["UPSERT", "DELETE"]),
    times)
#: The kg agent's edges (``pod:ns:name`` -> ``node:name``), as state-watcher sends them.
agent_edge = st.builds(
    lambda p, node, t: {"op": "UPSERT", "at": t, "type": "RUNS_ON", "to": f"node:{node}",
                        "from": f"pod:shop:{p}", "id": f"edge:pod:shop:{p}->node:{node}"},
    pod_names, st.sampled_from(NODES), times)
#: Scrape targets (state.prom.targets) naming the pods and nodes.
target = st.builds(
    lambda p, node, health, t: {"op": "UPSERT", "at": t, "cluster": "c", "scrapeUrl": "u",
                                "health": health, "lastScrape": t,
                                "labels": {"job": "web", "namespace": "shop",
                                           "instance": "i0", "pod": p, "node": node}},
    pod_names, st.sampled_from(NODES), st.sampled_from(["up", "down"]), times)
#: Vector's normalized alert twin (events.normalized) and alert-receiver signals.
twin = st.builds(lambda a, t: {"receiver": "r", "status": "firing", "alerts": a,
                               "etype": "prom.alert", "labels": {}, "event_time": t},
                 alert, times)
signal = st.builds(
    lambda target, sev, t: {"event_id": f"e-{t}", "event_time": t, "etype": "prom.alert",
                            "reason": "PodDown", "severity": sev, "message": f"m {t}",
                            "subject": {"kind": "Pod", "ns": "shop", "name": target}},
    pod_names, st.sampled_from(["WARNING", "CRITICAL"]), times)
snapshot = st.builds(
    lambda names, t: {"timestamp": t, "complete": True, "items": [
        {"kind": "Pod", "metadata": {"name": n, "namespace": "shop", "uid": f"uid-{n}",
                                     "resourceVersion": "5", "labels": {"app": "web"}},
         "spec": {"nodeName": "n0"}} for n in sorted(names)]},
    st.sets(pod_names, max_size=2), times)
log = st.builds(
    lambda p, message, t: {"namespace": "shop", "pod_name": p, "container_name": "app",
                           "message": message, "timestamp": t},
    pod_names, st.sampled_from(["ERROR timeout after 3s", "ERROR timeout after 9s",
                                "WARN slow", "GET / 200"]), times)

KINDS: dict[str, tuple[Kind, Any]] = {
    "resource": (RESOURCES, resource), "event": (EVENTS, st.one_of(event, event, twin)),
    "alert": (ALERTS, st.one_of(alert, alert, signal)),
    "topology": (TOPOLOGY, st.one_of(edge, edge, agent_edge, snapshot)), "log": (LOGS, log),
    "target": (TARGETS, target)}
batches = st.lists(st.sampled_from(sorted(KINDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), st.lists(KINDS[kind][1], min_size=1, max_size=3))),
    min_size=1, max_size=7)


def _time_of(batch: tuple[str, list[dict[str, Any]]]) -> str:
    """The newest time a batch mentions (all times are ISO text of one format)."""
    found = [v for record in batch[1] for k, v in record.items()
             if k in ("at", "lastTimestamp", "updatedAt", "timestamp", "event_time")
             and v in TIMES]
    return max(found, default=TIMES[0])


def apply(store: GraphStore, client: str, batch: tuple[str, list[dict[str, Any]]]) -> None:
    kind, values = KINDS[batch[0]][0], batch[1]
    normalized = [record for value in values for record in kind.normalize(value, "", None)]
    kind.write(store, client, normalized, batch_id(kind.name, values, None))


@pytest.fixture(scope="module")
def store(stack_settings: Settings) -> Iterator[GraphStore]:
    graph = open_store(stack_settings)
    yield graph
    graph.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), plan=batches)
def test_any_order_and_any_replay_give_the_time_ordered_graph(
        store: GraphStore, data: st.DataObject,
        plan: list[tuple[str, list[dict[str, Any]]]]) -> None:
    n = next(_clients)
    reference, shuffled = f"hyp{n}-ref", f"hyp{n}-any"
    try:
        for batch in sorted(plan, key=_time_of):
            apply(store, reference, batch)
        replays = data.draw(st.lists(st.sampled_from(plan), max_size=3), label="replayed")
        order = data.draw(st.permutations(plan + replays), label="order")
        for batch in order:
            apply(store, shuffled, batch)
        expected, got = dump(store, reference), dump(store, shuffled)
        assert got == expected, difference(expected, got)
    finally:
        store.drop(reference)
        store.drop(shuffled)
