"""``kgcelery check ...``: health checks that answer with their exit code, like arq's
``--check``: 0 healthy, 1 not, and one line that says what was found.

Container healthchecks and Kubernetes probes read nothing but the exit code, and
Docker reserves 2, so even a configuration that cannot be read answers 1 here.

- ``redis``: the broker (and the registry, when elsewhere) answer PING.
- ``kafka``: the bootstrap servers answer a metadata request (``--topics``: and every
  topic kgcelery uses exists).
- ``graph``: the graph database answers.
- ``bridge``: a bridge process on this host published its stats in the last
  ``--max-age`` seconds (each bridge writes them every 5 s to a key with a TTL: the arq
  heartbeat pattern); ``--anywhere`` accepts a bridge on any host. A source (input topic
  x client, or x unkeyed) that is nearly all dead-lettered is a WARNING line: the bridge
  is healthy for everyone else, so the exit code stays 0 unless ``--strict``.
- ``lag``: the bridge group's committed offsets are at most ``--max-lag`` records behind.
- ``worker NAME``: the Celery worker ``NAME@<this host>`` answers a ping.
- ``all``: redis, kafka and graph.
"""

from __future__ import annotations

import functools
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
import redis
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from kombu.utils.url import maybe_sanitize_url

from kgcelery.cliutil import load_settings
from kgcelery.kafka import all_topics, common_config
from kgcelery.settings import Settings

EXIT_HEALTHY, EXIT_UNHEALTHY = 0, 1

#: librdkafka logs every refused connection to stderr; a check says it once, itself.
_QUIET = {"log_level": 0}


@dataclass(frozen=True)
class CheckResult:
    """What one check found; ``detail`` never contains a password."""

    name: str
    ok: bool
    detail: str
    #: Something an operator should fix that does not make the service unhealthy.
    warning: str = ""


def redact(url: str) -> str:
    """``url`` with its password masked, by kombu's own sanitizer (as Celery logs it)."""
    return str(maybe_sanitize_url(url))


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        parts.append(int(part) if part.isdigit() else 0)
    return tuple(parts)


def check_redis(settings: Settings, timeout: float = 5.0) -> CheckResult:
    """The broker and the registry Redis answer PING; the broker is Redis 6.2 or newer."""
    urls = list(dict.fromkeys([settings.broker_url, settings.registry_url]))
    for url in urls:
        client = redis.Redis.from_url(url, socket_timeout=timeout,
                                      socket_connect_timeout=timeout)
        try:
            client.ping()
            version = str(client.info("server").get("redis_version", "0"))
        except redis.RedisError as exc:
            return CheckResult("redis", False, f"{redact(url)} does not answer: {exc}")
        finally:
            client.close()
        if url == settings.broker_url and _version(version) < (6, 2):
            # kgcelery.broker waits for messages with BLMOVE (Redis 6.2).
            return CheckResult("redis", False, f"{redact(url)} runs Redis {version}; the "
                               "broker needs 6.2 or newer")
    verb = " answer" if len(urls) > 1 else " answers"
    return CheckResult("redis", True, " and ".join(map(redact, urls)) + verb)


def check_kafka(settings: Settings, timeout: float = 5.0, *,
                topics: bool = False) -> CheckResult:
    """The bootstrap servers answer; with ``topics``, every topic kgcelery uses exists."""
    admin = AdminClient({**common_config(settings), **_QUIET})
    metadata = admin.list_topics(timeout=timeout)
    where = settings.kafka_bootstrap_servers
    if topics:
        missing = [t for t in all_topics(settings) if t not in metadata.topics]
        if missing:
            return CheckResult("kafka", False, f"{where} lacks topics {missing} "
                                               "(kgcelery topics create makes them)")
    return CheckResult("kafka", True, f"{where} answers ({len(metadata.brokers)} brokers, "
                                      f"{len(metadata.topics)} topics)")


