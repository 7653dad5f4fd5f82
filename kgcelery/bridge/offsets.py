"""Which Kafka offsets are safe to commit: pure bookkeeping, no I/O.

A record is *pending* from the moment it is consumed until it has been published to
Redis or dead-lettered. Records are counted in *segments*: the run of offsets of one
partition read in one poll. A batch remembers how many of its records came from each
segment and settles them all at once when it is published, so the cost per record is
one counter increment. Per partition, the committable offset is the start of the
oldest segment that still has pending records, or one past the last consumed offset
when none has: the watermark only moves over records that have all left.
"""

from __future__ import annotations

from collections import deque

TopicPartition = tuple[str, int]


class Segment:
    """Consecutive offsets ``[start, end)`` of one partition and how many are pending."""

    __slots__ = ("end", "pending", "start", "tp")

    def __init__(self, tp: TopicPartition, start: int) -> None:
        self.tp = tp
        self.start = start
        self.end = start
        self.pending = 0

    def settle(self, count: int = 1) -> None:
        """``count`` of this segment's records have left (published or dead-lettered)."""
        self.pending -= count

    def __repr__(self) -> str:
        return f"Segment({self.tp}, [{self.start}, {self.end}), pending={self.pending})"


class OffsetTracker:
    """Track consumed and settled offsets; tell what can be committed."""

    def __init__(self) -> None:
        self._segments: dict[TopicPartition, deque[Segment]] = {}
        self._open: dict[TopicPartition, Segment] = {}
        self._committed: dict[TopicPartition, int] = {}

    def next_poll(self) -> None:
        """Start new segments: records of the next poll are counted apart."""
        self._open.clear()

    def consumed(self, tp: TopicPartition, offset: int) -> Segment:
        """Count a consumed record as pending; return its segment (to settle it later)."""
        segment = self._open.get(tp)
        if segment is None:
            segment = Segment(tp, offset)
            self._segments.setdefault(tp, deque()).append(segment)
            self._open[tp] = segment
        segment.end = offset + 1
        segment.pending += 1
        return segment

    def pending_count(self) -> int:
        return sum(s.pending for segments in self._segments.values() for s in segments)

    def _watermark(self, segments: deque[Segment]) -> int | None:
        if not segments:
            return None
        while len(segments) > 1 and segments[0].pending == 0:
            segments.popleft()
        head = segments[0]
        return head.start if head.pending else head.end

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets (next to read) that moved since the last :meth:`committed` call."""
        ready = {}
        for tp, segments in self._segments.items():
            mark = self._watermark(segments)
            if mark is not None and mark != self._committed.get(tp):
                ready[tp] = mark
        return ready

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if tp in self._segments:
                self._committed[tp] = offset

    def forget(self, partitions: list[TopicPartition]) -> None:
        """Drop partitions that were revoked or lost; late settlements no longer count."""
        for tp in partitions:
            self._segments.pop(tp, None)
            self._open.pop(tp, None)
            self._committed.pop(tp, None)

    def partitions(self) -> list[TopicPartition]:
        return list(self._segments)
