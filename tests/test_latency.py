"""Latency histogram: buckets and percentiles (pure), and the histograms in Redis."""

from __future__ import annotations

import uuid

import pytest
import redis

from kgcelery import latency
from kgcelery.latency import ages, bucket_of, percentiles


@pytest.mark.parametrize(("age", "bucket"), [
    (0.0, 25), (-1.0, 25), (0.001, 25), (0.025, 25), (0.026, 50), (1.0, 1000),
    (4.99, 5000), (5.0, 5000), (5.001, 6000), (59.5, 60000), (600.0, 600000),
    (3600.0, 601000),
])
def test_bucket_of(age: float, bucket: int) -> None:
    assert bucket_of(age) == bucket


def test_percentiles_from_buckets() -> None:
    histogram = {25: 50, 100: 45, 1000: 4, 6000: 1}
    assert percentiles(histogram) == {50: 0.025, 95: 0.1, 99: 1.0}
    assert percentiles(histogram, (100,)) == {100: 6.0}
    assert percentiles({}) == {}


def test_ages_skip_origins_without_a_timestamp() -> None:
    origins = [["t", 0, 1, "e", 1_000_000], ["t", 0, 2, "e"], ["t", 0, 3, "e", -1],
               ["t", 0, 4, "e", 0]]
    assert ages(origins, 1_001.5) == [pytest.approx(1.5)]


@pytest.mark.integration
def test_the_recent_histogram_forgets_a_slow_start(broker_redis: redis.Redis) -> None:
    """Against the session's broker Redis: since the start, and over the last minutes."""
    client = f"lat-{uuid.uuid4().hex[:8]}"
    start = 1_800_000_000.0
    latency.record(broker_redis, client, [20.0] * 50, now_s=start)  # a backlog at startup
    latency.record(broker_redis, client, [0.1] * 50, now_s=start + 600)
    assert latency.histogram(broker_redis, client) == {20000: 50, 100: 50}
    lately = latency.histogram(broker_redis, client, last_s=300, now_s=start + 610)
    assert lately == {100: 50}
    assert latency.percentiles(lately)[99] == 0.1
    assert latency.histogram(broker_redis, client, last_s=900, now_s=start + 610) == {
        20000: 50, 100: 50}
    minute_key = f"{latency.PREFIX}{client}:m{int((start + 600) // 60)}"
    assert 0 < broker_redis.ttl(minute_key) <= 900
    broker_redis.delete(latency.PREFIX + client, minute_key,
                        f"{latency.PREFIX}{client}:m{int(start // 60)}")
