"""Kafka security settings and topic specs: what every client gets, and librdkafka's
own word that it accepts it (a client is built with each configuration; building one
loads the CA and the client certificate, so a wrong property or file fails here)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError

from kgcelery.embedded.stack import free_port
from kgcelery.kafka import common_config, consumer_config, producer_config, topic_specs
from kgcelery.settings import Settings


@pytest.fixture(scope="module")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its encrypted key, made by openssl."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "client.pem", where / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "1",
                    "-subj", "/CN=kgcelery-test", "-keyout", str(key), "-out", str(cert),
                    "-passout", "pass:key-pw"], check=True, capture_output=True)
    return cert, key


def _dead(**fields: Any) -> Settings:
    return Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", **fields)


def test_plaintext_adds_nothing() -> None:
    settings = _dead()
    assert common_config(settings) == {"bootstrap.servers": settings.kafka_bootstrap_servers}


def test_sasl_ssl_reaches_every_client(client_certificate: tuple[Path, Path]) -> None:
    ca, _ = client_certificate
    settings = _dead(kafka_security_protocol="SASL_SSL", kafka_sasl_username="kg",
                     kafka_sasl_password="pw", kafka_ssl_ca_location=ca,
                     kafka_extra_config={"ssl.endpoint.identification.algorithm": "https"})
    expected = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "kg", "sasl.password": "pw",
                "ssl.ca.location": str(ca),
                "ssl.endpoint.identification.algorithm": "https"}
    for config in (common_config(settings), producer_config(settings),
                   consumer_config(settings)):
        assert expected.items() <= config.items()
    Producer(producer_config(settings)).flush(0)
    AdminClient(common_config(settings))


def test_mutual_tls_loads_the_client_certificate(client_certificate: tuple[Path, Path]) -> None:
    cert, key = client_certificate
    settings = _dead(kafka_security_protocol="SSL", kafka_ssl_ca_location=cert,
                     kafka_ssl_certificate_location=cert, kafka_ssl_key_location=key,
                     kafka_ssl_key_password="key-pw")
    config = common_config(settings)
    assert config["ssl.key.password"] == "key-pw" and "sasl.username" not in config
    Producer(producer_config(settings)).flush(0)
    wrong = _dead(kafka_security_protocol="SSL", kafka_ssl_certificate_location=cert,
                  kafka_ssl_key_location=key, kafka_ssl_key_password="not-it")
    with pytest.raises(KafkaException, match=r"ssl\.key\.location"):
        Producer(producer_config(wrong))


@pytest.mark.parametrize(("fields", "message"), [
    ({"kafka_security_protocol": "SASL_SSL"}, "KGCELERY_KAFKA_SASL_USERNAME"),
    ({"broker_url": "rediss://:pw@redis:6380/0"}, "ssl_cert_reqs"),
    ({"topic_overrides": {"raw.k8s.logz": {"partitions": 2}}}, "raw.k8s.logz"),
    ({"topic_overrides": {"raw.k8s.logs": {"partitions": 0}}}, "positive integer"),
])
def test_settings_refuse_unsafe_or_mistaken_security_and_topics(fields: dict[str, Any],
                                                                message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**fields)


def test_rediss_with_explicit_certificate_checks_is_accepted() -> None:
    url = "rediss://:pw@redis:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem"
    assert Settings(broker_url=url).registry_url == url


def test_topic_specs_give_dead_letters_longer_retention_and_honour_overrides() -> None:
    settings = Settings(topic_partitions=3, topic_replication_factor=2,
                        topic_overrides={"raw.k8s.logs": {"partitions": 12,
                                                          "retention.ms": 3600000},
                                         "cluster.registry": {"cleanup.policy": "compact"}})
    specs = {spec.name: spec for spec in topic_specs(settings)}
    assert specs["raw.k8s.events"].partitions == 3
    assert specs["raw.k8s.events"].replication_factor == 2
    assert specs["raw.k8s.events"].config == {"retention.ms": str(7 * 24 * 3600 * 1000)}
    assert specs["dlq.raw"].config == {"retention.ms": str(30 * 24 * 3600 * 1000)}
    assert (specs["raw.k8s.logs"].partitions, specs["raw.k8s.logs"].config) == (
        12, {"retention.ms": "3600000"})
    assert specs["cluster.registry"].config["cleanup.policy"] == "compact"
    assert {s.partitions for s in topic_specs(settings, ["x", "y"], partitions=1)} == {1}
