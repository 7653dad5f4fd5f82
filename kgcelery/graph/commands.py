"""``kgcelery graph stats`` and ``kgcelery timeline``: the graph, for people."""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import click

from kgcelery.clients import validate_client_id
from kgcelery.cliutil import friendly_errors, load_settings
from kgcelery.model.timeparse import iso


def _store() -> Any:
    from kgcelery.graph import open_store

    return open_store(load_settings())


@click.group()
def graph() -> None:
    """Look into a client's knowledge graph."""


@graph.command()
@click.argument("client")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@friendly_errors
def stats(client: str, as_json: bool) -> None:
    """Count CLIENT's nodes by label and relationships by type."""
    from kgcelery.graph.queries import stats as graph_stats

    store = _store()
    try:
        result = graph_stats(store, validate_client_id(client))
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if not result["nodes"]:
        click.echo(f"the graph of {client} is empty (nothing written for this client yet)")
        return
    click.echo(f"{'NODES':<20} {'COUNT':>8}")
    for label, count in result["nodes"].items():
        click.echo(f"{label:<20} {count:>8}")
    click.echo(f"\n{'RELATIONSHIPS':<20} {'COUNT':>8} {'GONE':>6}")
    for rel, counts in result["relationships"].items():
        click.echo(f"{rel:<20} {counts['count']:>8} {counts['gone']:>6}")
    click.echo(f"\nobjects gone (deleted, absent from a snapshot): {result['gone_objects']}")


def _short(oid: str) -> str:
    """``Container/ns/pod/api`` -> ``container api``; ``Node/n1`` stays; no namespace."""
    parts = oid.split("/")
    if parts[0] == "Container":
        return f"container {parts[-1]}"
    return f"{parts[0]}/{parts[-1]}"


@click.command()
@click.argument("client")
@click.argument("object_ref", metavar="KIND/NAMESPACE/NAME")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--limit", default=200, show_default=True, help="Most recent entries to show.")
@click.option("--min-severity", default="info", show_default=True,
              type=click.Choice(["info", "warning", "error", "critical"]),
              help="Leave out entries below this severity.")
@friendly_errors
def timeline(client: str, object_ref: str, as_json: bool, limit: int,
             min_severity: str) -> None:
    """What happened to an object of CLIENT and around it, in time order.

    KIND/NAMESPACE/NAME is e.g. pod/shop/web-7d4b5-x2x9z (node/NAME for nodes). The
    timeline holds the object's events, alerts, log patterns, restarts and deletion,
    and those of its containers, its node, its owners (ReplicaSet, Deployment...) and
    the services that select it.
    """
    from kgcelery.graph import queries

    store = _store()
    try:
        oid = queries.object_ref(object_ref)
        result = queries.timeline(store, validate_client_id(client), oid, limit=limit,
                                  min_severity=min_severity)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    obj = result["object"]
    facts = [f"{key} {obj[key]}" for key in ("status", "waiting_reason", "node_name",
                                             "restart_count", "last_termination_reason")
             if obj.get(key) not in (None, "", [])]
    click.echo(f"{oid}  " + ", ".join(facts) + ("  [GONE]" if obj.get("gone") else ""))
    for item in result["surroundings"]:
        click.echo(f"  {item['role']:<9} {item['id']}")
    if not result["timeline"]:
        click.echo("nothing happened to it yet (no events, alerts or log patterns)")
        return
    # Cut summaries to the terminal; piped output keeps them whole.
    width = max(shutil.get_terminal_size().columns, 100) if sys.stdout.isatty() else 10**6
    click.echo(f"\n{'TIME':<20} {'ROLE':<9} {'WHAT':<15} {'SEV':<8} {'COUNT':>5}  SUMMARY")
    for entry in result["timeline"]:
        head = (f"{iso(entry['time']) or '?':<20} {entry['role']:<9} {entry['what']:<15} "
                f"{entry['severity']:<8} {entry['count']:>5}  ")
        where = "" if entry["object"] == oid else f"[{_short(entry['object'])}] "
        summary = " ".join(f"{where}{entry['summary']}".split())
        click.echo(head + summary[:max(width - len(head), 20)])
