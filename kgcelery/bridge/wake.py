"""When the bridge asks the control plane for a scaling run out of turn.

Idle clients hold no worker (``SCALE_IDLE_GRACE_S``), and a client registered since
beat's last run has none yet: their records would wait for beat's next scaling run
(up to ``SCALE_INTERVAL_S``, 10 s) before a worker even starts. The bridge knows
first that work arrived: when it publishes for a client it had published nothing for
in the idle grace (or ever, since it started), it asks for a run at once
(``kgcelery.wake_worker_pools`` on the ``control`` queue), at most one every
``SCALE_WAKE_S`` per bridge; a client that wakes meanwhile is covered by the next
one. A run that finds nothing new decides nothing: an extra run is only its cost.
"""

from __future__ import annotations


class Wake:
    """Which publishes call for a scaling run, and when to send it.

    :param quiet_after_s: a client the bridge published nothing for this long may have
        lost its workers (the scaling policy's idle grace).
    :param every_s: least time between two runs asked for; 0 turns waking off.
    """

    def __init__(self, quiet_after_s: float, every_s: float) -> None:
        self.quiet_after_s = quiet_after_s
        self.every_s = every_s
        self._published: dict[str, float] = {}
        self._wanted = False
        self._sent_at = float("-inf")

    def published(self, client_id: str, now: float) -> None:
        """The bridge published a task for ``client_id`` at ``now`` (monotonic)."""
        if not self.every_s:
            return
        last = self._published.get(client_id)
        if last is None or now - last >= self.quiet_after_s:
            self._wanted = True
        self._published[client_id] = now

    def due(self, now: float) -> bool:
        """Whether to send a wake now; if so it counts as sent."""
        if not self._wanted or now - self._sent_at < self.every_s:
            return False
        self._wanted, self._sent_at = False, now
        return True

    def forget(self, client_id: str) -> None:
        """A deregistered client: its next records (if it comes back) wake again."""
        self._published.pop(client_id, None)
