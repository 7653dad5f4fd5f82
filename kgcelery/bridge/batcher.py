"""Group routed records into batches per (client, kind): pure, the clock is passed in.

A batch is ready when it reaches ``max_records`` or ``max_bytes``, or when its oldest
record has waited ``max_wait`` seconds; ``backlog_wait`` seconds instead while its
client's queue holds tasks no worker has taken yet (off by default, see
``Settings.batch_backlog_wait_s``): fewer, larger tasks, where the workers do not
merge a backlog's small tasks themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kgcelery.bridge.offsets import Segment
from kgcelery.bridge.routing import Routed


@dataclass
class Batch:
    """Records of one client and kind, with where each came from."""

    client_id: str
    kind: str
    started_at: float
    #: The JSON of each record, as the producer wrote it where possible.
    records: list[bytes] = field(default_factory=list)
    #: [topic, partition, offset, entity, produced_ms] per record, parallel to ``records``
    #: (produced_ms: the Kafka timestamp, for produce-to-graph latency; 0 if unknown).
    origins: list[list[Any]] = field(default_factory=list)
    #: How many Kafka records of each offset segment this batch holds.
    segments: Counter[Segment] = field(default_factory=Counter)
    size: int = 0

    def add(self, routed: Routed, segment: Segment, offset: int, produced_ms: int = 0) -> None:
        topic, partition = segment.tp
        if len(routed.payloads) == 1:
            self.records.append(routed.payloads[0])
            self.origins.append([topic, partition, offset, routed.entity, produced_ms])
        else:
            for index, payload in enumerate(routed.payloads):
                self.records.append(payload)
                self.origins.append([topic, partition, offset, f"{routed.entity}#{index}",
                                     produced_ms])
        self.segments[segment] += 1
        self.size += routed.size

    def settle(self) -> None:
        """Every record of this batch has left: release its offsets."""
        for segment, count in self.segments.items():
            segment.settle(count)
        self.segments.clear()

    def values(self) -> list[Any]:
        """The records decoded (control records are applied by the bridge itself)."""
        return [orjson.loads(record) for record in self.records]


class Batcher:
    """Holds open batches; hands them out when they are ready."""

    def __init__(self, *, max_records: int, max_bytes: int, max_wait: float,
                 backlog_wait: float | None = None) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_wait = max_wait
        self.backlog_wait = max(max_wait, backlog_wait if backlog_wait is not None
                                else max_wait)
        self._open: dict[tuple[str, str], Batch] = {}
        self.pending_bytes = 0
        self.pending_records = 0

    def add(self, routed: Routed, segment: Segment, offset: int, now: float,
            produced_ms: int = 0) -> Batch | None:
        """Add a record; return its batch if that batch is now full."""
        key = (routed.client_id, routed.kind)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = Batch(routed.client_id, routed.kind, now)
        batch.add(routed, segment, offset, produced_ms)
        self.pending_bytes += routed.size
        self.pending_records += len(routed.payloads)
        if len(batch.records) >= self.max_records or batch.size >= self.max_bytes:
            return self._take(key)
        return None

    def due(self, now: float, backlogged: Callable[[str], bool] = lambda _client: False
            ) -> list[Batch]:
        """Batches whose oldest record has waited long enough: ``max_wait``, or
        ``backlog_wait`` for a client that ``backlogged`` says has tasks waiting."""
        keys = []
        for key, batch in self._open.items():
            waited = now - batch.started_at
            if waited >= self.backlog_wait or (
                    waited >= self.max_wait and not backlogged(batch.client_id)):
                keys.append(key)
        return [self._take(key) for key in keys]

    def drain_kinds(self, kinds: frozenset[str]) -> list[Batch]:
        """Every open batch of these kinds, whatever its age."""
        return [self._take(key) for key in list(self._open) if key[1] in kinds]

    def drain(self) -> list[Batch]:
        """Every open batch (on shutdown or partition revocation)."""
        return [self._take(key) for key in list(self._open)]

    def _take(self, key: tuple[str, str]) -> Batch:
        batch = self._open.pop(key)
        self.pending_bytes -= batch.size
        self.pending_records -= len(batch.records)
        return batch
