"""``kgcelery check ...`` against real services: 0 when they answer, 1 when not.

The session's embedded stack (Tansu, Redis, FalkorDB) is up; a dead port is a port
nothing listens on. Lag is measured on records produced one by one: Tansu 0.6 reports
a high watermark as the last *batch*'s base offset + 1, which is exact only then.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from kgcelery.checks import consumer_lag, partition_lag, redact
from kgcelery.embedded.binaries import redis_server_binary
from kgcelery.embedded.stack import free_port
from kgcelery.kafka import common_config, producer_config
from kgcelery.settings import Settings
from tests.conftest import topic_of
from tests.helpers import Processes, serving, wait_for


def kgcelery(*args: str, settings: Settings, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGCELERY_")}
    env.update(settings.to_env())
    env.update(overrides)
    return subprocess.run([sys.executable, "-m", "kgcelery", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("committed", "low", "high", "lag"), [
    (-1001, 0, 0, 0),      # nothing written, nothing committed
    (-1001, 0, 7, 7),      # nothing committed: the group would start at the low mark
    (-1001, 5, 7, 2),      # ... which retention may have moved
    (3, 0, 7, 4),
    (7, 0, 7, 0),
    (2, 5, 7, 2),          # committed below what retention kept: from the low mark
    (9, 0, 7, 0),          # a watermark that reads low (Tansu) never gives a negative lag
])
def test_partition_lag(committed: int, low: int, high: int, lag: int) -> None:
    assert partition_lag(committed, low, high) == lag


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@redis:6379/0", "redis://:**@redis:6379/0"),
    ("rediss://kg:s3cret@redis/0?ssl_cert_reqs=required", "rediss://kg:**@redis/0"),
    ("redis://redis:6379/0", "redis://redis:6379/0"),
    ("bolt://neo4j:s3cret@neo4j:7687", "bolt://neo4j:**@neo4j:7687/"),
])
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.integration
def test_checks_pass_against_the_running_stack(test_settings: Settings) -> None:
    for check in (["redis"], ["kafka"], ["kafka", "--topics"], ["graph"], ["all"]):
        result = kgcelery("check", *check, settings=test_settings)
        assert result.returncode == 0, (check, result.stdout, result.stderr)
        assert result.stdout.startswith("ok: ")


@pytest.mark.integration
def test_checks_fail_on_a_dead_port(test_settings: Settings) -> None:
    dead = free_port()
    cases = {
        ("redis",): {"KGCELERY_BROKER_URL": f"redis://:pw@127.0.0.1:{dead}/0"},
        ("kafka", "--timeout", "2"): {"KGCELERY_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dead}"},
        ("graph",): {"KGCELERY_GRAPH_URI": f"redis://127.0.0.1:{dead}"},
        ("all", "--timeout", "2"): {"KGCELERY_REGISTRY_URL": f"redis://127.0.0.1:{dead}/0"},
        ("lag", "--timeout", "2"): {"KGCELERY_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dead}"},
        ("bridge",): {"KGCELERY_REGISTRY_URL": f"redis://127.0.0.1:{dead}/0"},
    }
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = dict(zip(cases, pool.map(
            lambda case: kgcelery("check", *case[0], settings=test_settings, **case[1]),
            cases.items()), strict=True))
    for check, result in results.items():
        assert result.returncode == 1, (check, result.stdout, result.stderr)
        assert "FAIL: " in result.stderr and "Traceback" not in result.stderr, check
        assert ":pw@" not in result.stdout + result.stderr, "passwords are never printed"
    # Even settings that cannot be read answer 1: Docker reserves 2.
    broken = kgcelery("check", "redis", settings=test_settings, KGCELERY_BATCH_MAX_RECORDS="0")
    assert broken.returncode == 1 and "invalid configuration" in broken.stderr


@pytest.mark.integration
def test_check_redis_logs_in_with_the_password_of_the_url(stack_settings: Settings,
                                                          tmp_path: Path) -> None:
    port = free_port()
    with serving("redis-auth", [str(redis_server_binary(stack_settings)), "--port", str(port),
                                "--bind", "127.0.0.1", "--save", "", "--requirepass",
                                "s3cret-pw"],
                 port, tmp_path, what="redis-server with a password"):
        good = kgcelery("check", "redis", settings=stack_settings,
                        KGCELERY_BROKER_URL=f"redis://:s3cret-pw@127.0.0.1:{port}/0",
                        KGCELERY_REGISTRY_URL="")
        assert good.returncode == 0, good.stderr
        assert "s3cret" not in good.stdout and ":**@" in good.stdout
        bad = kgcelery("check", "redis", settings=stack_settings,
                       KGCELERY_BROKER_URL=f"redis://:wrong@127.0.0.1:{port}/0",
                       KGCELERY_REGISTRY_URL="")
        assert bad.returncode == 1 and "invalid username-password" in bad.stderr


@pytest.mark.integration
def test_check_worker_pings_a_worker_of_this_host(processes: Processes,
                                                  test_settings: Settings,
                                                  client_ids: list[str]) -> None:
    processes.worker(f"client.{client_ids[0]}", name=f"probe-{client_ids[0]}")
    alive = kgcelery("check", "worker", f"probe-{client_ids[0]}", settings=test_settings)
    assert alive.returncode == 0, alive.stderr
    gone = kgcelery("check", "worker", f"nobody-{client_ids[0]}", "--timeout", "1",
                    settings=test_settings)
    assert gone.returncode == 1 and "does not answer" in gone.stderr


@pytest.mark.integration
def test_check_bridge_sees_the_bridge_of_this_host(processes: Processes,
                                                   test_settings: Settings) -> None:
    # A Redis database of its own, so that bridges of other tests do not answer.
    registry_url = test_settings.broker_url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(registry_url).flushdb()
    settings = test_settings.model_copy(update={"registry_url": registry_url})
    assert kgcelery("check", "bridge", settings=settings).returncode == 1
    bridge = processes.bridge(settings)
    alive = kgcelery("check", "bridge", settings=settings)
    assert alive.returncode == 0, alive.stderr
    assert "lag" in alive.stdout
    bridge.stop()
    # Its last report (written as it stopped) lives 30 s; --max-age judges its age.
    stale = wait_for(lambda: _failed(kgcelery("check", "bridge", "--max-age", "1",
                                              settings=settings)),
                     timeout=30, what="check bridge to call the last report too old")
    assert "reported" in stale.stderr


def _failed(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str] | None:
    return result if result.returncode == 1 else None


@pytest.mark.integration
def test_check_lag_counts_what_the_group_has_not_committed(test_settings: Settings) -> None:
    topic = topic_of(test_settings, "event")
    producer = Producer(producer_config(test_settings))
    for n in range(5):
        producer.produce(topic, key=f"af-9::event::{n}", value=b"{}", partition=0)
        producer.flush(10)  # one batch per record: Tansu's watermark is exact then
    assert consumer_lag(test_settings)[f"{topic}[0]"] == 5
    behind = kgcelery("check", "lag", "--max-lag", "4", settings=test_settings)
    assert behind.returncode == 1 and "5 records behind" in behind.stderr
    assert kgcelery("check", "lag", "--max-lag", "5", settings=test_settings).returncode == 0
    consumer = Consumer({**common_config(test_settings), "group.id": test_settings.consumer_group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    finally:
        consumer.close()
    assert kgcelery("check", "lag", "--max-lag", "0", settings=test_settings).returncode == 0
