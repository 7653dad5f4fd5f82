"""The interface to the Celery broker that the bridge, the workers' control plane and
the CLI use: publish batches as tasks, and read each client's work (queued, in flight).

One backend per broker: :mod:`.redis_broker` (Redis, the default: kgcelery writes and
reads kombu's layout itself, for speed and for in-flight counts) and
:mod:`.kombu_broker` (any other broker Celery supports, through kombu's public API).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import kombu.exceptions
import redis

# What a client library raises when the broker cannot be reached (kombu wraps a refused
# connection in OperationalError when it declares a queue; redis-py raises its own).
UNREACHABLE = (redis.RedisError, kombu.exceptions.OperationalError, OSError)


class TaskBatch(Protocol):
    """One task's worth of one client's records of one kind (the bridge's ``Batch``)."""

    @property
    def client_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def records(self) -> Sequence[bytes]: ...
    @property
    def origins(self) -> list[list[Any]]: ...


@dataclass(frozen=True)
class QueueWork:
    """One client's work in the broker: tasks waiting, tasks in flight, records (estimated)."""

    queued: int = 0
    in_flight: int = 0
    records: int = 0

    @property
    def backlog(self) -> int:
        """Tasks not yet done: waiting plus in flight."""
        return self.queued + self.in_flight


@dataclass(frozen=True)
class Durability:
    """What a published task must reach before the offsets below it may be committed
    (KGCELERY_BRIDGE_DURABLE): ``off`` the broker's acknowledgement, ``aof`` the
    broker's fsynced append-only file, ``replicas`` that many replicas."""

    mode: str = "off"
    timeout_ms: int = 2000
    replicas: int = 1


class TaskBroker(ABC):
    """Publishing and counting tasks on the broker."""

    @abstractmethod
    def publish(self, batches: Sequence[TaskBatch]) -> None:
        """Publish each batch as one task on its client's queue, in order; raises
        :class:`BrokerUnavailableError` when the broker is unreachable (whatever the
        client library raised is its cause; nothing is then known to be published)."""

    @abstractmethod
    def queue_depth(self, client_id: str) -> int:
        """Tasks waiting in a client's queue (not those a worker holds)."""

    def queue_depths(self, client_ids: list[str]) -> dict[str, int]:
        """:meth:`queue_depth` of several clients (backends read them in one round trip)."""
        return {client_id: self.queue_depth(client_id) for client_id in client_ids}

    @abstractmethod
    def work_of(self, client_ids: Iterable[str], *,
                default_records_per_task: int) -> dict[str, QueueWork]:
        """Queued and in-flight tasks and estimated records of each client.

        :param default_records_per_task: the estimate where no queued task says its
            size (a full batch: the size that matters when work piles up).
        """

    def make_durable(self) -> bool:
        """Wait until every task published so far is as durable as asked (see
        :class:`Durability`); False if that was not confirmed in time (commit later)."""
        return True

    def close(self) -> None:  # noqa: B027 - most backends hold nothing
        """Release connections."""
