"""Dead letters judged per source, so that no producer can stop the bridge for the others.

A *source* is one input topic and one client, or the topic and ``unkeyed`` for records
that name no valid client (a Vector mirror without ``key_field``, an exporter keying by
uid alone). A source whose dead-lettered share of its most recent records reaches
``max_ratio``, over at least ``window`` of them, is *flooding*: a misconfigured producer,
not bad data. Flooding changes nothing for routing: each of its records is still
dead-lettered with its reason, and every other source is consumed as before. It is
reported: a log line when it starts and ends, the ``kgcelery_bridge_source_flooding``
metric, and a warning of ``kgcelery check bridge`` (through the stats snapshot).

Dead letters are logged at a bounded rate for every source: the first with its detail,
the rest summed up in one line per source per ``log_interval``. Pure: the clock is
passed in.

Only sources with a recent dead letter are *watched* (their accepted records counted
too): a source without one cannot be flooding, and counting every record of every
source would cost the bridge's hot path. A watched source's window therefore starts at
its first dead letter, which is the part of its history that matters.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field

#: The client part of the source of records that name no valid client.
UNKEYED = "unkeyed"
#: (topic, client or UNKEYED)
Source = tuple[str, str]
#: (logging level, message) for the caller to log.
Notice = tuple[int, str]


@dataclass(frozen=True)
class Flood:
    """A flooding source, as reported."""

    topic: str
    client: str
    dead: int
    total: int
    reason: str
    detail: str
    since: float

    def describe(self) -> str:
        return (f"{self.topic} x {self.client}: {self.dead} of its last {self.total} records "
                f"dead-lettered ({self.reason}: {self.detail})")


@dataclass
class _SourceState:
    polls: deque[tuple[int, int]] = field(default_factory=deque)  # (dead, total) per poll
    dead: int = 0
    total: int = 0
    flooding_since: float | None = None
    dead_at: float = 0.0  # the last poll with a dead letter
    logged_at: float = float("-inf")
    unlogged: Counter[str] = field(default_factory=Counter)  # reason -> dead letters
    reason: str = ""
    detail: str = ""


class SourceGuard:
    """Counts every source's records poll by poll; see the module docstring.

    :param max_ratio: dead-lettered share of a source's window that makes it flooding.
    :param window: at least this many of a source's most recent records are judged
        together; a source is never flooding before it sent this many.
    :param log_interval: seconds between two dead-letter lines of one source.
    :param quiet_after: a source with no dead letter for this long is no longer watched
        (nor flooding).
    """

    def __init__(self, *, max_ratio: float, window: int, log_interval: float = 10.0,
                 quiet_after: float = 60.0) -> None:
        self.max_ratio = max_ratio
        self.window = window
        self.log_interval = log_interval
        self.quiet_after = quiet_after
        #: Records accepted in the current poll, per watched source (the caller counts
        #: them, for the sources in :attr:`watched` only).
        self.accepted: Counter[Source] = Counter()
        #: topic -> clients (or UNKEYED) watched on it.
        self.watched: dict[str, set[str]] = {}
        self._dead: Counter[Source] = Counter()
        self._sources: dict[Source, _SourceState] = {}
        self._swept_at = float("-inf")

    def dead_lettered(self, source: Source, reason: str, detail: str) -> None:
        """One record of ``source`` was dead-lettered in the current poll."""
        self._dead[source] += 1
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _SourceState()
            self.watched.setdefault(source[0], set()).add(source[1])
        state.unlogged[reason] += 1
        state.reason, state.detail = reason, detail

    def end_poll(self, now: float) -> list[Notice]:
        """Fold the poll's counts into each source's window; what to log now."""
        notices: list[Notice] = []
        for source in set(self.accepted) | set(self._dead):
            state = self._sources.get(source)
            if state is not None:  # else forgotten since it was counted
                dead = self._dead[source]
                self._count(source, state, dead, dead + self.accepted[source], now, notices)
        self.accepted.clear()
        self._dead.clear()
        if now - self._swept_at < min(1.0, self.log_interval):
            return notices
        self._swept_at = now
        for source, state in list(self._sources.items()):
            if state.unlogged and now - state.logged_at >= self.log_interval:
                notices.append(self._summary(source, state, now))
            if now - state.dead_at >= self.quiet_after:
                if state.flooding_since is not None:
                    notices.append((logging.INFO, f"source {source[0]} x {source[1]}: no "
                                    f"dead letter for {self.quiet_after:.0f} s, flood over"))
                if state.unlogged:
                    notices.append(self._summary(source, state, now))
                del self._sources[source]
                clients = self.watched[source[0]]
                clients.discard(source[1])
                if not clients:
                    del self.watched[source[0]]
        return notices

    def _count(self, source: Source, state: _SourceState, dead: int, total: int,
               now: float, notices: list[Notice]) -> None:
        if dead:
            state.dead_at = now
        state.polls.append((dead, total))
        state.dead += dead
        state.total += total
        # Forget old polls while the rest still cover the window.
        while state.polls and state.total - state.polls[0][1] >= self.window:
            old_dead, old_total = state.polls.popleft()
            state.dead -= old_dead
            state.total -= old_total
        flooding = state.total >= self.window and state.dead / state.total >= self.max_ratio
        if flooding and state.flooding_since is None:
            state.flooding_since = now
            notices.append((logging.WARNING, (
                f"source {source[0]} x {source[1]} is flooding: {state.dead} of its last "
                f"{state.total} records dead-lettered ({state.reason}: {state.detail}). Its "
                "records go on to the dead-letter topic; every other source is consumed as "
                "before")))
        elif not flooding and state.flooding_since is not None:
            state.flooding_since = None
            notices.append((logging.INFO, f"source {source[0]} x {source[1]} is no longer "
                            f"flooding ({state.dead} of its last {state.total} records "
                            "dead-lettered)"))

    def _summary(self, source: Source, state: _SourceState, now: float) -> Notice:
        count = sum(state.unlogged.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in state.unlogged.most_common())
        first = state.logged_at == float("-inf")
        state.unlogged.clear()
        state.logged_at = now
        if first and count == 1:
            return (logging.WARNING, f"dead letter from {source[0]} x {source[1]}: "
                    f"{state.reason}: {state.detail}")
        return (logging.WARNING, f"dead-lettered {count} records from {source[0]} x "
                f"{source[1]} ({reasons}; last: {state.detail}); at most one such line per "
                f"source every {self.log_interval:.0f} s")

    def floods(self) -> list[Flood]:
        """The sources flooding now."""
        return [Flood(topic, client, state.dead, state.total, state.reason, state.detail,
                      state.flooding_since)
                for (topic, client), state in sorted(self._sources.items())
                if state.flooding_since is not None]
