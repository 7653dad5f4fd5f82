"""The agents' own client: Debian's kcat (librdkafka) sends the kg-rca-agent chart's
registration, heartbeat and deregistration lines (AGENT_FORMATS.md rows 1-4) to Apache
Kafka, and the bridge registers, beats and deregisters the client.

The command lines are the chart's (anuragvishwa/kgroot-latest, client-light/helm-chart/
templates/), with the Helm values filled in, the test's own topic names and the broker
address. Rows 2 and 4 are kcat in the chart; rows 1 and 3 are ``kafka-console-producer``
there, sent here with the kcat flags that put the same key and value on the topic
(``parse.key`` + ``key.separator=::`` is ``-K::``; ``null.marker=`` on an empty value is
``-Z``, a null value).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kgcelery.control.registry import ACTIVE, DRAINING, Registry
from kgcelery.kafka import ensure_topics
from kgcelery.settings import DEFAULT_TOPICS, Settings
from tests.control_support import control_settings
from tests.helpers import Processes, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.jvm]

_counter = itertools.count(1)
CHART_VERSION = "2.1.0"

#: cluster-registry-job (row 1), as kcat: the console producer's parse.key with "::".
CLUSTER_REGISTRY = """\
echo "$CLIENT_ID"'::{"client_id":"'"$CLIENT_ID"'","cluster_name":"'"$CLUSTER_NAME"'","region":"eu-west-1","timestamp":"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'","chart_version":"'"$CHART_VERSION"'"}' | \\
kcat -P -b "$BROKERS" -t "$REGISTRY_TOPIC" -K::
"""  # noqa: E501 - the chart's line

#: register-cluster-job (row 2), exactly.
REGISTER_CLUSTER = """\
REGISTRATION='{"client_id":"'"$CLIENT_ID"'","cluster_name":"'"$CLUSTER_NAME"'","version":"'"$CHART_VERSION"'","registered_at":"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'","metadata":{"namespace":"kg-agent","release_name":"kg-agent","chart_version":"'"$CHART_VERSION"'"}}'
echo "$REGISTRATION" | kcat -P \\
  -b "$BROKERS" \\
  -t "$REGISTRY_TOPIC" \\
  -K: \\
  -k "$CLIENT_ID"
"""  # noqa: E501 - the chart's line

#: heartbeat-cronjob (row 4), exactly.
HEARTBEAT = """\
HEARTBEAT='{"client_id":"'"$CLIENT_ID"'","timestamp":"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'"}'
echo "$HEARTBEAT" | kcat -P \\
  -b "$BROKERS" \\
  -t "$HEARTBEAT_TOPIC" \\
  -K:: \\
  -k "$CLIENT_ID"
"""

#: deregister-cluster-job (row 3), as kcat: "<id>:" with an empty value sent as null.
DEREGISTER_CLUSTER = """\
echo "$CLIENT_ID:" | kcat -P -b "$BROKERS" -t "$REGISTRY_TOPIC" -K: -Z
"""


def _kcat() -> str:
    found = shutil.which("kcat")
    if found:
        return found
    why = "no kcat on PATH (make kcat, or apt-get install kcat)"
    if os.environ.get("KGCELERY_REQUIRE_JVM") == "1":
        pytest.fail(f"KGCELERY_REQUIRE_JVM=1 but {why}")
    pytest.skip(why)


@pytest.fixture
def agent_settings(jvm_stack: Settings, tmp_path: Path) -> Settings:
    """The session's Apache Kafka with this test's topics and group; a Redis database of
    its own for the registry."""
    prefix = f"kcat{next(_counter)}-{os.getpid()}."
    base = jvm_stack.model_copy(update={
        "topics": {prefix + topic: kind for topic, kind in DEFAULT_TOPICS.items()},
        "dlq_raw_topic": prefix + "dlq.raw", "dlq_normalized_topic": prefix + "dlq.normalized",
        "consumer_group": prefix + "bridge"})
    ensure_topics(base)
    return control_settings(base, tmp_path)


def agent(script: str, settings: Settings, client_id: str) -> None:
    """Run one of the chart's shell steps, as its job's container would."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CLIENT_ID": client_id,
           "CLUSTER_NAME": f"{client_id}-cluster", "CHART_VERSION": CHART_VERSION,
           "BROKERS": settings.kafka_bootstrap_servers,
           "REGISTRY_TOPIC": settings.topics_of("registry")[0],
           "HEARTBEAT_TOPIC": settings.topics_of("heartbeat")[0]}
    done = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, f"kcat failed ({done.returncode}):\n{done.stderr}"


def wait_for_record(registry: Registry, client_id: str, check: Callable[[Any], bool],
                    what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = registry.get(client_id)
        if record is not None and check(record):
            return
        time.sleep(0.2)
    raise AssertionError(f"{client_id}: not {what} after {timeout:.0f} s "
                         f"(registry: {registry.get(client_id)})")


def test_kcat_lands_the_charts_records_on_apache_kafka(agent_settings: Settings) -> None:
    """What the chart's lines put on the topics (this part needs no bridge)."""
    _kcat()
    client = f"kcat-{next(_counter)}-a"
    agent(REGISTER_CLUSTER, agent_settings, client)
    agent(HEARTBEAT, agent_settings, client)
    agent(DEREGISTER_CLUSTER, agent_settings, client)
    registry_records = read_topic(agent_settings, agent_settings.topics_of("registry")[0],
                                  expect=2, timeout=30)
    heartbeats = read_topic(agent_settings, agent_settings.topics_of("heartbeat")[0],
                            expect=1, timeout=30)
    # Row 2: the line split at its first ':'; row 3: a tombstone under the bare id (the
    # two keys may land on different partitions: no order between them).
    registration = next(m for m in registry_records if m.value() is not None)
    tombstone = next(m for m in registry_records if m.value() is None)
    assert registration.key() == b'{"client_id"'
    assert registration.value().startswith(f'"{client}","cluster_name"'.encode())
    assert tombstone.key() == client.encode()
    assert heartbeats[0].key() == client.encode()
    assert heartbeats[0].value().startswith(f'{{"client_id":"{client}"'.encode())


def test_the_charts_kcat_lines_register_beat_and_deregister_a_client(
        agent_settings: Settings, tmp_path: Path) -> None:
    _kcat()
    one, two = f"kcat-{next(_counter)}-a", f"kcat-{next(_counter)}-b"
    processes = Processes(agent_settings, tmp_path / "logs")
    registry = Registry.from_url(agent_settings.registry_url)
    try:
        processes.bridge(agent_settings)
        agent(CLUSTER_REGISTRY, agent_settings, one)
        agent(REGISTER_CLUSTER, agent_settings, two)
        for client in (one, two):
            wait_for_record(registry, client,
                            lambda r: r.state == ACTIVE and r.cluster_name.endswith("-cluster"),
                            "registered")
        before = registry.get(two)
        assert before is not None
        agent(HEARTBEAT, agent_settings, two)
        wait_for_record(registry, two, lambda r: r.last_heartbeat is not None
                        and r.last_heartbeat != before.last_heartbeat, "beating")
        agent(DEREGISTER_CLUSTER, agent_settings, two)
        wait_for_record(registry, two, lambda r: r.state == DRAINING, "deregistered")
        record = registry.get(one)
        assert record is not None and record.state == ACTIVE
    finally:
        processes.stop_all()
        registry.close()
