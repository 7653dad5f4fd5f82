"""Session fixtures: one real embedded stack per test session, processes per test.

Tests isolate themselves by their own client ids, topics and consumer groups, so one
Tansu, one broker Redis and one FalkorDB serve the whole session.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from hypothesis import settings as hypothesis_settings

from kgcelery.app import create_app
from kgcelery.control.registry import Registry
from kgcelery.embedded.stack import EmbeddedStack, free_port
from kgcelery.graph import GraphStore, open_store
from kgcelery.kafka import ensure_topics
from kgcelery.settings import DEFAULT_TOPICS, Settings
from tests.control_support import control_settings
from tests.helpers import Processes

CORPUS = Path(os.environ.get("KGCELERY_CORPUS", Path(__file__).parents[1] / ".." / "shared" /
                             "corpus")).resolve()
_counter = itertools.count(1)

# Property tests explore new examples on every developer run; CI runs the same examples
# every time (a rare example found there cannot be reproduced after the fact), and
# "thorough" explores twenty times further: HYPOTHESIS_PROFILE=thorough make test.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("thorough", max_examples=2000, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of the session's embedded stack (started here, stopped at the end)."""
    state = tmp_path_factory.mktemp("stack")
    settings = Settings(
        state_dir=state, embedded_kafka_port=free_port(), embedded_broker_port=free_port(),
        embedded_graph_port=free_port(), topic_partitions=2,
        visibility_timeout_s=30, task_time_limit_s=20, registry_refresh_s=0.2,
        batch_max_wait_s=0.05,
    )
    stack = EmbeddedStack(settings)
    stack.start()
    try:
        yield settings
    finally:
        stack.stop()
        print(f"\nembedded stack state and logs: {state}")


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
