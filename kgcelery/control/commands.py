"""Ops by hand: ``kgcelery clients``, ``scale``, ``drain``, ``retire``, ``register``,
``reconcile`` and ``flower``.

Every command that names a client checks the id and that the client is registered:
an invalid id or an unknown client gives one line and exit code 3.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import closing
from typing import Any

import click

from kgcelery.clients import validate_client_id
from kgcelery.cliutil import friendly_errors, load_settings, stop_on_signals
from kgcelery.errors import KgceleryError

_STATE_HELP = "states: active, stale (no heartbeat), draining (deregistered), retired"


def _registry() -> Any:
    from kgcelery.control.registry import Registry

    return Registry.from_url(load_settings().registry_url)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--history", default=0, show_default=True, type=click.IntRange(0, 1000),
              help="Also print the last N state transitions and scaling changes.")
@click.option("--no-inspect", is_flag=True,
              help="Do not ask the workers; show the worker counts beat last recorded.")
@friendly_errors
def clients(as_json: bool, history: int, no_inspect: bool) -> None:
    """List clients: cluster, state, last heartbeat age, queue depth, tasks in flight,
    workers desired/actual and pin.

    Actual workers are every worker that answers consuming client.<id>, including
    plain 'celery -A kgcelery.app worker -Q client.<id>' started by hand anywhere.
    """
    from kgcelery.app import create_app
    from kgcelery.broker import open_broker
    from kgcelery.control.observe import observe

    settings = load_settings()
    app = None if no_inspect else create_app(settings)
    with closing(_registry()) as registry, closing(open_broker(app, settings.broker_url)) \
            as broker:
        try:
            rows = observe(registry, broker, app, inspect_timeout=settings.inspect_timeout_s,
                           records_per_task=settings.batch_max_records)
        finally:
            if app is not None:
                app.close()
        events = registry.transitions(history) + registry.decisions(history) if history else []
    if as_json:
        out: Any = [row.as_dict() for row in rows]
        if history:
            out = {"clients": out, "history": sorted(events, key=lambda e: -e["at"])}
        click.echo(json.dumps(out, indent=2))
        return
    if not rows:
        click.echo("no clients registered yet")
    else:
        click.echo(f"{'CLIENT':<24} {'CLUSTER':<20} {'STATE':<9} {'SEEN':>7} {'QUEUE':>6} "
                   f"{'FLIGHT':>6} {'WORKERS':>8} {'PIN':>4}")
    for row in rows:
        desired = "-" if row.workers_desired is None else str(row.workers_desired)
        cluster = f"{row.cluster} ({row.region})" if row.region else row.cluster
        click.echo(f"{row.client:<24} {cluster[:20]:<20} {row.state:<9} "
                   f"{_age(row.last_heartbeat_age_s):>7} {row.queue_depth:>6} "
                   f"{row.in_flight:>6} {desired + '/' + str(row.workers_actual):>8} "
                   f"{'-' if row.pin is None else row.pin:>4}")
    for event in sorted(events, key=lambda e: -e["at"]):
        stamp = time.strftime("%H:%M:%S", time.localtime(event["at"]))
        click.echo(f"{stamp} {event['client_id']}: {_describe(event)}")


def _describe(event: dict[str, Any]) -> str:
    """One line for a state transition, a change of desired workers, or a pin."""
    if "pin" in event:
        return "pin released" if event["pin"] is None else f"pinned at {event['pin']}"
    if isinstance(event["to"], int):  # desired workers
        return f"workers {event['from']} -> {event['to']} ({event['reason']})"
    return f"{event['from']} -> {event['to']} ({event['reason']})"


@click.command()
@click.argument("client_id", metavar="CLIENT")
@click.argument("workers", metavar="N|auto")
@friendly_errors
def scale(client_id: str, workers: str) -> None:
    """Pin CLIENT's worker pool at N workers, or hand it back to the policy with 'auto'.

    A pin overrides the scaling policy (and SCALE_MAX_WORKERS) until released; a stale
    or draining client still keeps one worker until its queue is drained.
    """
    validate_client_id(client_id)
    if workers == "auto":
        pin = None
    elif workers.isdigit() and int(workers) <= 1000:
        pin = int(workers)
    else:
        raise click.BadParameter(f"{workers!r}: give a worker count (0-1000) or 'auto'",
                                 param_hint="N|auto")
    with closing(_registry()) as registry:
        registry.require(client_id)
        registry.pin(client_id, pin)
    interval = load_settings().scale_interval_s
    click.echo(f"{client_id}: " + (f"pinned at {pin} workers" if pin is not None
                                   else "scaled by the policy again")
               + f" (beat applies it within {interval:g} s)")


@click.command()
@click.argument("client_id", metavar="CLIENT")
@friendly_errors
def drain(client_id: str) -> None:
    """Stop accepting CLIENT's records, let its workers finish its queue, then retire it
    (what a registry tombstone does). Its graph is kept; registering it again revives it.
    """
    validate_client_id(client_id)
    with closing(_registry()) as registry:
        registry.require(client_id)
        registry.deregister(client_id)
    click.echo(f"{client_id}: draining; it is retired once its queue is empty ({_STATE_HELP})")


@click.command()
@click.argument("client_id", metavar="CLIENT")
@click.option("--force", is_flag=True, help="Retire even with tasks still queued.")
@friendly_errors
def retire(client_id: str, force: bool) -> None:
    """Retire CLIENT now: its records are refused and its workers stop. Tasks still
    queued stay in Redis (not lost); they are worked off if the client registers again.
    Prefer 'kgcelery drain', which waits for the queue. The graph is kept.
    """
    from kgcelery.broker import open_broker
    from kgcelery.control.expiry import refuse_retirement

    validate_client_id(client_id)
    with closing(_registry()) as registry, \
            closing(open_broker(None, load_settings().broker_url)) as broker:
        registry.require(client_id)
        work = broker.work_of([client_id], default_records_per_task=1)[client_id]
        refusal = refuse_retirement(client_id, queued=work.queued, in_flight=work.in_flight,
                                    force=force)
        if refusal:
            raise KgceleryError(refusal)
        registry.retire(client_id, reason="retired by ops")
    click.echo(f"{client_id}: retired")


@click.command()
@click.argument("client_id", metavar="CLIENT")
@click.option("--cluster", "cluster_name", required=True, help="The client's cluster name.")
@click.option("--version", "version", default="", help="The agent's version.")
@click.option("--region", default="", help="The cluster's region.")
@friendly_errors
def register(client_id: str, cluster_name: str, version: str, region: str) -> None:
    """Register CLIENT by hand (as its agent's registration record would); it becomes active."""
    validate_client_id(client_id)
    with closing(_registry()) as registry:
        record = registry.register(client_id, cluster_name=cluster_name, version=version,
                                   region=region,
                                   metadata={"registered_by": "kgcelery register"})
    click.echo(f"{client_id}: registered (cluster {record.cluster_name}, {record.state})")


@click.command()
@click.option("--once", is_flag=True, help="One pass, then exit (celery and kubernetes backends).")
@click.option("--backend", type=click.Choice(["local", "celery", "kubernetes"]),
              help="Override KGCELERY_SCALER_BACKEND.")
@friendly_errors
def reconcile(once: bool, backend: str | None) -> None:
    """Make actual workers = desired workers until Ctrl-C, through the scaler backend.

    'local' runs the worker subprocesses itself (and stops them when it stops), so it
    must keep running; 'kgcelery up' already does this. Its workers are per-client or a
    fleet as KGCELERY_WORKER_MODE says (auto: decided at start from the clients
    registered); give beat the same mode. 'celery' and 'kubernetes' are
    also reconciled by beat; --once runs one pass by hand.
    """
    from kgcelery.control.reconciler import run_reconciler

    settings = load_settings()
    if backend:
        settings = settings.model_copy(update={"scaler_backend": backend})
    if once and settings.scaler_backend == "local":
        raise click.UsageError("the local backend owns its workers: run it without --once")
    run_reconciler(settings, stop_on_signals(), once=once)


@click.command()
@click.option("--port", type=int, help="Port to serve on (KGCELERY_FLOWER_PORT).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
def flower(port: int | None, address: str) -> None:
    """Run Flower for this system: workers, tasks, and the queues live workers consume."""
    settings = load_settings()
    argv = [sys.executable, "-m", "celery", "-A", "kgcelery.app", "flower",
            f"--port={port or settings.flower_port}", f"--address={address}"]
    os.execvpe(argv[0], argv, settings.child_env())
