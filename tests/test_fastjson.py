"""kgcelery.fastjson decodes exactly as kombu's JSON does (pure: no services)."""

from __future__ import annotations

import datetime
import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.utils import json as kombu_json

from kgcelery.fastjson import loads

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62, max_value=2**66)
    | st.integers(max_value=-2**62, min_value=-2**66) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=15)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_same_result_as_kombu(value: object) -> None:
    text = json.dumps(value)
    assert loads(text.encode()) == kombu_json.loads(text.encode()) == loads(text)


def test_kombu_typed_values_and_what_orjson_refuses_go_to_kombu() -> None:
    moment = datetime.datetime(2026, 11, 27, 10, 0, tzinfo=datetime.UTC)
    ident = uuid.uuid4()
    encoded = kombu_json.dumps({"at": moment, "id": ident})
    assert loads(encoded) == {"at": moment, "id": ident}
    assert loads(b'{"n": NaN, "big": 123456789012345678901234567890}')["big"] == \
        123456789012345678901234567890
    assert loads(memoryview(b'[1, "\\ud800"]')) == [1, "\ud800"]


def test_integers_beyond_64_bits_stay_exact() -> None:
    # orjson reads these as floats without an error (CI found -2**63 - 1 by chance).
    for number in (-2**63 - 1, 2**64, 10**30, -(10**30), 2**64 - 1, -2**63):
        text = json.dumps({"n": [number]})
        for form in (text, text.encode(), memoryview(text.encode())):
            assert loads(form)["n"][0] == number
            assert type(loads(form)["n"][0]) is int
