"""A client's registry hash parsed into its record: Redis's bytes (beat's fast path) and
plain strings give the same record."""

from __future__ import annotations

from kgcelery.control.registry import ACTIVE, ClientRecord

HASH = {"cluster_name": "prod-eu", "version": "2.1.0", "metadata": '{"nodes": 3}',
        "registered_at": "100.5", "last_heartbeat": "160.25", "state": "draining",
        "desired_workers": "2", "pinned_workers": "", "idle_since": "150"}


def test_bytes_and_strings_parse_to_the_same_record() -> None:
    as_bytes = {k.encode(): v.encode() for k, v in HASH.items()}
    record = ClientRecord.from_hash("af-9", as_bytes)
    assert record == ClientRecord.from_hash("af-9", HASH)
    assert (record.cluster_name, record.metadata, record.state) == (
        "prod-eu", {"nodes": 3}, "draining")
    assert (record.registered_at, record.last_heartbeat, record.last_seen) == (
        100.5, 160.25, 160.25)
    assert (record.desired_workers, record.pinned_workers, record.idle_since) == (2, None, 150.0)


def test_a_bare_hash_has_the_defaults_and_a_fresh_metadata_dict() -> None:
    one, other = (ClientRecord.from_hash("af-9", {b"metadata": b"{}"}) for _ in range(2))
    assert (one.state, one.metadata, one.desired_workers, one.last_seen) == (
        ACTIVE, {}, None, None)
    assert one.metadata is not other.metadata
