"""The ``celery`` scaler: client queues assigned to a shared fleet of generic workers.

The fleet is every worker whose name matches ``FLEET_WORKER_PATTERN`` (``fleet*@*``),
started anywhere as e.g. ``celery -A kgcelery.app worker -n fleet-1@%h -Q fleet.idle``.
A client wanting n workers gets its queue added (``add_consumer``) to the n least busy
fleet workers, and cancelled (``cancel_consumer``) where it is too many.

Queues added at runtime live only in the worker's memory: a worker that restarts, or
reconnects to the broker, comes back with its command-line queues only. So nothing
is remembered here: every :meth:`apply` asks the fleet what it consumes now
(``inspect active_queues``) and re-asserts the whole assignment. A worker that does not
answer in time is left alone for that round (it might still consume; adding its
queues elsewhere could overshoot).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping

from celery import Celery

from kgcelery.clients import client_of_queue, queue_for
from kgcelery.control.observe import active_queues

log = logging.getLogger(__name__)

#: The queue fleet workers start on: nothing is ever published to it, so a fleet worker
#: without client queues waits there (Celery needs at least one queue to consume).
FLEET_IDLE_QUEUE = "fleet.idle"


class FleetScaler:
    """Assigns client queues to fleet workers through Celery remote control."""

    name = "celery"

    def __init__(self, app: Celery, *, pattern: str, timeout: float) -> None:
        self.app = app
        self.pattern = pattern
        self.timeout = timeout

    def fleet(self) -> dict[str, set[str]]:
        """The client queues each fleet worker consumes now."""
        return {worker: {q for q in queues if client_of_queue(q)}
                for worker, queues in active_queues(self.app, self.timeout).items()
                if fnmatch.fnmatchcase(worker, self.pattern)}

    def apply(self, desired: Mapping[str, int]) -> dict[str, int]:
        fleet = self.fleet()
        assigned = {client_of_queue(q) for queues in fleet.values() for q in queues}
        for client_id in sorted(set(desired) | {c for c in assigned if c}):
            self._assign(fleet, client_id, desired.get(client_id, 0))
        actual: dict[str, int] = {}
        for queues in fleet.values():
            for owner in filter(None, map(client_of_queue, queues)):
                actual[owner] = actual.get(owner, 0) + 1
        return actual

    def _assign(self, fleet: dict[str, set[str]], client_id: str, wanted: int) -> None:
        queue = queue_for(client_id)
        holders = sorted(w for w, queues in fleet.items() if queue in queues)
        if len(holders) < wanted:
            # The least busy workers first, then by name, so repeated rounds agree.
            free = sorted((w for w in fleet if w not in holders),
                          key=lambda w: (len(fleet[w]), w))
            if len(free) < wanted - len(holders):
                log.warning("%s wants %d workers but the fleet has only %d", client_id,
                            wanted, len(fleet))
            for worker in free[:wanted - len(holders)]:
                if self._control("add_consumer", queue, worker):
                    fleet[worker].add(queue)
        elif len(holders) > wanted:
            busiest = sorted(holders, key=lambda w: (-len(fleet[w]), w))
            for worker in busiest[:len(holders) - wanted]:
                if self._control("cancel_consumer", queue, worker):
                    fleet[worker].discard(queue)

    def _control(self, command: str, queue: str, worker: str) -> bool:
        """Send one remote-control command to one worker; True if it said ok."""
        method = getattr(self.app.control, command)
        kwargs = {"exchange": queue, "routing_key": queue} if command == "add_consumer" else {}
        replies = method(queue, destination=[worker], reply=True, timeout=self.timeout,
                         **kwargs) or []
        answers = [answer for reply in replies for answer in reply.values()]
        ok = any("ok" in answer for answer in answers if isinstance(answer, dict))
        log.log(logging.INFO if ok else logging.WARNING, "%s %s on %s: %s", command, queue,
                worker, answers or "no answer")
        return ok

    def close(self) -> None:
        """Nothing to release: the fleet keeps its queues until told otherwise."""
