"""``kgcelery up``: the whole system on one machine, until Ctrl-C.

Starts the embedded stack, then the bridge, beat, a control worker, Flower, the demo
producer, and the reconciler, which makes the workers what beat decides for every
client; prints where everything is and a live status; stops everything in reverse order
on Ctrl-C or SIGTERM.

The workers are per-client (the local scaler: processes of each client's own) or a
fleet (a few generic processes, the client queues handed to them by the fleet scaler),
as ``KGCELERY_WORKER_MODE`` says; ``auto`` is decided here once, at start, from the
clients registered then (:mod:`kgcelery.control.workermode`). Either way the reconciler
runs in this process, never as beat's job: the processes started here are told the
scaler backend is ``local`` (beat schedules no reconciler task then), whatever the
environment says.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import click
import redis

from kgcelery import latency
from kgcelery.broker import open_broker
from kgcelery.clients import CONTROL_QUEUE
from kgcelery.cliutil import stop_on_signals
from kgcelery.control.reconciler import Reconciler, local_scaler, reconcile_until
from kgcelery.control.registry import Registry
from kgcelery.control.scalers.local import LocalScaler
from kgcelery.control.scalers.local_fleet import LocalFleetScaler
from kgcelery.demo.warmup import simulated_records, warm_graph
from kgcelery.embedded import open_stack
from kgcelery.embedded.process import ManagedProcess, restart_dead
from kgcelery.embedded.stack import EmbeddedStack
from kgcelery.errors import BrokerUnavailableError, GraphUnavailableError
from kgcelery.graph import GraphStore, open_store, queries
from kgcelery.model.objects import EVENT, RESOURCE
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 1.0


class Processes:
    """The processes of ``kgcelery up`` besides the embedded stack and the workers (the
    local scaler holds those)."""

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.settings = settings
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "logs"
        self.started: list[ManagedProcess] = []

    def start(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, run_dir=self.run_dir, log_dir=self.log_dir,
                                 env=self.settings.child_env())
        process.start()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        # In reverse: the demo and Flower before beat and the bridge.
        for process in reversed(self.started):
            process.stop(timeout=30)


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "kgcelery.app", *args]


def print_status(registry: Registry, store: GraphStore,
                 scaler: LocalScaler | LocalFleetScaler) -> None:
    """One line per client; WORKERS is desired (beat) / actual (running here, or fleet
    workers consuming the client's queue)."""
    workers = scaler.actual()
    records = registry.all()
    stamp = time.strftime("%H:%M:%S")
    if isinstance(scaler, LocalFleetScaler):
        click.echo(f"[{stamp}] fleet: {scaler.alive()}/{scaler.size} workers, "
                   f"{len(workers)} client queues assigned")
    else:
        _say_when_past_the_threshold(scaler.settings, len(records), stamp)
    if not records:
        click.echo(f"[{stamp}] no clients registered yet")
        return
    with closing(open_broker(None, scaler.settings.broker_url)) as broker:
        work = broker.work_of([r.client_id for r in records],
                              default_records_per_task=scaler.settings.batch_max_records)
    click.echo(f"[{stamp}] {'CLIENT':<18} {'STATE':<9} {'QUEUE':>6} {'FLIGHT':>6} "
               f"{'WORKERS':>7} {'EVENTS':>7} {'OBJECTS':>8} {'P99/5m':>6}")
    for record in records:
        client = record.client_id
        desired = "-" if record.desired_workers is None else str(record.desired_workers)
        pin = "" if record.pinned_workers is None else " pin"
        try:
            found = queries.counts(store, client, (EVENT, RESOURCE))
            events, objects = str(found[EVENT]), str(found[RESOURCE])
        except GraphUnavailableError:
            events = objects = "?"
        click.echo(
            f"           {client:<18} {record.state:<9} "
            f"{work[client].queued:>6} {work[client].in_flight:>6} "
            f"{desired + '/' + str(workers.get(client, 0)) + pin:>7} "
            f"{events:>7} {objects:>8} {_p99(registry, client):>6}")


def _say_when_past_the_threshold(settings: Settings, registered: int, stamp: str) -> None:
    if settings.worker_mode == "auto" and registered > settings.fleet_threshold:
        click.echo(f"[{stamp}] {registered} clients registered, above "
                   f"KGCELERY_FLEET_THRESHOLD={settings.fleet_threshold}: restart "
                   "'kgcelery up' to run them on a fleet (decided at start)")


def _p99(registry: Registry, client_id: str) -> str:
    """Produce-to-graph latency p99 of a client over the last five minutes (workers
    measure it); not since the start, where the backlog of a slow start would stay."""
    p99 = latency.percentiles(latency.histogram(registry.redis, client_id, last_s=300),
                              (99,)).get(99)
    return "-" if p99 is None else f"{p99:.2f}s"


def _banner(settings: Settings, state_dir: Path, flower: bool,
            scaler: LocalScaler | LocalFleetScaler) -> None:
    graph_port = settings.embedded_graph_port
    lines = [f"kgcelery is up on the {settings.stack} stack (state and logs under {state_dir})"]
    if settings.stack == "kafka-neo4j":
        lines += [
            f"  Kafka (Apache)     {settings.kafka_bootstrap_servers}",
            f"  Celery broker      {settings.broker_url}",
            f"  Graph (Neo4j)      {settings.graph_uri}   Bolt, no auth; one database, "
            "nodes keyed by client, e.g.",
            "                     kgcelery graph stats <client>   or any Bolt client: "
            "MATCH (e:Event {client: '<client>'}) RETURN e.reason, count(*)",
            "                     warmed at start: kgcelery's statements compiled and planned",
        ]
    else:
        lines += [
            f"  Kafka (Tansu)      {settings.kafka_bootstrap_servers}",
            f"  Celery broker      {settings.broker_url}",
            f"  Graph (FalkorDB)   {settings.graph_uri}   one graph per client, e.g.",
            f"                     kgcelery graph stats <client>   or   redis-cli -p {graph_port} "
            "GRAPH.QUERY <client> \"MATCH (e:Event) RETURN e.reason, count(*)\"",
        ]
    if flower:
        lines.append(f"  Flower             http://127.0.0.1:{settings.flower_port}")
    if settings.control_metrics_port:
        lines.append(f"  Control metrics    http://127.0.0.1:{settings.control_metrics_port}"
                     "/metrics")
    if isinstance(scaler, LocalFleetScaler):
        lines.append(f"  Workers            a fleet of {scaler.size} (fleet-<n>@host); beat "
                     "decides how many of them consume each client's queue")
    else:
        lines.append("  Workers            per client, sized by beat; 'kgcelery clients' shows "
                     "desired/actual")
    lines.append("                     'kgcelery scale <client> <n>|auto' pins")
    lines += [f"  Logs               {state_dir / 'logs'}", "Press Ctrl-C to stop."]
    click.echo("\n".join(lines))


def run_everything(settings: Settings, *, demo: bool, flower: bool,
                   status_interval: float) -> None:
    """Start it all, supervise, print status; stop it all on Ctrl-C or SIGTERM."""
    stop = stop_on_signals()
    state_dir = Path(settings.state_dir).resolve()
    click.echo(f"starting the {settings.stack} stack in {state_dir} ...")
    stack = open_stack(settings)
    registry = Registry.from_url(settings.registry_url)
    scaler: LocalScaler | LocalFleetScaler | None = None
    processes: Processes | None = None
    store: GraphStore | None = None
    metrics_server = None
    try:
        stack.start()
        # After the stack: auto decides from the clients its registry holds.
        settings, scaler = local_scaler(settings, registry, state_dir)
        processes = Processes(settings, state_dir)
        # After the stack: the FalkorDB client connects when it is made.
        store = open_store(settings)
        if settings.graph_backend == "neo4j":
            _warm_up(store, settings, stop)
        python = sys.executable
        processes.start("bridge", [python, "-m", "kgcelery", "bridge"])
        processes.start("control-worker", _celery(
            "worker", "-Q", CONTROL_QUEUE, "-n", "control@%h", "--concurrency", "1",
            "--loglevel", "INFO", "--without-mingle", "--without-gossip"))
        processes.start("beat", _celery(
            "beat", "--loglevel", "INFO", "-s", str(state_dir / "beat-schedule"),
            "--pidfile", str(state_dir / "run" / "celerybeat.pid")))
        if flower:
            processes.start("flower", _celery(
                "flower", f"--port={settings.flower_port}", "--address=127.0.0.1"))
        if demo:
            processes.start("demo", [python, "-m", "kgcelery", "demo"])
        if settings.control_metrics_port:
            from kgcelery.control.metrics import serve_metrics

            metrics_server = serve_metrics(settings, registry)
        _banner(settings, state_dir, flower, scaler)
        _supervise(stop, stack, processes, scaler, registry, store, status_interval)
    finally:
        click.echo("stopping ...")
        if metrics_server is not None:
            metrics_server.shutdown()
        if processes is not None:
            processes.stop_all()
        if scaler is not None:
            scaler.stop_all()
        stack.stop()
        registry.close()
        if store is not None:
            store.close()
        click.echo("stopped; nothing left running.")


def _warm_up(store: GraphStore, settings: Settings, stop: threading.Event) -> None:
    """A fresh Neo4j compiles and plans kgcelery's statements on first use: done here,
    before records arrive, or the clients' first minute of writes waits on it."""
    click.echo("warming Neo4j up: a fresh server compiles and plans kgcelery's statements "
               "on first use (~20 s on 2 cores) ...")
    started = time.monotonic()
    written = warm_graph(store, simulated_records(), batch_max=settings.batch_max_records,
                         stop=stop.is_set)
    click.echo(f"warm: {written:,} records written into a throw-away graph and dropped "
               f"in {time.monotonic() - started:.0f} s")


def _supervise(stop: threading.Event, stack: EmbeddedStack, processes: Processes,
               scaler: LocalScaler | LocalFleetScaler, registry: Registry, store: GraphStore,
               status_interval: float) -> None:
    # Beat decides desired workers per client; the reconciler makes them so (and restarts
    # workers that died). It runs here: this process owns the workers, fleet or not.
    next_status = time.monotonic() + min(status_interval, 3.0)

    def each_pass() -> None:
        nonlocal next_status
        # The servers first: what else died may have died of their absence.
        stack.restart_dead()
        restart_dead(processes.started)
        if time.monotonic() < next_status:
            return
        next_status = time.monotonic() + status_interval
        try:
            print_status(registry, store, scaler)
        except (redis.ConnectionError, BrokerUnavailableError) as exc:
            log.warning("no status: the broker Redis is unreachable (%s)", exc)

    reconcile_until(stop, Reconciler(registry, scaler), RECONCILE_INTERVAL_S,
                    each_pass=each_pass)
