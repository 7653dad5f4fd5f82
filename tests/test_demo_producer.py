"""The demo producer against a real Tansu: what a client cluster's agent would send."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from kgcelery.demo import producer
from kgcelery.demo.agent_wire import WATCHED_KINDS
from kgcelery.settings import Settings
from tests.helpers import read_topic

pytestmark = pytest.mark.integration


def _topic(settings: Settings, agent_topic: str) -> str:
    """The test's (prefixed) name of one of the agent's topics."""
    return producer.agent_topics(settings)[agent_topic]


def test_run_demo_plays_the_agents_records_into_their_topics(test_settings: Settings) -> None:
    producer.run_demo(test_settings, clients=2, rate=30, duration=2.5, stop=threading.Event())
    clients = {"acme-prod", "globex-staging"}
    # Both registration jobs of the chart: the bare key, and kcat's split line.
    registrations = read_topic(test_settings, _topic(test_settings, "cluster.registry"), expect=4)
    keys = Counter(m.key().decode() for m in registrations)
    assert keys == {**{c: 1 for c in clients}, '{"client_id"': 2}
    bare = [json.loads(m.value()) for m in registrations if m.key().decode() in clients]
    assert {r["client_id"] for r in bare} == clients
    split = [m for m in registrations if m.key() == b'{"client_id"']
    assert {json.loads(m.key() + b":" + m.value())["client_id"] for m in split} == clients
    # The CronJob's heartbeat (bare key) and the state-watcher's (<client>::<client>).
    beats = read_topic(test_settings, _topic(test_settings, "cluster.heartbeat"), expect=4)
    assert {m.key().decode() for m in beats} == clients | {f"{c}::{c}" for c in clients}
    resources = read_topic(test_settings, _topic(test_settings, "state.k8s.resource"), expect=40)
    kinds = Counter(json.loads(m.value())["kind"] for m in resources if m.value())
    assert {"Node", "Pod", "Deployment", "ReplicaSet", "Service", "DaemonSet"} <= set(kinds)
    assert set(kinds) <= set(WATCHED_KINDS)
    for message in resources:
        client, _, entity = message.key().decode().partition("::")
        kind, _, uid = entity.partition(":")
        assert client in clients and kind.capitalize() in {k.capitalize() for k in kinds}
        assert json.loads(message.value())["uid"] == uid
    edges = read_topic(test_settings, _topic(test_settings, "state.k8s.topology"), expect=20)
    assert {json.loads(m.value())["type"] for m in edges if m.value()} == {
        "RUNS_ON", "CONTROLS", "SELECTS"}
    assert all(m.key().decode().split("::", 1)[1].startswith("edge:") for m in edges)
    logs = read_topic(test_settings, _topic(test_settings, "logs.normalized"), expect=20)
    for message in logs:
        value = json.loads(message.value())
        assert message.key().decode() == value["message_key"] == (
            f"{value['client_id']}::{value['kubernetes']['pod_uid']}")
        assert value["client_id"] in clients and value["etype"] == "k8s.log"
