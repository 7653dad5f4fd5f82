"""Session fixtures: one real embedded stack per test session, processes per test.

Tests isolate themselves by their own client ids, topics and consumer groups, so one
Tansu, one broker Redis and one FalkorDB serve the whole session. Modules marked
``both_stacks`` run again on the kafka-neo4j stack (Apache Kafka, Redis, Neo4j; the JVM
tier, marked ``jvm``), started once per session too when a test needs it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from celery import Celery
from hypothesis import settings as hypothesis_settings

from kgcelery.app import create_app
from kgcelery.control.registry import Registry
from kgcelery.embedded.jvm_stack import JvmStack
from kgcelery.embedded.maven import jvm_available
from kgcelery.embedded.stack import EmbeddedStack, free_port
from kgcelery.graph import GraphStore, open_store
from kgcelery.kafka import ensure_topics
from kgcelery.settings import DEFAULT_TOPICS, Settings
from tests.control_support import control_settings
from tests.helpers import Processes

#: Real telemetry from public repositories, in the repository (tests/corpus/README.md).
CORPUS = Path(os.environ.get("KGCELERY_CORPUS", Path(__file__).parent / "corpus")).resolve()
_counter = itertools.count(1)

# Property tests explore new examples on every developer run; CI runs the same examples
# every time (a rare example found there cannot be reproduced after the fact), and
# "thorough" explores twenty times further: HYPOTHESIS_PROFILE=thorough make test.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("thorough", max_examples=2000, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _session_settings(state: Path, **values: Any) -> Settings:
    return Settings(
        state_dir=state, embedded_kafka_port=free_port(), embedded_broker_port=free_port(),
        embedded_graph_port=free_port(), embedded_neo4j_port=free_port(), topic_partitions=2,
        visibility_timeout_s=30, task_time_limit_s=20, registry_refresh_s=0.2,
        batch_max_wait_s=0.05, **values,
    )


#: The session's started stacks (see ``_session_servers_alive``).
_session_stacks: list[EmbeddedStack] = []
#: Session servers started again by ``_session_servers_alive``, for the closing summary.
_restarted: list[str] = []


@pytest.fixture(autouse=True)
def _session_servers_alive() -> None:
    """A session server that exited during an earlier test (FalkorDB 4.16 has crashed
    here) is started again before the next test: one crash fails one test, not all the
    tests after it. Said in the closing summary, with where its log is."""
    for stack in _session_stacks:
        for name in stack.restart_dead():
            _restarted.append(f"{name} (log: {stack.log_dir / name}.log)")



@pytest.fixture(scope="session")
def tansu_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of the session's pip-only stack (Tansu, Redis, FalkorDB), started here."""
    state = tmp_path_factory.mktemp("stack")
    settings = _session_settings(state)
    stack = EmbeddedStack(settings)
    stack.start()
    _session_stacks.append(stack)
    try:
        yield settings
    finally:
        _session_stacks.remove(stack)
        stack.stop()
        print(f"\nembedded stack state and logs: {state}")


#: Why the JVM tier did not run in this session, for the closing summary.
_jvm_skipped: list[str] = []


@pytest.fixture(scope="session")
def jvm_ready() -> None:
    """The JVM tier can run here (Java, Maven, the jars); else skipped, loudly (a failure
    with KGCELERY_REQUIRE_JVM=1, as in CI)."""
    why_not = jvm_available(Settings())
    if why_not:
        if os.environ.get("KGCELERY_REQUIRE_JVM") == "1":
            pytest.fail(f"KGCELERY_REQUIRE_JVM=1 but the JVM tier cannot run: {why_not}")
        _jvm_skipped.append(why_not)
        pytest.skip(f"JVM tier skipped: {why_not.splitlines()[0]}")


