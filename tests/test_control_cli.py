"""Ops by hand: the control commands against a real Redis, and the metrics they expose."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
from celery import Celery

from kgcelery.cliutil import EXIT_FAILURE, EXIT_UNKNOWN_CLIENT, EXIT_USAGE
from kgcelery.control.metrics import serve_metrics
from kgcelery.control.registry import ACTIVE, DRAINING, RETIRED, Registry
from kgcelery.embedded.stack import free_port
from kgcelery.settings import Settings
from tests.control_support import cli, plain_worker, send_events
from tests.helpers import Processes, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def reg(settings: Settings) -> Iterator[Registry]:
    registry = Registry.from_url(settings.registry_url)
    yield registry
    registry.close()


@pytest.mark.parametrize("args", [
    ["scale", "{c}", "2"], ["scale", "{c}", "auto"], ["drain", "{c}"], ["retire", "{c}"],
])
def test_unknown_clients_get_one_clear_line(settings: Settings, args: list[str],
                                            client_ids: list[str]) -> None:
    result = cli(settings, *[a.format(c=client_ids[0]) for a in args])
    assert result.exit_code == EXIT_UNKNOWN_CLIENT
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "unknown client" in lines[0] and "kgcelery clients" in lines[0]


@pytest.mark.parametrize("args", [
    ["scale", "AF_9", "2"], ["drain", "x"], ["retire", "bad-"],
    ["register", "Nope!", "--cluster", "c"],
])
def test_invalid_ids_get_one_clear_line(settings: Settings, args: list[str]) -> None:
    result = cli(settings, *args)
    assert result.exit_code == EXIT_UNKNOWN_CLIENT
    assert result.output.count("\n") == 1 and "invalid client id" in result.output


def test_scale_refuses_a_bad_count(settings: Settings, reg: Registry,
                                   client_ids: list[str]) -> None:
    reg.register(client_ids[0])
    for bad in ("-1", "many", "1001"):
        assert cli(settings, "scale", client_ids[0], bad).exit_code == EXIT_USAGE


def test_reconcile_once_needs_a_backend_without_processes(settings: Settings) -> None:
    result = cli(settings, "reconcile", "--once")
    assert result.exit_code == EXIT_USAGE and "without --once" in result.output


def test_register_scale_drain_retire_and_history(
        settings: Settings, reg: Registry, app: Celery, client_ids: list[str]) -> None:
    a, b = client_ids[:2]
    result = cli(settings, "register", a, "--cluster", "prod-eu", "--region", "eu-west-1")
    assert result.exit_code == 0 and "registered" in result.output
    assert reg.get(a).cluster_name == "prod-eu"  # type: ignore[union-attr]
    assert reg.get(a).region == "eu-west-1"  # type: ignore[union-attr]
    assert reg.get(a).state == ACTIVE  # type: ignore[union-attr]
    assert cli(settings, "scale", a, "3").exit_code == 0
    assert reg.get(a).pinned_workers == 3  # type: ignore[union-attr]
    assert cli(settings, "scale", a, "auto").exit_code == 0
    assert reg.get(a).pinned_workers is None  # type: ignore[union-attr]

    # Retiring a client with work queued needs --force (drain is the safe way).
    cli(settings, "register", b, "--cluster", "prod-us")
    send_events(app, b, 10, per_task=5)
    refused = cli(settings, "retire", b)
    assert refused.exit_code == EXIT_FAILURE and "kgcelery drain" in refused.output
    assert reg.get(b).state == ACTIVE  # type: ignore[union-attr]
    assert cli(settings, "retire", b, "--force").exit_code == 0
    assert reg.get(b).state == RETIRED and b not in reg.registered_ids()  # type: ignore[union-attr]
    assert cli(settings, "drain", a).exit_code == 0
    assert reg.get(a).state == DRAINING and a not in reg.registered_ids()  # type: ignore[union-attr]

    listing = json.loads(cli(settings, "clients", "--json", "--history", "20").output)
    rows = {row["client"]: row for row in listing["clients"]}
    assert rows[b]["queue_depth"] == 2 and rows[b]["records"] == 10
    assert (rows[a]["cluster"], rows[a]["region"]) == ("prod-eu", "eu-west-1")
    kinds = [(e["client_id"], e.get("to", e.get("pin"))) for e in listing["history"]]
    assert (a, DRAINING) in kinds and (b, RETIRED) in kinds and (a, 3) in kinds
    table = cli(settings, "clients", "--history", "5").output
    assert "CLIENT" in table and f"{a}: active -> draining (deregistered)" in table
    assert "prod-eu (eu-west-1)" in table


def test_a_worker_started_by_hand_counts_as_actual(
        settings: Settings, processes: Processes, reg: Registry, client_ids: list[str]) -> None:
    client = client_ids[0]
    reg.register(client, cluster_name="by-hand")
    plain_worker(processes, settings, client, name=f"{client}-by-hand")
    listing = wait_for(lambda: [r for r in json.loads(cli(settings, "clients", "--json").output)
                                if r["workers_actual"] == 1], timeout=15,
                       what="the hand-started worker counted")
    assert listing[0]["workers"][0].startswith(f"{client}-by-hand@")
    # No decision yet (no beat runs here), one actual worker.
    wait_for(lambda: "-/1" in cli(settings, "clients").output, timeout=15,
             what="the table showing -/1")


def test_metrics_expose_queue_depth_and_decisions(
        settings: Settings, reg: Registry, app: Celery, client_ids: list[str]) -> None:
    client = client_ids[0]
    reg.register(client, cluster_name="metered")
    reg.pin(client, 2)
    reg.set_desired(client, 2, reason="pinned")
    reg.heartbeat(client, time.time())
    send_events(app, client, 30, per_task=10)
    port = free_port()
    server = serve_metrics(settings.model_copy(update={"control_metrics_port": port}), reg)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    label = f'client="{client}"'
    assert f"kgcelery_control_queue_depth{{{label}}} 3.0" in text
    assert f"kgcelery_control_records{{{label}}} 30.0" in text
    assert f"kgcelery_control_workers_desired{{{label}}} 2.0" in text
    assert f"kgcelery_control_workers_pinned{{{label}}} 2.0" in text
    assert f'kgcelery_control_client_state{{{label},state="active"}} 1.0' in text
    assert f"kgcelery_control_heartbeat_age_seconds{{{label}}}" in text
