"""Unit table: the state-watcher's Prometheus target records (``state.prom.targets``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.targets import TOMBSTONE, normalize_target
from tests import statewatcher_records as sw

AT = "2026-03-01T10:00:30.5Z"
LABELS = {"job": "web", "namespace": "shop", "service": "web", "pod": "web-1",
          "instance": "10.42.0.7:8080", "endpoint": "http", "container": "app"}


def _wire(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_a_target_record_as_the_state_watcher_sends_it() -> None:
    key, value = sw.target(LABELS, AT, health="down", scrape_url="http://10.42.0.7:8080/m",
                           last_scrape="2026-03-01T10:00:29.9Z", last_error="refused")
    assert key == "af-9|web|shop|web|10.42.0.7:8080"
    [target] = normalize_target(_wire(value), key)
    row = target.row()
    assert row["id"] == "PromTarget/af-9|web|shop|web|10.42.0.7:8080"
    assert {k: row["props"][k] for k in ("cluster", "job", "namespace", "service", "instance",
                                         "pod", "node", "health", "scrape_url", "last_error")} == {
        "cluster": "af-9", "job": "web", "namespace": "shop", "service": "web",
        "instance": "10.42.0.7:8080", "pod": "web-1", "node": "", "health": "down",
        "scrape_url": "http://10.42.0.7:8080/m", "last_error": "refused"}
    assert row["props"]["last_scrape"] == to_epoch("2026-03-01T10:00:29.9Z")
    assert row["link_ids"] == ["Pod/shop/web-1", "Service/shop/web"]
    # Without its key (sent by hand), the key is computed as the agent's targetKey.
    assert normalize_target(_wire(value))[0].id == target.id


def test_a_never_scraped_target_has_no_last_scrape_and_odd_health_is_unknown() -> None:
    _, value = sw.target({"job": "x", "instance": "i"}, AT, health="weird",
                         last_scrape="0001-01-01T00:00:00Z")
    [target] = normalize_target(_wire(value))
    props = target.row()["props"]
    assert (props["last_scrape"], props["health"], target.row()["link_ids"]) == (0.0, "unknown", [])


def test_a_target_tombstone_is_versioned_by_its_kafka_time_when_known() -> None:
    [timed] = normalize_target(None, "af-9|web|shop|web|i", 1772359230.5)
    [untimed] = normalize_target(None, "af-9|web|shop|web|i")
    assert timed.op == untimed.op == TOMBSTONE
    assert timed.id == "PromTarget/af-9|web|shop|web|i"
    assert timed.v.startswith("001772359230500.") and untimed.v == ""


@pytest.mark.parametrize(("value", "entity", "reason"), [
    (None, "af-9", "unattributable-tombstone"),
    ("up", "", "invalid-target"),
    ({"op": "UPSERT", "health": "up"}, "", "invalid-target"),
    ({"op": "DELETE", "labels": {}}, "", "invalid-target"),
])
def test_unusable_target_records_are_refused(value: Any, entity: str, reason: str) -> None:
    with pytest.raises(RejectedRecordError) as caught:
        normalize_target(value, entity)
    assert caught.value.reason == reason
