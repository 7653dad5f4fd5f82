"""Client ids and keys: table tests and a round-trip property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kgcelery.clients import (
    CLIENT_ID_PATTERN,
    client_of_queue,
    database_for,
    parse_control_key,
    parse_key,
    queue_for,
    validate_client_id,
)
from kgcelery.errors import BadKeyError, InvalidClientIdError


@pytest.mark.parametrize(("key", "client", "entity"), [
    ("af-9::event::abc123", "af-9", "event::abc123"),
    (b"af-9::event::abc123", "af-9", "event::abc123"),
    ("acme-prod::pod:5f1c::x", "acme-prod", "pod:5f1c::x"),
    ("abc::", "abc", ""),
    ("a" * 63 + "::x", "a" * 63, "x"),
])
def test_parse_key_accepts(key: str | bytes, client: str, entity: str) -> None:
    parsed = parse_key(key)
    assert (parsed.client_id, parsed.entity) == (client, entity)


@pytest.mark.parametrize(("key", "error"), [
    (None, BadKeyError),
    ("", BadKeyError),
    ("af-9", BadKeyError),
    ("af-9:event:1", BadKeyError),
    (b"\xff\xfe::x", BadKeyError),
    ("::event::1", InvalidClientIdError),
    ("AF-9::event::1", InvalidClientIdError),
    ("9af::event::1", InvalidClientIdError),
    ("af-::event::1", InvalidClientIdError),
    ("ab::event::1", InvalidClientIdError),         # 2 characters: too short
    ("a" * 64 + "::x", InvalidClientIdError),       # 64: too long
    ("af_9::event::1", InvalidClientIdError),
    ("af.9::event::1", InvalidClientIdError),
    ("af-9 ::event::1", InvalidClientIdError),
    ("af-9\n::event::1", InvalidClientIdError),
])
def test_parse_key_rejects(key: str | bytes | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_key(key)


def test_names_derived_from_a_client() -> None:
    assert queue_for("af-9") == "client.af-9"
    assert database_for("af-9") == "af-9"
    assert client_of_queue("client.af-9") == "af-9"
    assert client_of_queue("control") is None
    assert client_of_queue("client.BAD") is None
    with pytest.raises(InvalidClientIdError):
        queue_for("Robert'); DROP DATABASE")
    with pytest.raises(InvalidClientIdError):
        validate_client_id(None)  # type: ignore[arg-type]


@given(st.text(max_size=80), st.text(max_size=40))
def test_any_key_the_parser_accepts_yields_a_valid_queue_and_database(
        client: str, entity: str) -> None:
    key = f"{client}::{entity}"
    try:
        parsed = parse_key(key)
    except (BadKeyError, InvalidClientIdError):
        return
    queue = queue_for(parsed.client_id)
    assert queue.startswith("client.") and client_of_queue(queue) == parsed.client_id
    assert CLIENT_ID_PATTERN.fullmatch(database_for(parsed.client_id))
    # The client is what comes before the first "::" (a client "a00:" makes "a00:::").
    assert parsed.client_id == key.split("::", 1)[0]


def test_the_client_is_the_prefix_before_the_first_separator() -> None:
    assert parse_key("a00:::").client_id == "a00"
    assert parse_key("af-9::event::abc::def").client_id == "af-9"


@given(st.from_regex(CLIENT_ID_PATTERN, fullmatch=True), st.text(max_size=40))
def test_every_valid_client_round_trips(client: str, entity: str) -> None:
    parsed = parse_key(f"{client}::{entity}".encode())
    assert (parsed.client_id, parsed.entity) == (client, entity)


@pytest.mark.parametrize(("key", "client"), [
    ("af-9", "af-9"),                  # the chart's jobs: the bare client id
    (b"af-9", "af-9"),
    ("af-9::af-9", "af-9"),            # the state-watcher's heartbeat
    ("af-9::registry", "af-9"),
    ("af-9::", "af-9"),
])
def test_parse_control_key_accepts_the_bare_id_and_the_prefix(key: str | bytes,
                                                              client: str) -> None:
    assert parse_control_key(key).client_id == client


@pytest.mark.parametrize(("key", "error"), [
    (None, BadKeyError),
    ("", BadKeyError),
    ('{"client_id"', BadKeyError),     # kcat -K: split a JSON line (routing may join it)
    ("AF-9", BadKeyError),
    (b"\xff\xfe", BadKeyError),
    ("AF-9::x", InvalidClientIdError),
    ("af-9:x", BadKeyError),
])
def test_parse_control_key_rejects(key: str | bytes | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_control_key(key)


def test_a_key_without_a_client_says_what_the_producer_must_change() -> None:
    for key in (None, b"5f1c2d3e-uid-of-an-event", b"\xff"):
        with pytest.raises(BadKeyError, match="fix on the producer: key records as "
                                              "<client>::<entity>"):
            parse_key(key)
