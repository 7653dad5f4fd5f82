"""``kgcelery up``: the whole system on one machine, until Ctrl-C.

Starts the embedded stack, then the bridge, beat, a control worker, Flower, the demo
producer, and the reconciler with the local scaler, which runs the workers that beat
decides for every client; prints where everything is and a live status; stops
everything in reverse order on Ctrl-C or SIGTERM.
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
from kgcelery.control.reconciler import Reconciler
from kgcelery.control.registry import Registry
from kgcelery.control.scalers.local import LocalScaler
from kgcelery.embedded import open_stack
from kgcelery.embedded.process import ManagedProcess
from kgcelery.graph import GraphStore, open_store
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 1.0


class Supervisor:
    """The processes of ``kgcelery up`` besides the embedded stack and the workers."""

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.settings = settings
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "logs"
        self.processes: list[ManagedProcess] = []

    def start(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, run_dir=self.run_dir, log_dir=self.log_dir,
                                 env=self.settings.child_env())
        process.start()
        self.processes.append(process)
        return process

    def restart_dead(self) -> None:
        for process in self.processes:
            if not process.alive():
                log.warning("%s exited with code %s; starting it again (log: %s)",
                            process.name, process.returncode(), process.log_path)
                process.start()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=30)


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "kgcelery.app", *args]


def _count(store: GraphStore, client_id: str, query: str) -> int:
    try:
        return int(store.run(client_id, query)[0][0])
    except Exception:  # noqa: BLE001 - a graph that does not exist yet counts as empty
        return 0


def print_status(registry: Registry, store: GraphStore, scaler: LocalScaler) -> None:
    """One line per client; WORKERS is desired (beat) / actual (running here)."""
    workers = scaler.actual()
    records = registry.all()
    stamp = time.strftime("%H:%M:%S")
    if not records:
        click.echo(f"[{stamp}] no clients registered yet")
        return
    with closing(open_broker(None, scaler.settings.broker_url)) as broker:
        work = broker.work_of([r.client_id for r in records],
                              default_records_per_task=scaler.settings.batch_max_records)
    own = " {client: $client}" if store.client_key else ""  # one database for all
    click.echo(f"[{stamp}] {'CLIENT':<18} {'STATE':<9} {'QUEUE':>6} {'FLIGHT':>6} "
               f"{'WORKERS':>7} {'EVENTS':>7} {'OBJECTS':>8} {'P99/5m':>6}")
    for record in records:
        client = record.client_id
        desired = "-" if record.desired_workers is None else str(record.desired_workers)
        pin = "" if record.pinned_workers is None else " pin"
        click.echo(
            f"           {client:<18} {record.state:<9} "
            f"{work[client].queued:>6} {work[client].in_flight:>6} "
            f"{desired + '/' + str(workers.get(client, 0)) + pin:>7} "
            f"{_count(store, client, f'MATCH (e:Event{own}) RETURN count(e)'):>7} "
            f"{_count(store, client, f'MATCH (o:Resource{own}) RETURN count(o)'):>8} "
            f"{_p99(registry, client):>6}")


def _p99(registry: Registry, client_id: str) -> str:
    """Produce-to-graph latency p99 of a client over the last five minutes (workers
    measure it); not since the start, where the backlog of a slow start would stay."""
    p99 = latency.percentiles(latency.histogram(registry.redis, client_id, last_s=300),
                              (99,)).get(99)
    return "-" if p99 is None else f"{p99:.2f}s"


def _banner(settings: Settings, state_dir: Path, flower: bool) -> None:
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
    lines.append("  Workers            sized by beat; 'kgcelery clients' shows desired/actual, "
                 "'kgcelery scale <client> <n>|auto' pins")
    lines += [f"  Logs               {state_dir / 'logs'}", "Press Ctrl-C to stop."]
    click.echo("\n".join(lines))


def run_everything(settings: Settings, *, demo: bool, flower: bool,
                   status_interval: float) -> None:
    """Start it all, supervise, print status; stop it all on Ctrl-C or SIGTERM."""
    stop = stop_on_signals()
    state_dir = Path(settings.state_dir).resolve()
    click.echo(f"starting the {settings.stack} stack in {state_dir} ...")
    stack = open_stack(settings)
    supervisor = Supervisor(settings, state_dir)
    scaler = LocalScaler(settings, run_dir=state_dir / "run", log_dir=state_dir / "logs")
    registry = Registry.from_url(settings.registry_url)
    store: GraphStore | None = None
    metrics_server = None
    try:
        stack.start()
        # After the stack: the FalkorDB client connects when it is made.
        store = open_store(settings)
        python = sys.executable
        supervisor.start("bridge", [python, "-m", "kgcelery", "bridge"])
        supervisor.start("control-worker", _celery(
            "worker", "-Q", CONTROL_QUEUE, "-n", "control@%h", "--concurrency", "1",
            "--loglevel", "INFO", "--without-mingle", "--without-gossip"))
        supervisor.start("beat", _celery(
            "beat", "--loglevel", "INFO", "-s", str(state_dir / "beat-schedule"),
            "--pidfile", str(state_dir / "run" / "celerybeat.pid")))
        if flower:
            supervisor.start("flower", _celery(
                "flower", f"--port={settings.flower_port}", "--address=127.0.0.1"))
        if demo:
            supervisor.start("demo", [python, "-m", "kgcelery", "demo"])
        if settings.control_metrics_port:
            from kgcelery.control.metrics import serve_metrics

            metrics_server = serve_metrics(settings, registry)
        _banner(settings, state_dir, flower)
        _supervise(stop, supervisor, scaler, registry, store, status_interval)
    finally:
        click.echo("stopping ...")
        if metrics_server is not None:
            metrics_server.shutdown()
        supervisor.stop_all()
        scaler.stop_all()
        stack.stop()
        registry.close()
        if store is not None:
            store.close()
        click.echo("stopped; nothing left running.")


def _supervise(stop: threading.Event, supervisor: Supervisor, scaler: LocalScaler,
               registry: Registry, store: GraphStore, status_interval: float) -> None:
    # Beat decides desired workers per client; this loop is the local reconciler that
    # makes them so (and restarts workers that died). It must live here: the local
    # scaler owns the worker processes.
    reconciler = Reconciler(registry, scaler)
    next_status = time.monotonic() + min(status_interval, 3.0)
    while not stop.wait(RECONCILE_INTERVAL_S):
        supervisor.restart_dead()
        try:
            reconciler.reconcile()
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + status_interval
                print_status(registry, store, scaler)
        except redis.ConnectionError as exc:
            log.warning("the broker Redis is unreachable (%s); retrying", exc)
