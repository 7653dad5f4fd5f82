"""Produce-to-graph latency per client, as a histogram in Redis.

The bridge carries each record's Kafka timestamp (the producer's create time, in ms)
as the fifth element of its origin; a worker that has written a batch adds each
record's age to ``kgcelery:latency:<client>`` (a hash bucket -> count, since the
start) and to ``kgcelery:latency:<client>:m<minute>`` (the same for one minute, kept 15
minutes, for "lately": a backlog from before the workers started otherwise shows in
the p99 for good). One pipeline per batch, so the cost is one Redis round trip per
500 records. Ages are measured against the producer's clock: on one host exact,
across hosts as good as NTP.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from kgcelery.clients import validate_client_id

PREFIX = "kgcelery:latency:"
_FINE_MS = 25          # 25 ms buckets up to 5 s,
_FINE_LIMIT_MS = 5000
_COARSE_MS = 1000      # then 1 s buckets up to 10 minutes; beyond, one overflow bucket.
_COARSE_LIMIT_MS = 600_000
_MINUTE_TTL_S = 900


def bucket_of(age_s: float) -> int:
    """The upper bound (ms) of the histogram bucket holding ``age_s``."""
    ms = max(0.0, age_s * 1000.0)
    if ms <= _FINE_LIMIT_MS:
        return max(_FINE_MS, math.ceil(ms / _FINE_MS) * _FINE_MS)
    if ms <= _COARSE_LIMIT_MS:
        return math.ceil(ms / _COARSE_MS) * _COARSE_MS
    return _COARSE_LIMIT_MS + _COARSE_MS


def percentiles(histogram: Mapping[int, int], wanted: Iterable[float] = (50, 95, 99)
                ) -> dict[float, float]:
    """Percentiles (seconds, a bucket's upper bound) of a bucket -> count histogram."""
    total = sum(histogram.values())
    result: dict[float, float] = {}
    if not total:
        return result
    ordered = sorted(histogram.items())
    for percentile in wanted:
        rank, seen = percentile / 100.0 * total, 0
        for bound, count in ordered:
            seen += count
            if seen >= rank:
                result[percentile] = bound / 1000.0
                break
    return result


def ages(origins: Iterable[Any], now_s: float) -> list[float]:
    """Seconds since each record was produced, for origins that carry a timestamp."""
    return [now_s - origin[4] / 1000.0 for origin in origins
            if len(origin) > 4 and isinstance(origin[4], int | float) and origin[4] > 0]


def _minute_key(key: str, minute: int) -> str:
    return f"{key}:m{minute}"


def record(client: redis.Redis, client_id: str, record_ages: Iterable[float], *,
           now_s: float | None = None) -> None:
    pipe = client.pipeline(transaction=False)
    if add(pipe, client_id, record_ages, now_s=now_s):
        pipe.execute()


def add(pipe: Any, client_id: str, record_ages: Iterable[float], *,
        now_s: float | None = None) -> bool:
    """Queues :func:`record`'s increments on a pipeline (several clients' in one round
    trip); False when there was nothing to record."""
    counts: dict[int, int] = {}
    for age in record_ages:
        bound = bucket_of(age)
        counts[bound] = counts.get(bound, 0) + 1
    if not counts:
        return False
    key = PREFIX + validate_client_id(client_id)
    recent = _minute_key(key, int((time.time() if now_s is None else now_s) // 60))
    for bound, count in counts.items():
        pipe.hincrby(key, str(bound), count)
        pipe.hincrby(recent, str(bound), count)
    pipe.expire(recent, _MINUTE_TTL_S)
    return True


def histogram(client: redis.Redis, client_id: str, *, last_s: float | None = None,
              now_s: float | None = None) -> dict[int, int]:
    """Bucket -> count since the start, or over the last ``last_s`` seconds (whole
    minutes, at most the 15 kept)."""
    key = PREFIX + validate_client_id(client_id)
    if last_s is None:
        raw = [client.hgetall(key)]
    else:
        now_minute = int((time.time() if now_s is None else now_s) // 60)
        first = now_minute - min(int(last_s // 60), _MINUTE_TTL_S // 60 - 1)
        pipe = client.pipeline(transaction=False)
        for minute in range(first, now_minute + 1):
            pipe.hgetall(_minute_key(key, minute))
        raw = pipe.execute()
    merged: dict[int, int] = {}
    for part in raw:
        for bound, count in part.items():
            merged[int(bound)] = merged.get(int(bound), 0) + int(count)
    return merged
