"""The bridge's pure core: routing, offset watermarks, batching."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgcelery.bridge.batcher import Batch, Batcher
from kgcelery.bridge.guard import UNKEYED, SourceGuard
from kgcelery.bridge.offsets import OffsetTracker, Segment
from kgcelery.bridge.routing import Routed, classify, parse_record_key
from kgcelery.clients import parse_key
from kgcelery.errors import BadKeyError, InvalidClientIdError, RejectedRecordError
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


def test_a_backlogged_clients_batch_waits_longer_to_grow() -> None:
    batcher = Batcher(max_records=100, max_bytes=10_000, max_wait=0.2, backlog_wait=1.0)
    batcher.add(_routed("behind"), _seg(0), 0, now=0.0)
    batcher.add(_routed("keeps-up"), _seg(0), 1, now=0.0)
    batcher.add(_routed("behind"), _seg(0), 2, now=0.1)

    def backlogged(client: str) -> bool:
        return client == "behind"

    assert [b.client_id for b in batcher.due(0.2, backlogged)] == ["keeps-up"]
    assert batcher.due(0.9, backlogged) == []
    [grown] = batcher.due(1.0, backlogged)
    assert grown.client_id == "behind" and len(grown.records) == 2


def test_by_default_a_backlog_does_not_hold_a_batch_back() -> None:
    # Workers merge a backlog's small tasks as they take them; holding batches back
    # only made records wait (docs/BENCHMARKS.md: e2e-jvm p99 2.15 s held, 0.88 s not).
    from kgcelery.settings import Settings

    defaults = Settings()
    batcher = Batcher(max_records=100, max_bytes=10_000, max_wait=defaults.batch_max_wait_s,
                      backlog_wait=defaults.batch_backlog_wait_s)
    batcher.add(_routed("behind"), _seg(0), 0, now=0.0)
    [due] = batcher.due(defaults.batch_max_wait_s, lambda _client: True)
    assert due.client_id == "behind"


def test_a_queue_depth_read_before_publishing_says_whether_a_client_is_backlogged() -> None:
    from kgcelery.bridge.quota import QueueQuota

    depths = {"behind": 3, "keeps-up": 0}
    quota = QueueQuota(lambda ids: {c: depths[c] for c in ids}, ceiling=100, hard_limit=0)
    assert not quota.backlogged("behind"), "nothing read yet: not held back"
    quota.depth("behind")
    quota.depth("keeps-up")
    quota.published("keeps-up")  # its own fresh task does not make it backlogged
    assert quota.backlogged("behind") and not quota.backlogged("keeps-up")


def test_the_depths_a_delivery_needs_are_read_together_once_a_second() -> None:
    from kgcelery.bridge.quota import QueueQuota

    reads: list[list[str]] = []
    now = [0.0]

    def depths_of(ids: list[str]) -> dict[str, int]:
        reads.append(ids)
        return dict.fromkeys(ids, 2)

    quota = QueueQuota(depths_of, ceiling=100, hard_limit=0, clock=lambda: now[0])
    quota.refresh({"b-1", "a-1"})
    quota.refresh({"a-1", "c-1"})  # a-1 read half a second ago: only c-1
    now[0] = 0.5
    quota.refresh({"a-1", "b-1", "c-1"})
    now[0] = 1.0
    quota.refresh({"a-1", "b-1", "c-1"})
    assert reads == [["a-1", "b-1"], ["c-1"], ["a-1", "b-1", "c-1"]]
    assert quota.depth("a-1") == 2 and quota.backlogged("c-1")


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


def test_the_guard_judges_each_source_alone_and_never_stops_anything() -> None:
    guard = SourceGuard(max_ratio=0.9, window=100, log_interval=10.0, quiet_after=60.0)
    flood, good = ("raw.k8s.logs", UNKEYED), ("raw.k8s.logs", "af-9")
    now = 0.0
    for _ in range(30):  # 30 polls of 10 records each: 10 floods, 3 fine records
        for _ in range(10):
            guard.dead_lettered(flood, "bad-key", "record has no key")
        guard.accepted[good] += 3
        now += 0.1
        guard.end_poll(now)
    floods = guard.floods()
    assert [(f.topic, f.client, f.reason) for f in floods] == [("raw.k8s.logs", UNKEYED,
                                                                "bad-key")]
    assert floods[0].dead == floods[0].total >= 100
    # Another source mostly fine, with a few dead letters: never flooding.
    for _ in range(50):
        guard.accepted[("events.normalized", "zz-1")] += 9
        guard.dead_lettered(("events.normalized", "zz-1"), "undecodable-json", "x")
        now += 0.1
        guard.end_poll(now)
    assert [f.client for f in guard.floods()] == [UNKEYED]
    # The flood stops being one when the source sends good records again...
    for _ in range(20):
        guard.accepted[flood] += 10
        now += 0.1
        guard.end_poll(now)
    assert guard.floods() == []


def test_the_guard_needs_a_full_window_and_forgets_quiet_sources() -> None:
    guard = SourceGuard(max_ratio=0.5, window=100, quiet_after=60.0)
    source = ("t", UNKEYED)
    for _ in range(99):
        guard.dead_lettered(source, "bad-key", "d")
    guard.end_poll(1.0)
    assert guard.floods() == [], "99 records are not a window of 100"
    guard.dead_lettered(source, "bad-key", "d")
    notices = guard.end_poll(2.0)
    assert guard.floods() and any("is flooding" in text for _, text in notices)
    notices = guard.end_poll(62.0)  # ... or when it falls silent
    assert guard.floods() == [] and any("flood over" in text for _, text in notices)


def test_dead_letters_are_logged_at_a_bounded_rate_per_source() -> None:
    guard = SourceGuard(max_ratio=0.95, window=1000, log_interval=10.0)
    lines: list[str] = []
    now = 0.0
    for _ in range(500):  # 500 polls over 50 s, 10 dead letters each from each source
        for source in (("raw.k8s.logs", UNKEYED), ("events.normalized", "af-9")):
            for _ in range(10):
                guard.dead_lettered(source, "bad-key", "no key")
        now += 0.1
        lines += [text for _, text in guard.end_poll(now)]
    dead_letter_lines = [line for line in lines if "dead" in line and "flooding" not in line]
    # 10 000 dead letters: about one line per source per 10 s, not one per record.
    assert 8 <= len(dead_letter_lines) <= 14, dead_letter_lines
    counted = sum(int(line.split()[1]) for line in dead_letter_lines
                  if line.startswith("dead-lettered "))
    # Every dead letter is counted in some line, but those of the last interval.
    assert 10_000 - 2 * 1000 <= counted <= 10_000


def test_key_prefix_cache_still_rejects_what_it_must() -> None:
    assert parse_record_key(b"af-9::a").client_id == "af-9"
    assert parse_record_key(b"af-9::b").entity == "b"  # served from the cache
    with pytest.raises(BadKeyError):
        parse_record_key(b"af-9")  # the cached prefix without '::' is still a bad key


def _outcome(parse: Any, key: bytes) -> Any:
    try:
        parsed = parse(key)
    except (BadKeyError, InvalidClientIdError) as exc:
        return type(exc)
    return (parsed.client_id, parsed.entity)


def test_the_prefix_cache_never_changes_an_outcome() -> None:
    # Issue 11: a non-UTF-8 entity was refused until its prefix was cached, then accepted.
    from kgcelery.bridge import routing

    routing._valid_prefixes.clear()
    key = b"af-9::event::\xff\xfe"
    cold = _outcome(parse_record_key, key)
    assert parse_record_key(b"af-9::event::ok").client_id == "af-9"  # caches af-9
    warm = _outcome(parse_record_key, key)
    assert cold == warm == _outcome(parse_key, key) == BadKeyError
    with pytest.raises(RejectedRecordError, match="bad-key"):
        _classify("raw.k8s.events", key, b"{}")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"af-9", b"zz-1", b"AF", b"", b"a\xc3"]),
       st.sampled_from([b"::", b":", b""]), st.binary(max_size=12))
def test_the_prefix_cache_agrees_with_parse_key_cold_and_warm(
        prefix: bytes, separator: bytes, entity: bytes) -> None:
    key = prefix + separator + entity
    expected = _outcome(parse_key, key)
    assert _outcome(parse_record_key, key) == expected  # maybe cold
    assert _outcome(parse_record_key, prefix + b"::x") == _outcome(parse_key, prefix + b"::x")
    assert _outcome(parse_record_key, key) == expected  # warm when the prefix is valid


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
    quota = QueueQuota(lambda ids: {c: depth_of(c) for c in ids}, ceiling=100, hard_limit=0,
                       clock=lambda: now[0])
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


# Control records as the kg-rca-agent chart (2.1.x) and state-watcher build them
# (docs: ../shared/AGENT_FORMATS.md rows 1-5).
REGISTRATION_ROW1 = (b'{"client_id":"af-9","cluster_name":"prod-eu","region":"eu-west-1",'
                     b'"timestamp":"2026-12-05T10:00:00Z","chart_version":"2.1.3"}')
REGISTRATION_LINE_ROW2 = (b'{"client_id":"af-9","cluster_name":"prod-eu","version":"2.1.3",'
                          b'"registered_at":"2026-12-05T10:00:00Z","metadata":{"namespace":'
                          b'"kg","release_name":"kg-agent","chart_version":"2.1.3"}}')
HEARTBEAT_ROW5 = (b'{"client_id":"af-9","timestamp":"2026-12-05T10:01:00Z","status":"healthy",'
                  b'"metrics":{"resources_sent":1234,"uptime_seconds":60}}')


def kcat_split(line: bytes, delimiter: bytes = b":") -> tuple[bytes, bytes]:
    """What ``kcat -K<delimiter>`` makes of one input line: key before, value after."""
    key, found, value = line.partition(delimiter)
    assert found
    return key, value


def test_registration_keyed_by_the_bare_client_id() -> None:
    routed = _classify("cluster.registry", b"af-9", REGISTRATION_ROW1)
    assert (routed.client_id, routed.kind, routed.kcat_joined) == ("af-9", "registry", False)
    assert routed.values() == [{"cluster_name": "prod-eu", "region": "eu-west-1",
                                "timestamp": "2026-12-05T10:00:00Z", "chart_version": "2.1.3"}]


def test_a_registration_split_by_kcat_is_joined_again() -> None:
    key, value = kcat_split(REGISTRATION_LINE_ROW2)
    assert key == b'{"client_id"'
    routed = _classify("cluster.registry", key, value)
    assert (routed.client_id, routed.kind, routed.kcat_joined) == ("af-9", "registry", True)
    assert routed.values()[0]["metadata"]["release_name"] == "kg-agent"


@pytest.mark.parametrize("line", [
    b'{"client_id":"AF 9","cluster_name":"x"}',      # joined, but no valid client
    b'{"cluster":"x","id":"af-9"}',                 # joined, but no client_id
    b'{"client_id":"af-9", broken',                  # not JSON once joined
])
def test_a_split_line_that_is_no_registration_is_a_bad_key_naming_the_chart_fix(
        line: bytes) -> None:
    key, value = kcat_split(line)
    with pytest.raises(RejectedRecordError) as caught:
        _classify("cluster.registry", key, value)
    assert caught.value.reason == "bad-key"
    assert "kcat -K::" in caught.value.detail and "-k <client>" in caught.value.detail


def test_heartbeats_of_the_cronjob_and_the_state_watcher() -> None:
    cron = _classify("cluster.heartbeat", b"af-9",
                     b'{"client_id":"af-9","timestamp":"2026-12-05T10:01:00Z"}')
    watcher = _classify("cluster.heartbeat", b"af-9::af-9", HEARTBEAT_ROW5)
    assert (cron.client_id, cron.kind) == (watcher.client_id, watcher.kind) == ("af-9",
                                                                               "heartbeat")
    assert watcher.values()[0]["status"] == "healthy"  # fields we do not read: kept


@pytest.mark.parametrize(("key", "value"), [(b"af-9", None), (b"af-9", b""),
                                            (b"af-9::registry", None)])
def test_registry_tombstones_under_either_key(key: bytes, value: bytes | None) -> None:
    routed = _classify("cluster.registry", key, value)
    assert (routed.client_id, routed.values()) == ("af-9", [None])


@pytest.mark.parametrize(("topic", "key", "value", "reason"), [
    ("cluster.registry", None, REGISTRATION_ROW1, "bad-key"),
    ("cluster.registry", b"AF-9::r", REGISTRATION_ROW1, "invalid-client-id"),
    ("cluster.registry", b"zz-1", REGISTRATION_ROW1, "client-id-mismatch"),
    ("cluster.registry", b"af-9", b"{not json", "undecodable-json"),
    ("cluster.heartbeat", b"af-9", None, "undecodable-json"),
])
def test_control_rejections(topic: str, key: bytes | None, value: bytes | None,
                            reason: str) -> None:
    with pytest.raises(RejectedRecordError) as caught:
        _classify(topic, key, value)
    assert caught.value.reason == reason


def test_unattributable_data_records_are_bad_keys_naming_the_producer_fix() -> None:
    event_uid = b"7c1e2a3b-5d6f-4a8b-9c0d-1e2f3a4b5c6d"  # kubernetes-event-exporter
    for topic, key in (("raw.k8s.logs", None), ("events.normalized", event_uid),
                       ("raw.k8s.events", event_uid)):
        with pytest.raises(RejectedRecordError) as caught:
            _classify(topic, key, b'{"message": "x"}')
        assert caught.value.reason == "bad-key" and caught.value.client_id == ""
        assert "fix on the producer: key records as <client>::<entity>" in caught.value.detail


def test_rejections_of_a_named_client_carry_it() -> None:
    with pytest.raises(RejectedRecordError) as caught:
        _classify("raw.k8s.events", b"af-9::e", b"{not json")
    assert caught.value.client_id == "af-9"


def test_tombstones_of_topology_edges_pass_to_the_workers() -> None:
    routed = _classify("state.k8s.topology", b"af-9::edge:pod:default:web-1->node:n1", None)
    assert routed.values() == [None] and routed.entity == "edge:pod:default:web-1->node:n1"


class _RegistryRecorder:
    """Records what apply_registry asks of the registry (a pure mapping test)."""

    def __init__(self) -> None:
        self.registered: list[tuple[str, dict[str, Any]]] = []
        self.deregistered: list[str] = []

    def register(self, client_id: str, **fields: Any) -> None:
        self.registered.append((client_id, fields))

    def deregister(self, client_id: str) -> None:
        self.deregistered.append(client_id)


def test_registration_fields_as_the_charts_name_them() -> None:
    from kgcelery.bridge.control_records import apply_registry

    recorder = _RegistryRecorder()
    row1 = _classify("cluster.registry", b"af-9", REGISTRATION_ROW1).values()[0]
    apply_registry(recorder, "af-9", {**row1, "platform": "k3s"})  # type: ignore[arg-type]
    key, value = kcat_split(REGISTRATION_LINE_ROW2)
    row2 = _classify("cluster.registry", key, value).values()[0]
    apply_registry(recorder, "af-9", row2)  # type: ignore[arg-type]
    apply_registry(recorder, "af-9", None)  # type: ignore[arg-type]
    (_, first), (_, second) = recorder.registered
    assert first == {"cluster_name": "prod-eu", "version": "2.1.3", "region": "eu-west-1",
                     "metadata": {"platform": "k3s"},  # unknown fields kept, not refused
                     "registered_at": 1796464800.0}
    assert (second["version"], second["region"], second["registered_at"]) == (
        "2.1.3", "", 1796464800.0)
    assert second["metadata"]["release_name"] == "kg-agent"
    assert recorder.deregistered == ["af-9"]