@pytest.fixture(scope="session")
def jvm_stack(jvm_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of the session's kafka-neo4j stack (Apache Kafka, Redis, Neo4j Community),
    started here (see ``jvm_ready``)."""
    state = tmp_path_factory.mktemp("jvm-stack")
    settings = _session_settings(state, stack="kafka-neo4j")
    stack = JvmStack(settings)
    stack.start()
    _session_stacks.append(stack)
    try:
        yield settings
    finally:
        _session_stacks.remove(stack)
        stack.stop()
        print(f"\nkafka-neo4j stack state and logs: {state}")


STACKS = ("tansu-falkordb", "kafka-neo4j")


@pytest.fixture(scope="module")
def stack_name(request: pytest.FixtureRequest) -> str:
    """The stack of this module's tests: ``tansu-falkordb`` unless marked ``both_stacks``."""
    return str(getattr(request, "param", "tansu-falkordb"))


@pytest.fixture(scope="module")
def stack_settings(stack_name: str, request: pytest.FixtureRequest) -> Settings:
    """Settings of the stack this module's tests run on (both: ``both_stacks`` marker)."""
    return cast(Settings, request.getfixturevalue(
        "jvm_stack" if stack_name == "kafka-neo4j" else "tansu_stack"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "jvm: runs on the kafka-neo4j stack (Java and Maven)")
    config.addinivalue_line(
        "markers", "both_stacks: run on tansu-falkordb and on kafka-neo4j (stack_settings)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stack_name" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
            "both_stacks"):
        metafunc.parametrize(
            "stack_name", [STACKS[0], pytest.param(STACKS[1], marks=pytest.mark.jvm)],
            indirect=True, scope="module")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"jvm_stack", "jvm_ready"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.jvm)
        # The first JVM test also starts two JVMs (~25-60 s on a loaded 2-core machine).
        if item.get_closest_marker("jvm") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(300))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _restarted:
        terminalreporter.write_sep("!", "SESSION SERVERS EXITED AND WERE STARTED AGAIN",
                                   red=True, bold=True)
        for line in _restarted:
            terminalreporter.write_line(line)
    if _jvm_skipped:
        terminalreporter.write_sep("!", "JVM TIER SKIPPED (Apache Kafka + Neo4j tests did not run)",
                                   red=True, bold=True)
        terminalreporter.write_line(_jvm_skipped[0])
        terminalreporter.write_line("CI sets KGCELERY_REQUIRE_JVM=1, where this is a failure.")


@pytest.fixture
def test_settings(stack_settings: Settings) -> Settings:
    """Settings for one test: its own topic names and consumer group, on the shared stack."""
    prefix = f"t{next(_counter)}-{os.getpid()}."
    settings = stack_settings.model_copy(update={
        "topics": {prefix + topic: kind for topic, kind in DEFAULT_TOPICS.items()},
        "dlq_raw_topic": prefix + "dlq.raw",
        "dlq_normalized_topic": prefix + "dlq.normalized",
        "consumer_group": prefix + "bridge",
    })
    ensure_topics(settings)
    return settings


def topic_of(settings: Settings, kind: str) -> str:
    """The first input topic of ``kind`` in these settings."""
    return settings.topics_of(kind)[0]


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path) -> Settings:
    """Control-plane settings: the session's stack with a Redis database and state of the
    test's own (control_support.control_settings); a module may override it."""
    return control_settings(stack_settings, tmp_path)


@pytest.fixture
def app(settings: Settings) -> Iterator[Celery]:
    """A Celery app on ``settings`` (the module's own ``settings`` where it has one)."""
    celery_app = create_app(settings)
    yield celery_app
    celery_app.close()


@pytest.fixture
def processes(test_settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(test_settings, tmp_path / "logs")
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
def registry(stack_settings: Settings) -> Iterator[Registry]:
    reg = Registry.from_url(stack_settings.registry_url)
    yield reg
    reg.close()


@pytest.fixture
def broker_redis(stack_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack_settings.broker_url)
    yield client
    client.close()


@pytest.fixture
def graph(stack_settings: Settings) -> Iterator[GraphStore]:
    store = open_store(stack_settings)
    yield store
    store.close()


@pytest.fixture
def client_ids() -> Iterator[list[str]]:
    """Fresh client ids for a test: ``c<n>-a``, ``c<n>-b``..."""
    n = next(_counter)
    yield [f"c{n}-{suffix}" for suffix in "abcdef"]


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the telemetry corpus is not at {CORPUS}; set KGCELERY_CORPUS")
    return CORPUS
