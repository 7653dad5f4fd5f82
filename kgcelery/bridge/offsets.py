"""Which Kafka offsets are safe to commit: pure bookkeeping, no I/O.

A record is *pending* from the moment it is consumed until it has been published to
Redis or dead-lettered (*done*). Per partition, the committable offset is the lowest
pending one (everything below it is done), or one past the last consumed when nothing
is pending. Batches of different clients finish in any order; the watermark only moves
over an unbroken run of done records.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass
class _Partition:
    pending: deque[int] = field(default_factory=deque)
    done: set[int] = field(default_factory=set)
    next_offset: int | None = None  # one past the last consumed
    committed: int | None = None

    def watermark(self) -> int | None:
        while self.pending and self.pending[0] in self.done:
            self.done.discard(self.pending.popleft())
        if self.pending:
            return self.pending[0]
        return self.next_offset


class OffsetTracker:
    """Track consumed and finished offsets; tell what can be committed."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _Partition] = {}

    def consumed(self, tp: TopicPartition, offset: int) -> None:
        part = self._partitions.setdefault(tp, _Partition())
        part.pending.append(offset)
        part.next_offset = offset + 1

    def finished(self, tp: TopicPartition, offset: int) -> None:
        part = self._partitions.get(tp)
        if part is not None:  # a revoked partition's late result is ignored
            part.done.add(offset)

    def pending_count(self) -> int:
        return sum(len(p.pending) - len(p.done) for p in self._partitions.values())

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets (next to read) that moved since the last :meth:`committed` call."""
        ready = {}
        for tp, part in self._partitions.items():
            mark = part.watermark()
            if mark is not None and mark != part.committed:
                ready[tp] = mark
        return ready

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if tp in self._partitions:
                self._partitions[tp].committed = offset

    def forget(self, partitions: list[TopicPartition]) -> None:
        """Drop partitions that were revoked or lost."""
        for tp in partitions:
            self._partitions.pop(tp, None)

    def partitions(self) -> list[TopicPartition]:
        return list(self._partitions)
