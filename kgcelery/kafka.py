"""Kafka client configuration and topic administration, shared by every Kafka user."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from kgcelery.settings import Settings


def common_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka_bootstrap_servers}


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


def ensure_topics(settings: Settings, topics: list[str] | None = None, *,
                  partitions: int | None = None, timeout: float = 10.0) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    admin = AdminClient(common_config(settings))
    wanted = topics if topics is not None else all_topics(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [topic for topic in wanted if topic not in existing]
    if not missing:
        return []
    count = partitions or settings.topic_partitions
    futures = admin.create_topics([NewTopic(topic, count, 1) for topic in missing],
                                  operation_timeout=timeout)
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
