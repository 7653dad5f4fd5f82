"""kgcelery.graph.known and the rows encoding choice (pure: no services)."""

from __future__ import annotations

from kgcelery.graph import cypher
from kgcelery.graph.falkordb_store import cypher_literal, rows_literal
from kgcelery.graph.known import KnownObjects
from kgcelery.graph.writer import event_columns
from kgcelery.normalize.events import normalize_event


def test_an_object_is_covered_up_to_the_greatest_uid_version_learned() -> None:
    known = KnownObjects()
    assert not known.covers("af-9", "Pod/shop/web-1", "")
    known.learn("af-9", "Pod/shop/web-1", "1.uid-a")
    assert known.covers("af-9", "Pod/shop/web-1", "")
    assert known.covers("af-9", "Pod/shop/web-1", "1.uid-a")
    assert not known.covers("af-9", "Pod/shop/web-1", "2.0000000001")  # a newer uid: ask
    known.learn("af-9", "Pod/shop/web-1", "")  # an older one never lowers it
    assert known.covers("af-9", "Pod/shop/web-1", "1.uid-a")
    assert not known.covers("bf-1", "Pod/shop/web-1", "")  # clients apart
    known.forget("af-9")
    assert not known.covers("af-9", "Pod/shop/web-1", "")


def test_the_least_recently_used_objects_are_forgotten_beyond_capacity() -> None:
    known = KnownObjects(capacity=2)
    for oid in ("a", "b"):
        known.learn("af-9", oid, "")
    assert known.covers("af-9", "a", "")  # a is now the most recent
    known.learn("af-9", "c", "")
    assert len(known) == 2
    assert known.covers("af-9", "a", "") and not known.covers("af-9", "b", "")


def test_rows_of_scalars_go_as_json_and_the_rest_as_cypher_literals() -> None:
    assert rows_literal([["a\nb", 1, 2.5, None, True, 'q"']]) == (
        '[["a\\nb",1,2.5,null,true,"q\\""]]')
    assert rows_literal([]) == "[]"
    assert rows_literal([[[1, "a"]], [[]], [{}]]) == '[[[1,"a"]],[[]],[{}]]'
    for refused in ([{"a": 1}], ["flat"], [[{"a": 1}]], [["\x01"]], [[2**64]], [["\ud800"]],
                    [["ends in {"]]):
        assert rows_literal(refused) is None, refused
    assert cypher_literal([["\x01"]]) == '[["\x01"]]'
    # Cypher has no NaN: both encodings write null.
    assert rows_literal([[float("nan"), float("-inf")]]) == "[[null,null]]"
    assert cypher_literal([float("nan"), float("inf")]) == "[null,null]"


def test_event_rows_carry_every_column_the_statement_reads() -> None:
    event = normalize_event({"metadata": {"uid": "ev-1", "namespace": "shop"},
                             "reason": "BackOff", "message": "Back-off", "type": "Warning",
                             "involvedObject": {"kind": "Pod", "namespace": "shop",
                                                "name": "web-1"},
                             "lastTimestamp": "2026-01-12T15:01:00Z", "count": 3})[0]
    row = event.row()
    assert set(row["props"]) == set(cypher.EVENT_PROPS)
    (columns,) = event_columns([row])
    named = dict(zip(cypher.EVENT_COLUMNS, columns, strict=True))
    assert named["id"] == "ev-1" and named["count"] == 3 and named["reason"] == "BackOff"
    assert named["object_id"] == "Pod/shop/web-1" and named["namespace"] == "shop"