def check_graph(settings: Settings) -> CheckResult:
    from kgcelery.graph import open_store

    store = open_store(settings)
    try:
        ok = store.ping()
    finally:
        store.close()
    where = f"{settings.graph_backend} at {redact(settings.graph_uri)}"
    return CheckResult("graph", ok, where + (" answers" if ok else " does not answer"))


def check_bridge(settings: Settings, max_age: float = 30.0, *,
                 anywhere: bool = False) -> CheckResult:
    """A bridge (on this host unless ``anywhere``) reported within ``max_age`` seconds."""
    from kgcelery.bridge.metrics import read_snapshots

    client = redis.Redis.from_url(settings.registry_url, socket_timeout=5,
                                  socket_connect_timeout=5)
    try:
        snapshots = read_snapshots(client)
    finally:
        client.close()
    host = socket.gethostname()
    mine = [s for s in snapshots if anywhere or s["bridge"].rsplit("-", 1)[0] == host]
    where = "anywhere" if anywhere else f"on {host}"
    if not mine:
        return CheckResult("bridge", False, f"no bridge {where} reported in the last 30 s")
    newest = max(mine, key=lambda s: s["at"])
    age = time.time() - newest["at"]
    detail = (f"bridge {newest['bridge']} reported {age:.0f} s ago, lag "
              f"{sum(newest['lag'].values())}" + (", PAUSED" if newest["paused"] else ""))
    return CheckResult("bridge", age <= max_age, detail, warning=_floods(mine))


def _floods(snapshots: list[dict[str, Any]]) -> str:
    """The flooding sources the bridges report, in one line ("" when none)."""
    floods = {(f["topic"], f["client"]): f for s in snapshots for f in s.get("flooding", [])}
    if not floods:
        return ""
    return (f"{len(floods)} source(s) nearly all dead-lettered (consumption goes on for the "
            "rest): " + "; ".join(
                f"{topic} x {client}: {f['dead']} of the last {f['total']} ({f['reason']}: "
                f"{f['detail']})" for (topic, client), f in sorted(floods.items())))


def partition_lag(committed: int, low: int, high: int) -> int:
    """Records of one partition the group has not committed yet.

    With no commit (negative offset) the group would start at the low watermark
    (``auto.offset.reset=earliest``).
    """
    start = committed if committed >= 0 else low
    return max(0, high - max(start, low))


