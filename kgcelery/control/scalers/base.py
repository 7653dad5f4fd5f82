"""The interface every scaler backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Scaler(Protocol):
    """Makes the workers of each client match a desired count.

    ``apply`` is called again and again (every reconcile interval) with the whole
    desired map, so a backend re-asserts its state each time rather than trusting what
    it did before: a worker that died, lost its runtime queues or was scaled by hand
    is brought back to the desired count. A client missing from the map wants 0.
    """

    name: str

    def apply(self, desired: Mapping[str, int]) -> dict[str, int]:
        """Act towards ``desired``; return the workers per client this backend manages."""
        ...

    def close(self) -> None:
        """Release what the backend holds (the local one stops its workers)."""
        ...
