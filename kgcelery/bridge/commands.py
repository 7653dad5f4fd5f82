"""``kgcelery bridge`` and ``kgcelery dlq``: run the bridge, see it, fix what it refused."""

from __future__ import annotations

import json
import time

import click

from kgcelery.cliutil import friendly_errors, load_settings, stop_on_signals
from kgcelery.control.registry import Registry


@click.command()
@click.option("--stats", is_flag=True,
              help="Do not run a bridge: show what every running bridge reports.")
@click.option("--json", "as_json", is_flag=True, help="With --stats: print JSON.")
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics on this port (default KGCELERY_BRIDGE_METRICS_PORT;"
                   " 0 turns it off).")
@friendly_errors
def bridge(stats: bool, as_json: bool, metrics_port: int | None) -> None:
    """Run the Kafka bridge until SIGTERM or Ctrl-C (it then flushes and commits).

    Run several for more throughput: they share the consumer group, up to one per
    partition. With --stats, print each running bridge's counters instead: records
    routed per client and kind, dead letters per reason and source topic, flooding
    sources, consumer lag, batch latency.
    """
    settings = load_settings()
    registry = Registry.from_url(settings.registry_url)
    if stats:
        _print_stats(registry, as_json)
        return
    from prometheus_client import start_http_server

    from kgcelery.app import create_app
    from kgcelery.bridge.metrics import BridgeMetrics
    from kgcelery.bridge.runner import Bridge

    metrics = BridgeMetrics()
    port = settings.bridge_metrics_port if metrics_port is None else metrics_port
    if port:
        # All interfaces: Prometheus scrapes bridges in containers and pods.
        start_http_server(port, registry=metrics.registry)
    stop = stop_on_signals()
    Bridge(settings, app=create_app(settings), registry=registry, metrics=metrics).run(stop)


def _print_stats(registry: Registry, as_json: bool) -> None:
    from kgcelery.bridge.metrics import read_snapshots

    snapshots = read_snapshots(registry.redis)
    if as_json:
        click.echo(json.dumps(snapshots, indent=2))
        return
    if not snapshots:
        click.echo("no bridge reported in the last 30 s (is one running? kgcelery bridge)")
        return
    for snap in snapshots:
        age = time.time() - snap["at"]
        click.echo(f"bridge {snap['bridge']} (reported {age:.0f} s ago)"
                   f"{' PAUSED' if snap['paused'] else ''}: {snap['tasks']} tasks, "
                   f"{snap['pending']} records pending, lag {sum(snap['lag'].values())}, "
                   f"last batch {snap['last_batch_latency_s'] * 1000:.0f} ms")
        for name, count in snap["records"].items():
            click.echo(f"  {name:<40} {count:>12}")
        for topic, reasons in snap.get("dead_letters_by_topic", {}).items():
            for reason, count in reasons.items():
                click.echo(f"  dead-lettered {reason:<20} from {topic:<24} {count:>12}")
        if snap.get("wakes"):
            click.echo(f"  scaling runs asked for (records for a client that may hold no "
                       f"worker): {snap['wakes']}")
        if snap.get("kcat_joined"):
            click.echo(f"  control records joined after a kcat -K: split: {snap['kcat_joined']}")
        for flood in snap.get("flooding", []):
            click.echo(f"  FLOODING {flood['topic']} x {flood['client']}: {flood['dead']} of "
                       f"the last {flood['total']} dead-lettered ({flood['reason']})")
        if snap["over_ceiling"]:
            click.echo(f"  over the queue ceiling: {', '.join(snap['over_ceiling'])}")


_topic_option = click.option(
    "--topic", default=None,
    help="Dead-letter topic to read (default KGCELERY_DLQ_RAW_TOPIC; workers' rejects are "
         "in KGCELERY_DLQ_NORMALIZED_TOPIC).")
_reason_option = click.option("--reason", "reasons", multiple=True,
                              help="Only letters with this reason (repeatable).")
_client_option = click.option("--client", "clients", multiple=True,
                              help="Only letters of this client (repeatable; '-' for records "
                                   "that name no client).")
_source_topic_option = click.option(
    "--source-topic", "source_topics", multiple=True,
    help="Only letters from this input topic (repeatable), e.g. raw.k8s.logs.")


@click.group()
def dlq() -> None:
    """Inspect and replay dead letters (records the bridge or the workers refused)."""


@dlq.command("list")
@_topic_option
@_reason_option
@_client_option
@_source_topic_option
@click.option("--samples", default=2, show_default=True, help="Samples shown per group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@friendly_errors
def dlq_list(topic: str | None, reasons: tuple[str, ...], clients: tuple[str, ...],
             source_topics: tuple[str, ...], samples: int, as_json: bool) -> None:
    """Dead letters grouped by reason, client and source topic, with counts and samples.

    Records that name no client (client '-', reason bad-key) are grouped by the topic
    they came from: the producer of that topic must key them '<client>::<entity>'.
    """
    from kgcelery.dlq import read_letters, select, summarize

    settings = load_settings()
    topic = topic or settings.dlq_raw_topic
    rows = summarize(select(read_letters(settings, topic), reasons=reasons, clients=clients,
                            source_topics=source_topics), samples=samples)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no dead letters in {topic}" + (
            " matching the filters" if reasons or clients or source_topics else ""))
        return
    click.echo(f"{'COUNT':>8}  {'REASON':<22} {'CLIENT':<24} SOURCE TOPIC")
    for row in rows:
        click.echo(f"{row['count']:>8}  {row['reason']:<22} {row['client']:<24} "
                   f"{row['source_topic'] or '-'}")
        for sample in row["samples"]:
            click.echo(f"{'':>10}{sample['offset']} key={sample['key']!r}: {sample['error']}")


@dlq.command("replay")
@_topic_option
@_reason_option
@_client_option
@_source_topic_option
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; produce nothing.")
@friendly_errors
def dlq_replay(topic: str | None, reasons: tuple[str, ...], clients: tuple[str, ...],
               source_topics: tuple[str, ...], dry_run: bool) -> None:
    """Re-drive dead letters into their source topics (e.g. once a client registered).

    Every matching letter is replayed each time; graph writes are idempotent, so a
    second replay costs work, not correctness. Select with --reason and --client.
    """
    from kgcelery.dlq import read_letters, replay, select

    settings = load_settings()
    topic = topic or settings.dlq_raw_topic
    counts = replay(settings, select(read_letters(settings, topic), reasons=reasons,
                                     clients=clients, source_topics=source_topics),
                    dry_run=dry_run)
    verb = "would replay" if dry_run else "replayed"
    if not counts:
        click.echo(f"nothing to replay in {topic}")
    for target, count in sorted(counts.items()):
        click.echo(f"{verb} {count} to {target}")