def consumer_lag(settings: Settings, timeout: float = 5.0) -> dict[str, int]:
    """``{"topic[partition]": lag}`` of the bridge's group over its input topics.

    XXX: Tansu 0.6 reports a high watermark as the last record batch's base offset + 1,
    so this reads low against Tansu; it is exact against Apache Kafka.
    """
    consumer = Consumer({**common_config(settings), **_QUIET,
                         "group.id": settings.consumer_group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=timeout)
        partitions = [TopicPartition(topic, p) for topic in settings.topics
                      if topic in metadata.topics for p in metadata.topics[topic].partitions]
        lags = {}
        for tp in consumer.committed(partitions, timeout=timeout):
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
            lags[f"{tp.topic}[{tp.partition}]"] = partition_lag(tp.offset, low, high)
        return lags
    finally:
        consumer.close()


def check_lag(settings: Settings, max_lag: int, timeout: float = 5.0) -> CheckResult:
    lags = consumer_lag(settings, timeout)
    total = sum(lags.values())
    worst = sorted(lags.items(), key=lambda item: -item[1])[:3]
    detail = (f"group {settings.consumer_group} is {total} records behind (limit {max_lag})"
              + (": " + ", ".join(f"{name} {lag}" for name, lag in worst if lag) if total else ""))
    return CheckResult("lag", total <= max_lag, detail)


def check_worker(settings: Settings, name: str, timeout: float = 5.0) -> CheckResult:
    """The Celery worker ``name`` (``name@<this host>`` unless it has an ``@``) answers."""
    from kgcelery.app import create_app

    node = name if "@" in name else f"{name}@{socket.gethostname()}"
    app = create_app(settings)
    try:
        replies = app.control.ping(destination=[node], timeout=timeout) or []
    finally:
        app.close()
    ok = any(node in reply for reply in replies)
    return CheckResult("worker", ok, f"{node} " + ("answers" if ok else "does not answer"))


def _run(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - any failure of a check means "unhealthy"
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}")


def _answer(*checks: tuple[str, Callable[[Settings], CheckResult]],
            strict: bool = False) -> None:
    """Print each result; exit 0 if all are healthy (and, with ``strict``, warn of
    nothing), else 1."""
    try:
        settings = load_settings()
    except SystemExit:  # load_settings said why; 2 is reserved by Docker
        sys.exit(EXIT_UNHEALTHY)
    results = [_run(name, functools.partial(check, settings)) for name, check in checks]
    for result in results:
        click.echo(f"{'ok' if result.ok else 'FAIL'}: {result.name}: {result.detail}",
                   err=not result.ok)
        if result.warning:
            click.echo(f"WARNING: {result.name}: {result.warning}", err=True)
    healthy = all(r.ok and not (strict and r.warning) for r in results)
    sys.exit(EXIT_HEALTHY if healthy else EXIT_UNHEALTHY)


_timeout = click.option("--timeout", default=5.0, show_default=True,
                        help="Seconds to wait for an answer.")


@click.group()
def check() -> None:
    """Health checks for containers, probes and scripts: exit code 0 healthy, 1 not."""


@check.command("redis")
@_timeout
def check_redis_command(timeout: float) -> None:
    """The broker Redis (and the registry Redis, if another) answers."""
    _answer(("redis", lambda s: check_redis(s, timeout)))


@check.command("kafka")
@_timeout
@click.option("--topics", is_flag=True, help="Also require every topic kgcelery uses.")
def check_kafka_command(timeout: float, topics: bool) -> None:
    """Kafka answers (KGCELERY_KAFKA_BOOTSTRAP_SERVERS, with its security settings)."""
    _answer(("kafka", lambda s: check_kafka(s, timeout, topics=topics)))


@check.command("graph")
def check_graph_command() -> None:
    """The graph database (KGCELERY_GRAPH_URI) answers."""
    _answer(("graph", check_graph))


@check.command("bridge")
@click.option("--max-age", default=30.0, show_default=True,
              help="Seconds since the bridge's last report (it reports every 5 s).")
@click.option("--anywhere", is_flag=True, help="Any bridge, not only one on this host.")
@click.option("--strict", is_flag=True,
              help="Exit 1 on a warning too (a source nearly all dead-lettered).")
def check_bridge_command(max_age: float, anywhere: bool, strict: bool) -> None:
    """A bridge process on this host (container, pod) is alive and reporting.

    Sources nearly all dead-lettered (a producer keying its records wrongly) are
    printed as a WARNING line; they stop nothing, so the exit code stays 0 unless
    --strict.
    """
    _answer(("bridge", lambda s: check_bridge(s, max_age, anywhere=anywhere)), strict=strict)


@check.command("lag")
@click.option("--max-lag", default=100_000, show_default=True,
              help="Records the bridge group may be behind, over all input topics.")
@_timeout
def check_lag_command(max_lag: int, timeout: float) -> None:
    """The bridge group keeps up: committed offsets at most --max-lag records behind."""
    _answer(("lag", lambda s: check_lag(s, max_lag, timeout)))


@check.command("worker")
@click.argument("name")
@_timeout
def check_worker_command(name: str, timeout: float) -> None:
    """The Celery worker NAME@<this host> (or NAME as given, with an @) answers a ping."""
    _answer(("worker", lambda s: check_worker(s, name, timeout)))


@check.command("all")
@_timeout
def check_all_command(timeout: float) -> None:
    """Redis, Kafka and the graph database answer."""
    _answer(("redis", lambda s: check_redis(s, timeout)),
            ("kafka", lambda s: check_kafka(s, timeout)), ("graph", check_graph))
