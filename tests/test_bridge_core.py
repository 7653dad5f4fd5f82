"""The bridge's pure core: routing, offset watermarks, batching."""

from __future__ import annotations

import json
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgcelery.bridge.batcher import Batch, Batcher
from kgcelery.bridge.guard import DeadLetterFloodError, DeadLetterGuard
from kgcelery.bridge.offsets import OffsetTracker, Segment
from kgcelery.bridge.routing import Routed, classify
from kgcelery.errors import BadKeyError, RejectedRecordError
from kgcelery.settings import DEFAULT_TOPICS

KINDS = DEFAULT_TOPICS


def _classify(topic: str, key: bytes | None, value: bytes | None, limit: int = 1000) -> Routed:
    return classify(topic, key, value, kinds=KINDS, max_value_bytes=limit)


def test_routes_by_key_prefix_and_topic_kind() -> None:
    routed = _classify("raw.k8s.events", b"af-9::event::abc", b'{"reason": "BackOff"}')
    assert (routed.client_id, routed.kind, routed.entity) == ("af-9", "event", "event::abc")
    assert routed.values() == [{"reason": "BackOff"}]
    assert _classify("alerts.raw", b"af-9::a", b"{}").kind == "alert"


def test_matching_client_id_in_payload_is_tolerated_and_dropped() -> None:
    routed = _classify("raw.k8s.events", b"af-9::e", b'{"client_id": "af-9", "x": 1}')
    assert routed.values() == [{"x": 1}]


@pytest.mark.parametrize(("topic", "key", "value", "reason"), [
    ("nope", b"af-9::e", b"{}", "unknown-topic"),
    ("raw.k8s.events", None, b"{}", "bad-key"),
    ("raw.k8s.events", b"af-9", b"{}", "bad-key"),
    ("raw.k8s.events", b"AF::e", b"{}", "invalid-client-id"),
    ("raw.k8s.events", b"af-9::e", b"x" * 1001, "oversized"),
    ("raw.k8s.events", b"af-9::e", b"{not json", "undecodable-json"),
    ("raw.k8s.events", b"af-9::e", b"\xff\xfe", "undecodable-json"),
    ("raw.k8s.events", b"af-9::e", None, "undecodable-json"),
    ("raw.k8s.events", b"af-9::e", b'{"client_id": "zz-1"}', "client-id-mismatch"),
])
def test_rejections_carry_a_stable_reason(topic: str, key: bytes | None, value: bytes | None,
                                          reason: str) -> None:
    with pytest.raises(RejectedRecordError) as caught:
        _classify(topic, key, value)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_tombstones_are_meaningful_for_resources_and_registry() -> None:
    assert _classify("state.k8s.resource", b"af-9::pod::u1", None).values() == [None]
    assert _classify("cluster.registry", b"af-9::registry", None).values() == [None]


def test_watermark_waits_for_every_lower_offset() -> None:
    tracker = OffsetTracker()
    tp = ("t", 0)
    first = [tracker.consumed(tp, offset) for offset in range(10, 13)]
    tracker.next_poll()
    second = [tracker.consumed(tp, offset) for offset in range(13, 15)]
    assert first[0] is first[2] and second[0] is not first[0]
    assert tracker.committable() == {tp: 10}
    second[0].settle(2)
    assert tracker.committable() == {tp: 10}  # the first poll's records are pending
    first[0].settle(2)
    assert tracker.committable() == {tp: 10}
    first[0].settle(1)
    assert tracker.committable() == {tp: 15}
    tracker.committed({tp: 15})
    assert tracker.committable() == {}
    assert tracker.pending_count() == 0


def test_a_dead_lettered_record_settles_at_once() -> None:
    tracker = OffsetTracker()
    tracker.consumed(("t", 0), 0).settle()
    assert tracker.committable() == {("t", 0): 1}


def test_revoked_partitions_are_forgotten() -> None:
    tracker = OffsetTracker()
    gone = tracker.consumed(("t", 0), 1)
    tracker.consumed(("t", 1), 7)
    tracker.forget([("t", 0)])
    gone.settle()  # a late result for a revoked partition changes nothing
    assert tracker.committable() == {("t", 1): 7}


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=1, max_size=200),
       st.integers(1, 20), st.randoms())
