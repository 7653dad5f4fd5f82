"""Unit table: topology edge records and snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.topology import (
    EdgeRecord,
    EndpointRef,
    SnapshotRecord,
    endpoint,
    normalize_topology,
)

T0 = "2026-01-12T15:00:00Z"


@pytest.mark.parametrize(("ref", "expected"), [
    ("Pod/shop/web-1", EndpointRef("Pod/shop/web-1", "", "Pod")),
    ("pod/shop/web-1", EndpointRef("Pod/shop/web-1", "", "Pod")),
    ("Node/n1", EndpointRef("Node/n1", "", "Node")),
    ("pod::2e48b897-1ea2", EndpointRef("", "2e48b897-1ea2", "Pod")),
    ("2e48b897-1ea2-44f9-b56a-4c4dad7397c6",
     EndpointRef("", "2e48b897-1ea2-44f9-b56a-4c4dad7397c6", "")),
    ({"kind": "Service", "namespace": "shop", "name": "web", "uid": "s1"},
     EndpointRef("Service/shop/web", "s1", "Service")),
    ({"uid": "u9"}, EndpointRef("", "u9", "")),
])
def test_edge_ends(ref: Any, expected: EndpointRef) -> None:
    assert endpoint(ref) == expected


@pytest.mark.parametrize(("edge_type", "rel"), [
    ("RUNS_ON", "SCHEDULED_ON"), ("SELECTS", "SELECTS"), ("CONTROLS", "OWNS"),
    ("runs_on", "SCHEDULED_ON"),
])
def test_edge_types_map_to_the_graph_model(edge_type: str, rel: str) -> None:
    [edge] = normalize_topology({"op": "UPSERT", "at": T0, "id": "e1", "from": "Pod/a/p",
                                 "to": "Node/n", "type": edge_type})
    assert isinstance(edge, EdgeRecord)
    assert (edge.type, edge.id, edge.at) == (rel, "e1", to_epoch(T0))


def test_a_removed_edge_outranks_an_upsert_at_the_same_time() -> None:
    edge = {"at": T0, "id": "e1", "from": "Pod/a/p", "to": "Node/n", "type": "RUNS_ON"}
    [up] = normalize_topology({**edge, "op": "UPSERT"})
    [down] = normalize_topology({**edge, "op": "DELETE"})
    assert isinstance(up, EdgeRecord) and isinstance(down, EdgeRecord)
    assert down.v > up.v and down.op == "DELETE"


def test_an_edge_without_id_gets_one_from_its_ends() -> None:
    [edge] = normalize_topology({"at": T0, "from": "pod::u1", "to": "Node/n", "type": "RUNS_ON"})
    assert isinstance(edge, EdgeRecord)
    assert edge.id == "RUNS_ON:u1->Node/n" and edge.op == "UPSERT"


def test_a_snapshot_versions_its_items_at_its_time_above_its_absence_mark() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p", "namespace": "a", "uid": "u",
                                       "resourceVersion": "5"}}
    [snap] = normalize_topology({"timestamp": T0, "complete": True, "items": [pod]})
    assert isinstance(snap, SnapshotRecord)
    assert snap.complete and snap.at == to_epoch(T0)
    [item] = snap.items
    assert item.at == to_epoch(T0) and item.v > snap.absent_v
    [partial] = normalize_topology({"timestamp": T0, "items": [pod]})
    assert isinstance(partial, SnapshotRecord) and not partial.complete


@pytest.mark.parametrize("value", [
    "x", {"type": "RUNS_ON"}, {"type": "LIKES", "from": "Pod/a/p", "to": "Node/n"},
    {"type": "RUNS_ON", "from": "Pod/a/p"}, {"type": "RUNS_ON", "op": "MOVE", "from": "Pod/a/p",
                                             "to": "Node/n"},
    {"type": "RUNS_ON", "from": "a/b/c/d", "to": "Node/n"},
    {"items": [{"kind": "Pod"}]},                      # no timestamp
    {"timestamp": T0, "items": [{"kind": "Pod", "metadata": {}}]},  # a bad item: all or nothing
])
def test_invalid_topology_is_rejected(value: Any) -> None:
    with pytest.raises(RejectedRecordError) as info:
        normalize_topology(value)
    assert info.value.reason == "invalid-topology"
