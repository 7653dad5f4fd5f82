"""Settings derivation and validation; timestamp parsing; expiry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kgcelery.control.expiry import is_expired
from kgcelery.model.timeparse import first_epoch, iso, to_epoch
from kgcelery.settings import Settings


def test_addresses_follow_the_embedded_ports() -> None:
    settings = Settings(embedded_kafka_port=1111, embedded_broker_port=2222,
                        embedded_graph_port=3333)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:1111"
    assert settings.broker_url == "redis://127.0.0.1:2222/0"
    assert settings.registry_url == settings.broker_url
    assert settings.graph_uri == "redis://127.0.0.1:3333"


def test_explicit_addresses_win_and_env_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGCELERY_BROKER_URL", "redis://redis:6379/1")
    monkeypatch.setenv("KGCELERY_TOPICS", '{"my.events": "event"}')
    settings = Settings()
    assert settings.broker_url == "redis://redis:6379/1"
    assert settings.topics == {"my.events": "event"}
    # What a parent hands its children reads back as the same settings.
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


@pytest.mark.parametrize("bad", [
    {"topics": {"t": "nonsense"}},
    {"visibility_timeout_s": 10, "task_time_limit_s": 10},
    {"scale_min_workers": 5, "scale_max_workers": 2},
    {"batch_max_records": 0},
])
def test_invalid_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().broker_url = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("value", "expected"), [
    ("2025-09-11T15:50:01Z", 1757605801.0),
    ("2025-09-11T15:50:01.123456789Z", 1757605801.123456),
    ("2025-09-11T17:50:01+02:00", 1757605801.0),
    ("2025-09-11 15:50:01", 1757605801.0),
    (1757605801, 1757605801.0),
    (1757605801000, 1757605801.0),
    (1757605801000000000, 1757605801.0),
    ("1757605801", 1757605801.0),
    ("0001-01-01T00:00:00Z", None),
    (None, None),
    ("", None),
])
def test_to_epoch(value: object, expected: float | None) -> None:
    result = to_epoch(value)
    assert result == pytest.approx(expected) if expected is not None else result is None


def test_first_epoch_skips_garbage_and_iso_round_trips() -> None:
    assert first_epoch("garbage", None, "2025-09-11T15:50:01Z") == 1757605801.0
    assert iso(1757605801.0) == "2025-09-11T15:50:01Z"
    assert iso(None) == ""
    with pytest.raises(ValueError):
        to_epoch("yesterday")
    with pytest.raises(ValueError):  # text is cached, errors are not: raised every time
        to_epoch("yesterday")


@pytest.mark.parametrize(("now", "seen", "ttl", "expired"), [
    (1000.0, None, 120, False),      # never seen: not started yet
    (1000.0, 1000.0, 120, False),
    (1000.0, 880.0, 120, False),     # exactly the ttl: still alive
    (1000.0, 879.9, 120, True),
    (1000.0, 5000.0, 120, False),    # clock skew: a time in the future
    (1000.0, 999.0, 0.5, True),
])
def test_is_expired(now: float, seen: float | None, ttl: float, expired: bool) -> None:
    assert is_expired(now, seen, ttl) is expired


def test_task_events_are_on_by_default_and_can_be_turned_off() -> None:
    from kgcelery.app import create_app

    assert create_app(Settings()).conf.worker_send_task_events is True
    quiet = create_app(Settings(task_events=False)).conf
    assert quiet.worker_send_task_events is False and quiet.task_send_sent_event is False