def test_commit_never_passes_an_unsettled_record(
        records: list[tuple[int, int]], poll_size: int, rnd: random.Random) -> None:
    """Records of several partitions, polled in chunks, batched by client, published
    in any order: the committed offset never passes a record whose batch is pending."""
    tracker = OffsetTracker()
    batches: dict[int, Batch] = {}
    next_offset: dict[int, int] = {}
    for index, (partition, client) in enumerate(records):
        if index % poll_size == 0:
            tracker.next_poll()
        offset = next_offset.get(partition, 0)
        next_offset[partition] = offset + 1
        segment = tracker.consumed(("t", partition), offset)
        batch = batches.setdefault(client, Batch(f"c{client}", "event", 0.0))
        batch.add(_routed(f"c{client}"), segment, offset)
    order = list(batches.values())
    rnd.shuffle(order)
    published: set[tuple[int, int]] = set()
    for batch in order:
        batch.settle()
        published.update((origin[1], origin[2]) for origin in batch.origins)
        for (_, partition), mark in tracker.committable().items():
            assert all((partition, o) in published for o in range(mark))
    assert tracker.committable() == {("t", p): n for p, n in next_offset.items()}


def _routed(client: str, kind: str = "event", size: int = 10) -> Routed:
    return Routed(client, kind, "e", (b'{"x":1}',), size)


def _seg(partition: int = 0) -> Segment:
    return Segment(("t", partition), 0)


def test_batches_are_per_client_and_kind_and_close_on_size() -> None:
    batcher = Batcher(max_records=3, max_bytes=10_000, max_wait=1.0)
    assert batcher.add(_routed("a"), _seg(0), 0, now=0.0) is None
    assert batcher.add(_routed("b"), _seg(0), 1, now=0.0) is None
    assert batcher.add(_routed("a", "log"), _seg(1), 0, now=0.0) is None
    assert batcher.add(_routed("a"), _seg(0), 2, now=0.0) is None
    full = batcher.add(_routed("a"), _seg(0), 3, now=0.0)
    assert full is not None and (full.client_id, full.kind) == ("a", "event")
    assert [origin[:3] for origin in full.origins] == [["t", 0, 0], ["t", 0, 2], ["t", 0, 3]]
    assert [o[3] for o in full.origins] == ["e", "e", "e"]
    assert batcher.pending_records == 2


def test_batches_close_on_bytes_and_on_age() -> None:
    batcher = Batcher(max_records=100, max_bytes=25, max_wait=0.5)
    assert batcher.add(_routed("a", size=20), _seg(0), 0, now=0.0) is None
    assert batcher.add(_routed("a", size=20), _seg(0), 1, now=0.0) is not None
    batcher.add(_routed("b"), _seg(0), 2, now=1.0)
    assert batcher.due(now=1.4) == []
    due = batcher.due(now=1.5)
    assert [b.client_id for b in due] == ["b"]
    assert batcher.pending_bytes == 0 and batcher.drain() == []


def test_values_are_json_round_trippable_for_celery() -> None:
    raw = json.dumps({"a": [1, 2.5, None]}).encode()
    routed = _classify("raw.k8s.events", b"af-9::e", raw)
    assert routed.payloads == (raw,)  # the producer's bytes travel on untouched
    assert routed.values() == [{"a": [1, 2.5, None]}]


