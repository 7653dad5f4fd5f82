"""``EmbeddedStack.restart_dead``: a server of a started stack that died is started
again, with its data (Redis's append-only file) or, for Tansu, which keeps its topics in
memory, with the topics created again; servers still alive are left alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from kgcelery.embedded.process import pid_alive
from kgcelery.embedded.stack import EmbeddedStack, free_port
from kgcelery.kafka import common_config
from kgcelery.settings import Settings
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_dead_servers_are_started_again_with_their_data_and_topics(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", embedded_kafka_port=free_port(),
                        embedded_broker_port=free_port(), embedded_graph_port=free_port(),
                        topic_partitions=1)
    with EmbeddedStack(settings) as stack:
        assert stack.restart_dead() == []  # all alive: nothing to do
        broker = redis.Redis.from_url(settings.broker_url)
        broker.set("survives", "yes")
        time.sleep(1.5)  # the append-only file's fsync (everysec)
        crashed = {service.name: service.process.pid for service in (stack.kafka, stack.broker)}
        stack.kafka.process.kill()
        stack.broker.process.kill()
        assert not stack.kafka.process.alive() and not stack.broker.process.alive()

        assert sorted(stack.restart_dead()) == ["broker", "kafka"]

        for service in (stack.kafka, stack.broker):
            assert service.process.alive() and service.process.pid != crashed[service.name]
            assert pid_alive(service.process.pid or 0)
        assert stack.graph.process.alive()
        assert broker.get("survives") == b"yes"
        admin = AdminClient(common_config(settings))
        wait_for(lambda: set(settings.topics) <= set(admin.list_topics(timeout=5).topics),
                 timeout=30, what="every topic created again on the new Tansu")
