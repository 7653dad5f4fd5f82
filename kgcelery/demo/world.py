"""The state of one simulated cluster: its objects, its ids and its agenda of actions.

Everything random comes from one seeded generator and every action runs at a time
on the agenda (ties broken by the order of scheduling), so a world replays exactly
from its seed and the sequence of clocks it is given.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kgcelery.demo.objects import Obj, json_copy

#: Kubernetes draws generated name suffixes from this alphabet (no vowels, no 0/1/3).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True, slots=True)
class DemoRecord:
    """One record to produce: its kind, the key after ``<client>::``, its value, its time."""

    kind: str
    entity: str
    value: dict[str, Any]
    ts: float


#: Something the world does at a time; returns the records it caused.
Action = Callable[[float], list[DemoRecord]]


def iso_micro(epoch: float) -> str:
    """RFC 3339 with microseconds, as log shippers and ``eventTime`` write it."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class World:
    """Objects by uid, fresh ids, and the agenda of future actions."""

    def __init__(self, client_id: str, cluster_name: str, seed: int) -> None:
        self.client_id = client_id
        self.cluster_name = cluster_name
        self.seed = seed
        # A text seed: stable across processes (unlike hash()) and distinct per cluster.
        self.rng = random.Random(f"kgcelery-demo/{client_id}/{cluster_name}/{seed}")
        self.objects: dict[str, Obj] = {}
        self._names: dict[tuple[str, str, str], str] = {}
        self._version = self.rng.randint(100_000, 900_000)
        self._agenda: list[tuple[float, int, Action]] = []
        self._order = itertools.count()
        #: Grows on every stored change, so readers can cache views of the objects.
        self.changes = 0

    # --- ids -------------------------------------------------------------------------
    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    def suffix(self, length: int = 5) -> str:
        return "".join(self.rng.choices(NAME_ALPHABET, k=length))

    def next_version(self) -> str:
        """The next resourceVersion; other writers share it in a real cluster, so it jumps."""
        self._version += self.rng.randint(1, 40)
        return str(self._version)

    # --- objects ---------------------------------------------------------------------
    def put(self, obj: Obj, at: float) -> DemoRecord:
        """Store a new or changed object with a newer resourceVersion; its resource record."""
        meta = obj["metadata"]
        meta["resourceVersion"] = self.next_version()
        self.objects[meta["uid"]] = obj
        self._names[(obj["kind"], meta.get("namespace", ""), meta["name"])] = meta["uid"]
        self.changes += 1
        return DemoRecord("resource", entity_of(obj), json_copy(obj), at)

    def delete(self, obj: Obj, at: float) -> DemoRecord:
        """Forget an object; the wire contract's DELETE record for it."""
        meta = obj["metadata"]
        self.objects.pop(meta["uid"], None)
        self._names.pop((obj["kind"], meta.get("namespace", ""), meta["name"]), None)
        self.changes += 1
        value = {"op": "DELETE", "at": iso_micro(at), "kind": obj["kind"], "uid": meta["uid"],
                 "namespace": meta.get("namespace", ""), "name": meta["name"]}
        return DemoRecord("resource", entity_of(obj), value, at)

    def find(self, kind: str, namespace: str, name: str) -> Obj | None:
        uid = self._names.get((kind, namespace, name))
        return self.objects.get(uid) if uid else None

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        found = self.find(kind, namespace, name)
        if found is None:
            raise KeyError(f"{kind} {namespace}/{name} is not in the simulated cluster")
        return found

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects.values() if obj["kind"] == kind]

    def children(self, owner: Obj, kind: str) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [obj for obj in self.objects.values() if obj["kind"] == kind
                and any(ref["uid"] == uid for ref in obj["metadata"].get("ownerReferences", ()))]

    def snapshot(self, at: float) -> list[DemoRecord]:
        return [DemoRecord("resource", entity_of(obj), json_copy(obj), at)
                for obj in self.objects.values()]

    # --- agenda ----------------------------------------------------------------------
    def at(self, when: float, action: Action) -> None:
        heapq.heappush(self._agenda, (when, next(self._order), action))

    def run_until(self, now: float) -> Iterator[DemoRecord]:
        """Run every action due by ``now`` in time order (actions may schedule more)."""
        while self._agenda and self._agenda[0][0] <= now:
            when, _, action = heapq.heappop(self._agenda)
            yield from action(when)


def entity_of(obj: Obj) -> str:
    """The key entity of an object's resource records: ``pod::<uid>``."""
    return f"{obj['kind'].lower()}::{obj['metadata']['uid']}"
