"""The demo producer against a real Tansu: what a client cluster's agent would send."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from kgcelery.demo import producer
from kgcelery.settings import Settings
from tests.conftest import topic_of
from tests.helpers import read_topic

pytestmark = pytest.mark.integration


def test_run_demo_plays_registered_clients_into_their_topics(test_settings: Settings) -> None:
    producer.run_demo(test_settings, clients=2, rate=30, duration=2.5, stop=threading.Event())
    clients = {"acme-prod", "globex-staging"}
    registrations = read_topic(test_settings, topic_of(test_settings, "registry"), expect=2)
    assert {json.loads(m.value())["client_id"] for m in registrations} == clients
    assert {m.key().decode() for m in registrations} == {f"{c}::registry" for c in clients}
    beats = read_topic(test_settings, topic_of(test_settings, "heartbeat"), expect=2)
    assert {m.key().decode() for m in beats} == {f"{c}::heartbeat" for c in clients}
    snapshot = read_topic(test_settings, topic_of(test_settings, "resource"), expect=40)
    kinds = Counter(json.loads(m.value())["kind"] for m in snapshot)
    assert {"Node", "Pod", "Deployment", "ReplicaSet", "Service", "Namespace"} <= set(kinds)
    logs = read_topic(test_settings, topic_of(test_settings, "log"), expect=20)
    for message in [*snapshot, *logs]:
        client, separator, entity = message.key().decode().partition("::")
        assert client in clients and separator and entity
        assert "client_id" not in json.loads(message.value())
