"""Control-plane tasks that beat schedules on the ``control`` queue.

Each task only gathers inputs (registry, queue depths, tasks in flight, the workers
that answer), asks a pure function (:func:`~kgcelery.control.expiry.next_state`,
:func:`~kgcelery.control.policy.plan`) and records the answer in the registry, where
the reconciler, the CLI and the metrics read it.
"""

from __future__ import annotations

import logging
import time

from kgcelery.app import app, settings
from kgcelery.broker import TaskBroker, open_broker
from kgcelery.control.expiry import next_state
from kgcelery.control.metrics import ControlMetricsStep
from kgcelery.control.observe import active_queues, consumers_per_client
from kgcelery.control.policy import Pool, ScalingPolicy, plan
from kgcelery.control.reconciler import Reconciler, make_scaler
from kgcelery.control.registry import RETIRED, Registry
from kgcelery.kinds import WAKE_TASK
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

# The worker that consumes the control queue serves the control plane's metrics (this
# module is imported by every worker of the app, before its bootsteps are built).
app.steps["worker"].add(ControlMetricsStep)

_registry: Registry | None = None
_broker: TaskBroker | None = None


def registry() -> Registry:
    """The registry of this worker process (one connection pool per process)."""
    global _registry
    if _registry is None:
        _registry = Registry.from_url(settings.registry_url)
    return _registry


def broker() -> TaskBroker:
    """The broker of this worker process, read for queue depths and tasks in flight."""
    global _broker
    if _broker is None:
        _broker = open_broker(app, settings.broker_url)
    return _broker


#: No budget on queue assignments (see :func:`policy_of`).
UNBOUNDED = 2**31


def on_a_fleet(s: Settings) -> bool:
    """Whether a client's workers are its queue on fleet workers (deployed fleets run
    the ``celery`` backend; ``kgcelery up`` in fleet mode reconciles in its own process)."""
    return s.scaler_backend == "celery" or s.worker_mode == "fleet"


def policy_of(s: Settings) -> ScalingPolicy:
    # On a fleet, a "worker" of a client is its queue on one of a fixed number of fleet
    # processes: that number is the budget of processes (at most the global max), and
    # every client with work has its queue consumed, all shared in turn by the transport.
    # Budgeting the assignments as well would leave clients with work out, waiting turns
    # of a cooldown each, while the fleet has room.
    global_max = UNBOUNDED if on_a_fleet(s) else s.scale_global_max_workers
    return ScalingPolicy(target_per_worker=s.scale_target_records_per_worker,
                         min_workers=s.scale_min_workers, max_workers=s.scale_max_workers,
                         global_max=global_max, cooldown_s=s.scale_cooldown_s,
                         hysteresis=s.scale_hysteresis, idle_grace_s=s.scale_idle_grace_s)


@app.task(name="kgcelery.expire_stale_clients", ignore_result=True)
def expire_stale_clients() -> list[str]:
    """Move clients along their lifecycle: stale on silence, retired once drained."""
    reg = registry()
    records = reg.all()
    registered = reg.registered_ids()
    work = broker().work_of([r.client_id for r in records],
                            default_records_per_task=settings.batch_max_records)
    now = time.time()
    changes = []
    for record in records:
        transition = next_state(
            state=record.state, registered=record.client_id in registered,
            last_seen=record.last_seen, state_since=record.state_since,
            backlog=work[record.client_id].backlog, now=now, ttl=settings.heartbeat_ttl_s,
            drain_grace=settings.drain_grace_s)
        if transition is None:
            continue
        reg.set_state(record.client_id, transition.to, reason=transition.reason, now=now)
        if transition.to == RETIRED:
            # Stop the workers now rather than at the next scaling run.
            reg.set_desired(record.client_id, 0, reason=RETIRED, now=now)
        changes.append(f"{record.client_id}: {record.state} -> {transition.to}")
    reg.passed("expire", now)
    return changes


@app.task(name="kgcelery.scale_worker_pools", ignore_result=True)
def scale_worker_pools() -> dict[str, int]:
    """Decide the desired workers of every client; record the workers seen too."""
    return _scale(count_workers=True)


def _scale(*, count_workers: bool) -> dict[str, int]:
    """A scaling run; ``count_workers``: also ask the workers which queues they consume
    (a broadcast that waits ``INSPECT_TIMEOUT_S``) and record the counts."""
    reg = registry()
    records = reg.all()
    work = broker().work_of([r.client_id for r in records],
                            default_records_per_task=settings.batch_max_records)
    now = time.time()
    # What the registry says was read above: the writes below touch only what changes.
    idle_since = reg.mark_idle({r.client_id: work[r.client_id].backlog == 0 for r in records},
                               {r.client_id: r.idle_since for r in records}, now=now)
    pools = {r.client_id: Pool(state=r.state, records=work[r.client_id].records,
                               desired=r.desired_workers, changed_at=r.desired_at,
                               pinned=r.pinned_workers, idle_since=idle_since[r.client_id])
             for r in records}
    decisions = plan(pools, policy_of(settings), now)
    known = {r.client_id: (r.desired_workers, r.desired_reason) for r in records}
    wanted = {client_id: (decision.desired, decision.reason)
              for client_id, decision in decisions.items()}
    moving = [client_id for client_id in wanted if known.get(client_id) != wanted[client_id]]
    # Expiry may have moved a client on meanwhile (e.g. retired it and stopped its
    # workers); a decision made for its old state waits for the next run.
    states_now = reg.states(moving)
    reg.set_desired_many({client_id: wanted[client_id] for client_id in moving
                          if states_now.get(client_id) == pools[client_id].state},
                         now=now, known=known)
    if count_workers:
        try:
            consumers = consumers_per_client(active_queues(app, settings.inspect_timeout_s))
        except Exception as exc:  # noqa: BLE001 - the decision stands; the count waits a round
            log.warning("could not ask the workers which queues they consume: %s", exc)
        else:
            reg.set_actual({c: len(consumers.get(c, [])) for c in decisions},
                           {r.client_id: r.actual_workers for r in records}, now=now)
        reg.passed("scale", now)
    return {client_id: decision.desired for client_id, decision in decisions.items()}


@app.task(name="kgcelery.reconcile_worker_pools", ignore_result=True)
def reconcile_worker_pools() -> dict[str, int]:
    """One reconcile pass for the ``celery`` and ``kubernetes`` backends (not ``local``)."""
    if settings.scaler_backend == "local":
        log.warning("the local backend reconciles inside 'kgcelery up' or 'kgcelery "
                    "reconcile', not in a task; ignoring")
        return {}
    scaler = make_scaler(settings, app=app)
    try:
        return Reconciler(registry(), scaler).reconcile()
    finally:
        scaler.close()


@app.task(name=WAKE_TASK, ignore_result=True)
def wake_worker_pools() -> dict[str, int]:
    """A scaling run a bridge asked for out of turn: records came for a client that may
    hold no worker (:mod:`kgcelery.bridge.wake`). Without the count of workers (beat's
    next run records it): that broadcast's wait would delay the reconcile pass that the
    celery and kubernetes backends run at once after it (the local one reconciles every
    second by itself)."""
    decided = _scale(count_workers=False)
    if settings.scaler_backend != "local":
        reconcile_worker_pools()
    return decided
