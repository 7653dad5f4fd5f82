"""Stop the bridge when nearly everything is being dead-lettered: that is a
misconfiguration (wrong topic mapping, producers with a new key format, an empty
registry), and filling the DLQ with a whole topic helps nobody. Pure, like arroyo's
``DlqLimit``.
"""

from __future__ import annotations

from collections import deque

from kgcelery.errors import KgceleryError


class DeadLetterFloodError(KgceleryError):
    """Nearly every record of a window was dead-lettered; the bridge stops."""


class DeadLetterGuard:
    """Judges the dead-lettered share of the most recent records, poll by poll.

    :param max_ratio: dead-lettered share that trips the guard (1.0: never).
    :param window: at least this many recent records are judged together; the guard
        never trips before it has seen this many.
    """

    def __init__(self, *, max_ratio: float, window: int) -> None:
        self.max_ratio = max_ratio
        self.window = window
        self._polls: deque[tuple[int, int]] = deque()  # (dead, total) per poll
        self._dead = 0
        self._total = 0

    def record(self, dead: int, total: int, reason: str = "") -> None:
        """Count one poll's outcome; raise :class:`DeadLetterFloodError` if it trips."""
        if total <= 0:
            return
        self._polls.append((dead, total))
        self._dead += dead
        self._total += total
        # Forget old polls while the rest still cover the window.
        while self._polls and self._total - self._polls[0][1] >= self.window:
            old_dead, old_total = self._polls.popleft()
            self._dead -= old_dead
            self._total -= old_total
        if (self.max_ratio < 1.0 and self._total >= self.window
                and self._dead / self._total >= self.max_ratio):
            raise DeadLetterFloodError(
                f"{self._dead} of the last {self._total} records were dead-lettered "
                f"(last reason: {reason or 'unknown'}); stopping rather than filling the "
                "DLQ. Check KGCELERY_TOPICS, the producers' keys and the registry "
                "(kgcelery clients), then restart; nothing after the last commit is lost.")
