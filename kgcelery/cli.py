"""``kgcelery``: the front door for people and scripts.

Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 unknown client,
4 embedded stack error, 5 a service (Redis, Kafka, graph) is unreachable.
"""

from __future__ import annotations

import click

from kgcelery import logsetup
from kgcelery.bridge.commands import bridge, dlq
from kgcelery.checks import check
from kgcelery.cliutil import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_STACK,
    EXIT_UNAVAILABLE,
    EXIT_UNKNOWN_CLIENT,
    EXIT_USAGE,
    friendly_errors,
    load_settings,
    stop_on_signals,
)
from kgcelery.control.commands import clients, drain, flower, reconcile, register, retire, scale
from kgcelery.deploy import deploy, topics
from kgcelery.graph.commands import graph, timeline

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_STACK", "EXIT_UNAVAILABLE", "EXIT_UNKNOWN_CLIENT",
           "EXIT_USAGE", "friendly_errors", "load_settings", "main", "stop_on_signals"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="How much to log.")
@click.version_option(package_name="kgcelery")
def main(log_level: str) -> None:
    """kgcelery: Kubernetes telemetry from many client clusters into one knowledge graph
    per client, on Celery.

    Every setting is an environment variable KGCELERY_<NAME> (see the README).
    """
    logsetup.configure(log_level)


@main.command()
@click.option("--demo/--no-demo", default=True, show_default=True,
              help="Run the demo producer that plays several client clusters.")
@click.option("--flower/--no-flower", default=True, show_default=True,
              help="Serve Flower on KGCELERY_FLOWER_PORT.")
@click.option("--status-interval", default=5.0, show_default=True,
              help="Seconds between status lines.")
@click.option("--stack", type=click.Choice(["tansu-falkordb", "kafka-neo4j"]), default=None,
              help="tansu-falkordb: pip wheels only (Tansu, Redis, FalkorDB; the default, "
                   "or KGCELERY_STACK). kafka-neo4j: what production runs (Apache Kafka, "
                   "Redis, Neo4j Community, jars from Maven Central; needs Java 17+ and "
                   "Maven).")
@click.option("--worker-mode", type=click.Choice(["auto", "per-client", "fleet"]),
              default=None,
              help="per-client: worker processes of each client's own; fleet: a few shared "
                   "workers consuming every client's queue; auto (KGCELERY_WORKER_MODE's "
                   "default): a fleet when more than KGCELERY_FLEET_THRESHOLD clients are "
                   "registered at start.")
@click.option("--fleet-size", type=click.IntRange(min=1), default=None,
              help="Fleet workers in fleet mode (KGCELERY_FLEET_SIZE; default one per CPU "
                   "core, at least 2, at most KGCELERY_SCALE_GLOBAL_MAX_WORKERS).")
@friendly_errors
def up(demo: bool, flower: bool, status_interval: float, stack: str | None,
       worker_mode: str | None, fleet_size: int | None) -> None:
    """Run everything on this machine until Ctrl-C.

    Starts the embedded stack (--stack), the bridge, beat, a control worker, the workers
    (per client, or a shared fleet: --worker-mode), Flower, and (unless --no-demo) a demo
    producer; prints where everything is and a live status. Ctrl-C stops it all.
    """
    import os

    from kgcelery.up import run_everything

    # Through the environment: the settings derive the graph backend from the stack, and
    # every process started here inherits them.
    for name, value in (("STACK", stack), ("WORKER_MODE", worker_mode),
                        ("FLEET_SIZE", fleet_size)):
        if value:
            os.environ[f"KGCELERY_{name}"] = str(value)
    run_everything(load_settings(), demo=demo, flower=flower, status_interval=status_interval)


@main.command()
@friendly_errors
def down() -> None:
    """Stop processes that an earlier run left behind (found by their pid files)."""
    from pathlib import Path

    from kgcelery.embedded.process import stop_leftovers

    settings = load_settings()
    stopped = stop_leftovers(Path(settings.state_dir).resolve() / "run")
    click.echo("stopped: " + ", ".join(stopped) if stopped else "nothing was running")


@main.command()
@click.option("--clients", "client_count", default=3, show_default=True,
              type=click.IntRange(1, 50), help="How many client clusters to play.")
@click.option("--rate", default=20.0, show_default=True,
              help="Telemetry records per second per client (roughly).")
@click.option("--duration", default=0.0, show_default=True,
              help="Seconds to run; 0 runs until Ctrl-C.")
@friendly_errors
def demo(client_count: int, rate: float, duration: float) -> None:
    """Play simulated client clusters into Kafka: registration, heartbeats, telemetry."""
    from kgcelery.demo.producer import run_demo

    run_demo(load_settings(), clients=client_count, rate=rate, duration=duration,
             stop=stop_on_signals())


for command in (bridge, dlq, clients, scale, drain, retire, register, reconcile, flower,
                check, topics, deploy, graph, timeline):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()
