"""The one backoff rule: exponential, capped, with jitter.

Used wherever kgcelery waits out something unreachable: a task whose graph is away
(``KGCELERY_TASK_RETRY_BACKOFF_S`` / ``_MAX_S``), the bridge holding batches while
the broker is away, the Neo4j store between attempts of a transient failure. Jitter
spreads the retries of many workers that lost the same server at the same moment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt ``n`` (from 0) waits between half and all of ``min(max_s, base_s * 2**n)``."""

    base_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.max_s:
            raise ValueError(f"backoff needs 0 < base ({self.base_s}) <= max ({self.max_s})")

    def ceiling(self, attempt: int) -> float:
        """The longest wait of ``attempt``."""
        return min(self.max_s, self.base_s * 2 ** min(attempt, 62))

    def delay(self, attempt: int) -> float:
        ceiling = self.ceiling(attempt)
        return random.uniform(ceiling / 2, ceiling)
