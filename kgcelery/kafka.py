"""Kafka client configuration and topic administration, shared by every Kafka user.

Every client gets the same connection and security settings from :func:`common_config`
(SASL, TLS and any extra librdkafka properties), so a bridge, a dead-letter writer, a
replay and a health check all reach a secured cluster the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from kgcelery.settings import Settings


def security_config(settings: Settings) -> dict[str, Any]:
    """librdkafka properties for SASL and TLS; empty for a plaintext cluster."""
    s = settings
    config: dict[str, Any] = {}
    if s.kafka_security_protocol != "PLAINTEXT":
        config["security.protocol"] = s.kafka_security_protocol
    if s.kafka_security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = s.kafka_sasl_mechanism
        config["sasl.username"] = s.kafka_sasl_username
        config["sasl.password"] = s.kafka_sasl_password.get_secret_value()
    if s.kafka_security_protocol.endswith("SSL"):
        for key, path in (("ssl.ca.location", s.kafka_ssl_ca_location),
                          ("ssl.certificate.location", s.kafka_ssl_certificate_location),
                          ("ssl.key.location", s.kafka_ssl_key_location)):
            if path is not None:
                config[key] = str(path)
        if s.kafka_ssl_key_password.get_secret_value():
            config["ssl.key.password"] = s.kafka_ssl_key_password.get_secret_value()
    return config


def common_config(settings: Settings) -> dict[str, Any]:
    """What every client needs: where Kafka is and how to log in; extras last."""
    return {"bootstrap.servers": settings.kafka_bootstrap_servers,
            **security_config(settings), **settings.kafka_extra_config}


#: How soon a bridge subscribed by pattern sees the topics of a client that is new.
CLIENT_TOPICS_REFRESH_MS = 30_000


def consumer_config(settings: Settings, *, group: str | None = None) -> dict[str, Any]:
    """A consumer that commits by hand and joins a group quickly."""
    return {
        **common_config(settings),
        "group.id": group or settings.consumer_group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # librdkafka's defaults make a group join on Tansu take ~23 s; these take ~3 s.
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
        # A pattern subscription (KGCELERY_CLIENT_TOPICS) sees a new client's topics at
        # the next metadata refresh: every 30 s rather than librdkafka's 5 minutes.
        **({"topic.metadata.refresh.interval.ms": CLIENT_TOPICS_REFRESH_MS}
           if settings.client_topics else {}),
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    """An idempotent producer: retries never duplicate or reorder."""
    return {
        **common_config(settings),
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "none",
    }


def all_topics(settings: Settings) -> list[str]:
    """Every topic kgcelery reads or writes: inputs and dead letters."""
    return [*settings.topics, settings.dlq_raw_topic, settings.dlq_normalized_topic]


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is created: partitions, replicas and topic configs."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings, topics: list[str] | None = None, *,
                partitions: int | None = None) -> list[TopicSpec]:
    """The specs of ``topics`` (default: every topic kgcelery uses).

    Input topics keep records ``TOPIC_RETENTION_MS``, dead letters ``DLQ_RETENTION_MS``
    (longer: they wait for someone to replay them); ``TOPIC_OVERRIDES`` has the last word.
    ``partitions`` forces a count on every topic (benchmarks).
    """
    dead_letters = {settings.dlq_raw_topic, settings.dlq_normalized_topic}
    specs = []
    for name in topics if topics is not None else all_topics(settings):
        retention = settings.dlq_retention_ms if name in dead_letters \
            else settings.topic_retention_ms
        override = dict(settings.topic_overrides.get(name, {}))
        count = int(override.pop("partitions", settings.topic_partitions))
        config = {"retention.ms": str(retention), **{k: str(v) for k, v in override.items()}}
        specs.append(TopicSpec(name, partitions or count, settings.topic_replication_factor,
                               config))
    return specs


def ensure_topics(settings: Settings, topics: list[str] | None = None, *,
                  partitions: int | None = None, timeout: float = 10.0) -> list[str]:
    """Create the topics that do not exist yet, as :func:`topic_specs` says; return the
    ones created. Existing topics are left as they are (Kafka cannot shrink partitions,
    and changing retention under running consumers is an operator's decision)."""
    admin = AdminClient(common_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in topic_specs(settings, topics, partitions=partitions)
               if spec.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(spec.name, spec.partitions, spec.replication_factor, config=spec.config)
         for spec in missing], operation_timeout=timeout)
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
