"""KGCELERY_BRIDGE_DURABLE=aof: an offset is committed only once the tasks below it are
in Redis's fsynced append-only file (WAITAOF), on a real Redis, Kafka (Tansu) and bridge.

The Redis of this test starts with ``appendonly no``: it acknowledges every task, but
nothing reaches an append-only file, so WAITAOF cannot confirm and the bridge must hold
its offsets however long it runs. Once ``appendonly yes`` is set, the next commit goes
through. With ``off`` the same Redis gets the offsets committed at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kgcelery.app import create_app
from kgcelery.bridge.runner import Bridge
from kgcelery.clients import queue_for
from kgcelery.control.registry import Registry
from kgcelery.embedded.binaries import redis_server_binary
from kgcelery.embedded.stack import free_port
from kgcelery.settings import Settings
from tests.conftest import topic_of
from tests.helpers import committed_count, produce, serving, wait_for

pytestmark = pytest.mark.integration

EVENT = {"kind": "Event", "apiVersion": "v1", "reason": "BackOff", "type": "Warning",
         "message": "Back-off", "involvedObject": {"kind": "Pod", "namespace": "shop",
                                                  "name": "api-0", "uid": "u"},
         "metadata": {"namespace": "shop", "name": "api-0.1"}}
RECORDS = 40


@pytest.fixture
def unsynced_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis that acknowledges writes but keeps no append-only file (yet)."""
    port = free_port()
    with serving("durable-redis", [redis_server_binary(Settings()), "--port", str(port),
                                   "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
                                   "--appendonly", "no", "--appendfsync", "everysec"],
                 port, tmp_path, what="redis-server"):
        yield f"redis://127.0.0.1:{port}/0"


def _run(bridge: Bridge, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bridge.step(timeout=0.05)


@pytest.mark.parametrize("mode", ["aof", "off"])
def test_the_offset_waits_for_the_fsync(test_settings: Settings, unsynced_redis: str,
                                        mode: str) -> None:
    settings = test_settings.model_copy(update={
        "broker_url": unsynced_redis, "registry_url": unsynced_redis,
        "bridge_durable": mode, "bridge_durable_timeout_ms": 200})
    client = redis.Redis.from_url(unsynced_redis)
    registry = Registry.from_url(unsynced_redis)
    registry.register("af-9", cluster_name="af-9-cluster")
    app = create_app(settings)
    bridge = Bridge(settings, app=app, registry=registry)
    topic = topic_of(settings, "event")
    bridge.subscribe()
    try:
        produce(settings, topic, [(f"af-9::event::e{i}", EVENT) for i in range(RECORDS)])
        wait_for(lambda: (_run(bridge, 0.5), client.llen(queue_for("af-9")))[1],
                 timeout=60, what="the tasks in Redis")
        # Every record is published and acknowledged; commits came due many times.
        _run(bridge, 3.0)
        assert client.llen(queue_for("af-9")) >= 1
        if mode == "off":
            assert committed_count(settings, topic) == RECORDS
            return
        assert committed_count(settings, topic) == 0, \
            "committed offsets of tasks that are on no disk"
        client.config_set("appendonly", "yes")
        wait_for(lambda: (_run(bridge, 0.5), committed_count(settings, topic))[1] == RECORDS,
                 timeout=60, what="the commit once the append-only file has the tasks")
    finally:
        bridge.shutdown()
        registry.close()
        client.close()
        app.close()
