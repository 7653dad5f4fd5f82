"""docker-compose.yml, checked without a Docker engine (none runs here).

The files are validated against the Compose Specification's JSON schema (the copy that
check-jsonschema ships), after Compose's interpolation with .env.example's variables;
every kgcelery service's environment must build a valid Settings object; the topic
service must create every topic those settings name (and does, against a real Kafka
protocol broker: Tansu); beat must run exactly once.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from confluent_kafka.admin import AdminClient, ConfigResource

from kgcelery.embedded.binaries import redis_server_binary, tansu_binary
from kgcelery.embedded.process import ManagedProcess
from kgcelery.embedded.stack import free_port, port_in_use
from kgcelery.kafka import all_topics, topic_specs
from kgcelery.settings import Settings
from tests.deploy_support import (
    COMPOSE,
    ENTERPRISE,
    ENV_EXAMPLE,
    ROOT,
    InterpolationError,
    documented_variables,
    example_environment,
    kgcelery_services,
    load_compose,
    referenced_variables,
    settings_env,
)
from tests.helpers import serving, wait_for


def compose_schema_validator() -> Any:
    schema = json.loads((importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
                         / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a container with this environment builds them."""
    with monkeypatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("KGCELERY_")]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        return Settings()


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load_compose(COMPOSE)


@pytest.fixture(scope="module")
def enterprise() -> dict[str, Any]:
    return load_compose(COMPOSE, ENTERPRISE)


def test_compose_files_follow_the_compose_specification(base: dict[str, Any],
                                                        enterprise: dict[str, Any]) -> None:
    validator = compose_schema_validator()
    override = load_compose(ENTERPRISE)
    for name, model in (("docker-compose.yml", base), ("with the enterprise override",
                                                       enterprise), ("override", override)):
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(model)]
        assert not errors, f"{name}: {errors}"
    # The schema bites: a misspelt key is refused.
    broken = json.loads(json.dumps(base))
    broken["services"]["beat"]["replica"] = 1
    assert list(validator.iter_errors(broken))


def test_secrets_come_from_env_and_are_documented_not_committed() -> None:
    used = set()
    for path in (COMPOSE, ENTERPRISE):
        used |= referenced_variables(path.read_text())
    documented = documented_variables()
    assert used <= set(documented), f".env.example lacks {sorted(used - set(documented))}"
    assert all(value in ("", "yes") for value in documented.values()), \
        ".env.example must not carry a password"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    # Without .env, docker compose up stops with a message saying what to do.
    with pytest.raises(InterpolationError, match=r"\.env"):
        load_compose(COMPOSE, env={})
    raw = yaml.safe_load(COMPOSE.read_text())["x-kgcelery-env"]
    assert "${NEO4J_PASSWORD" in raw["KGCELERY_GRAPH_PASSWORD"]
    assert "${REDIS_PASSWORD" in raw["KGCELERY_BROKER_URL"]
    assert ENV_EXAMPLE.name in COMPOSE.read_text()