def test_webhook_payloads_and_alert_lists_are_exploded_into_one_batch() -> None:
    payload = {"receiver": "Critical", "status": "firing", "groupKey": "{}:{}",
               "alerts": [{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}}]}
    routed = _classify("alerts.raw", b"af-9::alert::g1", json.dumps(payload).encode(),
                       limit=10_000)
    assert [a["labels"]["alertname"] for a in routed.values()] == ["A", "B"]
    assert all(a["receiver"] == "Critical" and a["groupKey"] == "{}:{}" for a in routed.values())
    listed = _classify("alerts.raw", b"af-9::alert::l", b'[{"labels": {}}, {"labels": {}}]')
    assert len(listed.payloads) == 2
    single = _classify("alerts.raw", b"af-9::alert::s", b'{"labels": {"alertname": "C"}}')
    assert single.values() == [{"labels": {"alertname": "C"}}]
    batcher = Batcher(max_records=2, max_bytes=10_000, max_wait=1.0)
    assert batcher.add(_routed("af-9", "alert"), _seg(0), 0, now=0.0) is None
    full = batcher.add(routed, _seg(0), 1, now=0.0)  # 3 records: exceeds, never splits
    assert full is not None and len(full.records) == 3
    assert [o[3] for o in full.origins] == ["e", "alert::g1#0", "alert::g1#1"]


def test_the_guard_trips_only_on_a_flood_over_a_full_window() -> None:
    guard = DeadLetterGuard(max_ratio=0.9, window=100)
    guard.record(50, 50, "bad-key")          # not a full window yet
    guard.record(10, 100, "bad-key")         # 60 of 150: fine
    guard.record(0, 1000)
    with pytest.raises(DeadLetterFloodError, match="bad-key"):
        for _ in range(3):
            guard.record(95, 100, "bad-key")
    never = DeadLetterGuard(max_ratio=1.0, window=10)
    for _ in range(10):
        never.record(100, 100, "bad-key")


def test_key_prefix_cache_still_rejects_what_it_must() -> None:
    from kgcelery.bridge.routing import parse_record_key

    assert parse_record_key(b"af-9::a").client_id == "af-9"
    assert parse_record_key(b"af-9::b").entity == "b"  # served from the cache
    with pytest.raises(BadKeyError):
        parse_record_key(b"af-9")  # the cached prefix without '::' is still a bad key


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    _json_values.map(lambda v: json.dumps(v).encode()),
    # JSON with one byte cut off or one byte changed: nearly valid
    _json_values.map(lambda v: json.dumps(v).encode()[:-1]),
    st.tuples(_json_values, st.integers(0, 40), st.binary(min_size=1, max_size=1)).map(
        lambda t: (lambda b: b[:t[1]] + t[2] + b[t[1] + 1:])(json.dumps(t[0]).encode())),
))
def test_the_fast_json_check_accepts_exactly_what_orjson_accepts(value: bytes) -> None:
    try:
        orjson.loads(value)
        valid = True
    except orjson.JSONDecodeError:
        valid = False
    try:
        _classify("raw.k8s.events", b"af-9::e", value, limit=10_000)
        routed = True
    except RejectedRecordError as exc:
        assert exc.reason == "undecodable-json"
        routed = False
    assert routed == valid, value


def test_queue_depths_and_the_registry_survive_a_broker_outage() -> None:
    # The bridge reads them in its loop: a broker away must not stop it (publishing
    # holds and retries meanwhile), and the last values read stand.
    import redis

    from kgcelery.bridge.quota import QueueQuota
    from kgcelery.bridge.runner import RegisteredClients

    depths = iter([7])

    def depth_of(client: str) -> int:
        for depth in depths:
            return depth
        raise redis.ConnectionError("Connection closed by server.")

    now = [0.0]
    quota = QueueQuota(depth_of, ceiling=100, hard_limit=0, clock=lambda: now[0])
    assert quota.depth("af-9") == 7
    now[0] += 5
    quota.published("af-9")
    assert quota.depth("af-9") == 8, "the last depth read, plus what was published since"

    class Registry:
        reads = iter([{"af-9"}])

        def registered_ids(self) -> set[str]:
            for ids in self.reads:
                return ids
            raise redis.ConnectionError("Connection refused.")

    registered = RegisteredClients(Registry(), refresh=0.0)  # type: ignore[arg-type]
    assert "af-9" in registered and "zz-1" not in registered
    with pytest.raises(redis.ConnectionError):
        assert "af-9" in RegisteredClients(Registry(), refresh=0.0)  # type: ignore[arg-type]
