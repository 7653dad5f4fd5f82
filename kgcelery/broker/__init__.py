"""The Celery broker, the one place that knows how tasks sit in it.

:class:`~.base.TaskBroker` is what the bridge, the control plane and the CLI use;
:func:`open_broker` picks the backend for a broker URL. The workers' side is
:mod:`.transport` (installed by :mod:`kgcelery.app` for ``redis://`` URLs). Everything
kgcelery knows of kombu's private Redis layout is in :mod:`.layout`, the scripts in
``lua/``, and ``tests/test_broker_contract.py`` checks it against the oldest and the
newest kombu the pin admits.
"""

from __future__ import annotations

from celery import Celery

from kgcelery.broker.base import Durability, QueueWork, TaskBatch, TaskBroker

__all__ = ["Durability", "QueueWork", "TaskBatch", "TaskBroker", "is_redis_url",
           "open_broker"]


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def open_broker(app: Celery | None, broker_url: str,
                durability: Durability | None = None) -> TaskBroker:
    """The Redis backend for Redis URLs, kombu's public API for any other broker.

    :param app: the Celery app whose queues tasks are published to; None where the
        broker is only read (queue depths, tasks in flight).
    :param durability: what :meth:`TaskBroker.make_durable` waits for (Redis only).
    """
    if is_redis_url(broker_url):
        from kgcelery.broker.redis_broker import RedisBroker

        return RedisBroker(app, broker_url, durability)
    if durability is not None and durability.mode != "off":
        raise ValueError(f"KGCELERY_BRIDGE_DURABLE={durability.mode} needs a Redis broker")
    from kgcelery.broker.kombu_broker import KombuBroker

    return KombuBroker(app or Celery(broker=broker_url))