@pytest.mark.parametrize("files", ["base", "enterprise"])
def test_every_service_environment_is_valid_settings(files: str, base: dict[str, Any],
                                                     enterprise: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    model = base if files == "base" else enterprise
    services = kgcelery_services(model)
    assert {"topics", "bridge", "beat", "control-worker", "fleet", "flower"} <= set(services)
    envs = {name: settings_env(service["environment"]) for name, service in services.items()}
    for name, env in envs.items():
        unknown = {k for k in env if k.removeprefix("KGCELERY_").lower()
                   not in Settings.model_fields}
        assert not unknown, f"{name}: {unknown} are not settings"
        settings = settings_of(env, monkeypatch)
        assert settings.graph_backend == "neo4j"
        assert settings.graph_tenancy == ("property" if files == "base" else "database")
        assert settings.scaler_backend == "celery"
        assert settings.graph_password.get_secret_value()
    # Bridge, beat and workers must agree on topics, queues and the graph.
    assert len({json.dumps(env, sort_keys=True) for env in envs.values()}) == 1
    flower_options = {k for k in services["flower"]["environment"] if k.startswith("FLOWER_")}
    from flower.options import default_options

    assert flower_options == {"FLOWER_BASIC_AUTH"}
    assert all(k.removeprefix("FLOWER_").lower() in default_options for k in flower_options)


def test_the_topics_service_covers_every_topic_of_the_settings(
        base: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    service = base["services"]["topics"]
    assert service["command"][:3] == ["kgcelery", "topics", "create"]
    assert service["restart"] == "no"
    settings = settings_of(settings_env(service["environment"]), monkeypatch)
    specs = {spec.name: spec for spec in topic_specs(settings)}
    wanted = {*settings.topics, settings.dlq_raw_topic, settings.dlq_normalized_topic}
    assert set(specs) == wanted and {"dlq.raw", "dlq.normalized"} <= wanted
    assert specs["raw.k8s.logs"].partitions == 8
    assert specs["cluster.registry"].config["cleanup.policy"] == "compact"
    assert int(specs["dlq.raw"].config["retention.ms"]) > \
        int(specs["raw.k8s.events"].config["retention.ms"])
    # Everything that uses Kafka starts only once the topics exist.
    for name in ("bridge", "fleet", "control-worker"):
        condition = base["services"][name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully"


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[str]:
    """A Tansu of its own: the topics service is tested on an empty broker."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with serving("tansu-topics", [str(tansu_binary(Settings())), "broker",
                                  "--listener-url", url, "--advertised-listener-url", url,
                                  "--storage-engine", "memory://tansu/"],
                 port, tmp_path, what="Tansu listening", timeout=30):
        yield f"127.0.0.1:{port}"


@pytest.mark.integration
def test_the_topics_service_creates_them_on_kafka(base: dict[str, Any], tansu: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`kgcelery topics create` with the service's environment, against a real broker."""
    env = {**settings_env(base["services"]["topics"]["environment"]),
           "KGCELERY_KAFKA_BOOTSTRAP_SERVERS": tansu}
    command = [sys.executable, "-m", "kgcelery", *base["services"]["topics"]["command"][1:]]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KGCELERY_")}
    first = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True,
                           timeout=90)
    assert first.returncode == 0, first.stderr
    settings = settings_of(env, monkeypatch)
    admin = AdminClient({"bootstrap.servers": tansu})
    topics = admin.list_topics(timeout=10).topics
    assert set(all_topics(settings)) <= set(topics)
    for spec in topic_specs(settings):
        assert len(topics[spec.name].partitions) == spec.partitions, spec.name
        [future] = admin.describe_configs([ConfigResource("topic", spec.name)]).values()
        described = {name: entry.value for name, entry in future.result(10).items()}
        assert described["retention.ms"] == spec.config["retention.ms"], spec.name
    second = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True,
                            timeout=90)
    assert second.returncode == 0 and "created" not in second.stdout, "idempotent"


@pytest.mark.integration
def test_topics_create_makes_a_chart_1_0_clients_own_topics(tansu: str) -> None:
    """`kgcelery topics create --client` for brokers that do not create topics on first
    write: the client's topics as KGCELERY_CLIENT_TOPICS names them."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KGCELERY_")}
    env = {**clean, "KGCELERY_KAFKA_BOOTSTRAP_SERVERS": tansu,
           "KGCELERY_CLIENT_TOPICS": "chart-1.0"}
    command = [sys.executable, "-m", "kgcelery", "topics", "create", "--client", "old-chart-1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    topics = set(AdminClient({"bootstrap.servers": tansu}).list_topics(timeout=10).topics)
    assert {f"old-chart-1.{suffix}" for suffix in (
        "state.k8s.resource", "state.k8s.topology", "events.normalized", "logs.normalized",
        "alerts.raw")} <= topics
    assert "created old-chart-1.events.normalized" in done.stdout
    # Without templates there is nothing to name a client's topics: a usage error.
    refused = subprocess.run(command, env={**env, "KGCELERY_CLIENT_TOPICS": ""},
                             capture_output=True, text=True, timeout=90)
    assert refused.returncode == 2 and "KGCELERY_CLIENT_TOPICS" in refused.stderr


def test_beat_runs_exactly_once(base: dict[str, Any]) -> None:
    services = kgcelery_services(base)
    beats = [name for name, s in services.items() if "beat" in s["command"]]
    assert beats == ["beat"]
    assert services["beat"]["deploy"]["replicas"] == 1
    for name, service in services.items():
        assert not {"-B", "--beat"} & set(service["command"]), f"{name} embeds a beat"


def test_the_fleet_is_what_the_celery_scaler_looks_for(base: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    services = kgcelery_services(base)
    settings = settings_of(settings_env(services["fleet"]["environment"]), monkeypatch)

    def node(service: str) -> str:
        command = services[service]["command"]
        return command[command.index("-n") + 1].replace("%h", "3f2a9c1d0e4b")

    assert fnmatch.fnmatchcase(node("fleet"), settings.fleet_worker_pattern)
    assert not fnmatch.fnmatchcase(node("control-worker"), settings.fleet_worker_pattern)
    assert settings.scale_max_workers <= services["fleet"]["deploy"]["replicas"]
    grace = int(services["fleet"]["stop_grace_period"].removesuffix("s"))
    assert grace > settings.task_time_limit_s, "warm shutdown must outlast a task"


def test_services_start_in_order_with_limits_and_named_volumes(base: dict[str, Any]) -> None:
    services = base["services"]
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert how["condition"] in ("service_healthy", "service_completed_successfully")
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
        assert service["deploy"]["resources"]["limits"]["memory"], name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in base["volumes"], f"{name}: {volume} is not named"
    assert services["bridge"]["deploy"]["replicas"] == 2
    assert "--appendonly yes" in services["redis"]["command"][2]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # The exact versions are those the JVM tier runs (tests/test_jvm_stack.py).
    assert services["neo4j"]["image"].endswith("-community")
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published), "nothing beyond this host"


def test_redis_runs_as_composed_without_its_password_on_argv(base: dict[str, Any],
                                                            tmp_path: Path) -> None:
    """The compose command of Redis, run with a real redis-server (the embedded stack's):
    the password is required but appears on no command line, and maxmemory leaves half
    the container's memory to the AOF rewrite's fork."""
    import redis

    service = base["services"]["redis"]
    shell, flag, script = service["command"]
    assert (shell, flag) == ("sh", "-c")
    port = free_port()
    binary = str(redis_server_binary(Settings()))
    script = script.replace("exec redis-server", f"exec {binary} --port {port} --dir {tmp_path}")
    password = service["environment"]["REDIS_PASSWORD"]
    server = ManagedProcess("compose-redis", [shell, flag, script], run_dir=tmp_path,
                            log_dir=tmp_path, env={**os.environ, "REDIS_PASSWORD": password})
    server.start()
    client = redis.Redis(port=port, password=password)
    try:
        wait_for(lambda: port_in_use(port), timeout=20, what="redis-server")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).set("k", "v")
        config = client.config_get("*")
        # KGCELERY_BRIDGE_DURABLE=aof's WAITAOF answers at once on a Redis that fsyncs
        # each write before its reply.
        assert config["appendonly"] == "yes" and config["appendfsync"] == "always"
        assert config["maxmemory-policy"] == "noeviction"
        limit = service["deploy"]["resources"]["limits"]["memory"]
        assert int(config["maxmemory"]) * 2 <= int(limit.removesuffix("g")) * 1024 ** 3
        pid = int(client.info("server")["process_id"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert password not in cmdline, cmdline
    finally:
        client.close()
        server.stop()


def test_kafka_and_neo4j_settings_as_a_platform_team_wants(base: dict[str, Any]) -> None:
    services = base["services"]
    kafka = services["kafka"]
    assert kafka["environment"]["CLUSTER_ID"] == example_environment()["KAFKA_CLUSTER_ID"]
    assert "KAFKA_HEAP_OPTS=-Xmx64m" in kafka["healthcheck"]["test"][1], \
        "the healthcheck's JVM must not take the broker's heap every 10 s"
    neo4j = services["neo4j"]["environment"]
    assert neo4j["NEO4J_server_memory_heap_initial__size"] == \
        neo4j["NEO4J_server_memory_heap_max__size"]
    # As the embedded stack's (KgNeo4j.java): one plan per statement, whatever its sizes.
    assert neo4j["NEO4J_internal_cypher_use__parameter__size"] == "false"
    kgcelery = kgcelery_services(base)
    for role in ("bridge", "beat"):
        test = kgcelery[role]["healthcheck"]["test"]
        assert test[1:5] == ["python", "-m", "kgcelery.liveness", role], role
        assert kgcelery[role]["environment"]["KGCELERY_LIVENESS_DIR"] == "/tmp"
    for name, service in services.items():
        image = service["image"]
        tag = image.rpartition(":")[2]
        if name not in ("kafka", "neo4j") and service.get("build") is None:
            assert tag[0].isdigit() and tag.count(".") == 2, f"{name}: {image} is not exact"
