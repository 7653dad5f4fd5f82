"""Ops by hand: ``kgcelery clients`` (and, as the control plane grows, scale/drain/...)."""

from __future__ import annotations

import json
import time

import click

from kgcelery.cliutil import friendly_errors, load_settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@friendly_errors
def clients(as_json: bool) -> None:
    """List registered clients: cluster, state, last heartbeat age, queue depth."""
    from kgcelery.control.queues import queue_depth
    from kgcelery.control.registry import Registry

    settings = load_settings()
    registry = Registry.from_url(settings.registry_url)
    now = time.time()
    rows = []
    for record in registry.all():
        seen = record.last_seen
        rows.append({
            "client": record.client_id, "cluster": record.cluster_name, "state": record.state,
            "last_heartbeat_age_s": round(now - seen, 1) if seen else None,
            "queue_depth": queue_depth(registry.redis, record.client_id),
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no clients registered yet")
        return
    click.echo(f"{'CLIENT':<24} {'CLUSTER':<20} {'STATE':<9} {'SEEN':>8} {'QUEUE':>7}")
    for row in rows:
        age = row["last_heartbeat_age_s"]
        click.echo(f"{row['client']:<24} {row['cluster']:<20} {row['state']:<9} "
                   f"{'-' if age is None else f'{age:.0f}s':>8} {row['queue_depth']:>7}")
