"""A fleet worker shared by many clients: what a take costs, and whether it is fair.

Two measurements, each against a baseline in the same run:

- take: a fleet worker's take (``lua/take.lua``) over ``n`` client queues (10, 100,
  1,000), all empty but the last, naming the priority-0 lists only (what the transport
  does between its once-a-second looks at kombu's priority lists) against naming all
  four lists of every queue (what it did before, and what kombu's ``BRPOP`` names),
  interleaved round by round on one redis-server:

    fleet-take-<n>: <ms> ms priority-0 lists, <ms> ms all four lists (<x>x cheaper)

- idle: a consumer on kgcelery's transport over ``n`` empty queues for ``--idle-s``
  seconds: its takes per second and the Redis time they cost (``INFO commandstats``):

    fleet-idle-<n>: <t> takes/s, <ms> ms of Redis time per s

- fairness: the embedded stack and one real fleet worker (concurrency 1), given one
  loud client with a backlog of ``--loud-tasks`` tasks of 500 events and
  ``--quiet`` quiet clients that each queue a task of 20 events every 0.5 s, by the
  fleet scaler (Celery remote control). The quiet clients' produce-to-graph p99 (the
  workers' own latency histograms) is measured twice: with the worker otherwise idle
  (the baseline; an idle worker waits on one of its queues, so a task in another waits
  for the next take, 0.1 s here), then beside the loud backlog; the line says how much of
  the backlog was still queued when the quiet clients' last task was written, and the
  worker's peak RSS (what each per-client worker costs too):

    fleet-fairness: quiet p99 <s> s while loud backlog <n> tasks (idle worker <s> s,
        <x>x); <q> quiet clients on 1 fleet worker, worker RSS <MB> MB

Run: .venv/bin/python bench/fleet.py [--sizes 10,100,1000] [--loud-tasks 300]
     [--quiet 4] [--seconds 10] [--idle-s 5] [--skip-fairness]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from common import bench_settings, exit_on_sigterm, tree_peak_mb
from tenants import start_redis

from kgcelery.broker.layout import (
    IN_FLIGHT_KEY,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    priority_lists,
)
from kgcelery.settings import Settings

QUIET_EVERY_S = 0.5
QUIET_PER_TASK = 20
LOUD_PER_TASK = 500


def take_costs(sizes: list[int], rounds: int) -> None:
    from kgcelery.broker.transport import TAKE

    with tempfile.TemporaryDirectory() as state:
        server, port = start_redis(state)
        try:
            client = redis.Redis(port=port)
            sha = client.script_load(TAKE)
            for n in sizes:
                queues = [f"client.tenant-{i:04d}" for i in range(n)]
                four = [key for queue in queues for key in priority_lists(queue)]
                times: dict[str, list[float]] = {"one": [], "four": []}
                for _ in range(rounds):
                    for name, keys in (("one", queues), ("four", four)):
                        client.lpush(queues[-1], "{}")
                        started = time.perf_counter()
                        client.evalsha(sha, len(keys) + 3, UNACKED_KEY, UNACKED_INDEX_KEY,
                                       IN_FLIGHT_KEY, *keys, *(["0"] * len(keys)))
                        times[name].append((time.perf_counter() - started) * 1000)
                one, four_ms = (sorted(t)[len(t) // 2] for t in times.values())
                print(f"fleet-take-{n}: {one:.2f} ms priority-0 lists, {four_ms:.2f} ms all "
                      f"four lists ({four_ms / one:.1f}x cheaper)", flush=True)
        finally:
            server.terminate()
            server.wait(10)


def idle_costs(sizes: list[int], seconds: float) -> None:
    from kombu import Connection, Queue

    from kgcelery.broker.transport import Transport

    def redis_ms(client: redis.Redis) -> tuple[int, float]:
        stats = client.info("commandstats")
        takes = stats.get("cmdstat_eval", {}).get("calls", 0)
        usec = sum(stats.get(name, {}).get("usec", 0)
                   for name in ("cmdstat_eval", "cmdstat_blmove"))
        return int(takes), usec / 1000

    with tempfile.TemporaryDirectory() as state:
        server, port = start_redis(state)
        try:
            client = redis.Redis(port=port)
            url = f"redis://127.0.0.1:{port}/0"
            for n in sizes:
                queues = [Queue(f"client.idle-{i:04d}") for i in range(n)]
                with Connection(url, transport=Transport) as conn, \
                        conn.Consumer(queues, callbacks=[], accept=["json"]):
                    before = redis_ms(client)
                    started = time.monotonic()
                    while time.monotonic() - started < seconds:
                        with contextlib.suppress(TimeoutError):
                            conn.drain_events(timeout=seconds)
                    after = redis_ms(client)
                    elapsed = time.monotonic() - started
                takes = (after[0] - before[0]) / elapsed
                print(f"fleet-idle-{n}: {takes:.1f} takes/s, "
                      f"{(after[1] - before[1]) / elapsed:.2f} ms of Redis time per s",
                      flush=True)
        finally:
            server.terminate()
            server.wait(10)


def _events(client_id: str, start: int, count: int) -> tuple[list[dict[str, Any]], list[Any]]:
    now_ms = int(time.time() * 1000)
    records = [{"kind": "Event", "apiVersion": "v1", "reason": "BackOff", "type": "Warning",
                "message": "Back-off restarting failed container api",
                "involvedObject": {"kind": "Pod", "namespace": "shop", "name": f"api-{i % 50}",
                                   "uid": f"{client_id}-pod-{i % 50}"},
                "metadata": {"namespace": "shop", "name": f"api.{i}",
                             "uid": f"{client_id}-{i}"}, "count": 1,
                "firstTimestamp": "2026-12-06T10:00:00Z",
                "lastTimestamp": "2026-12-06T10:00:00Z"}
               for i in range(start, start + count)]
    origins = [["bench", 0, i, f"event::{client_id}-{i}", now_ms]
               for i in range(start, start + count)]
    return records, origins


def _send(app: Any, client_id: str, start: int, count: int) -> None:
    records, origins = _events(client_id, start, count)
    app.send_task("kgcelery.ingest_events", args=[client_id, records, origins],
                  argsrepr=f"({client_id!r}, <{count} event records>)")


def _quiet_phase(app: Any, broker: redis.Redis, quiet: list[str], seconds: float,
                 loud_queue: str | None, offset: int) -> tuple[float, int]:
    """Quiet tasks every QUIET_EVERY_S for ``seconds``; waits until they are written.
    Returns their p99 (s) and the loud backlog (tasks) when the last was written."""
    from kgcelery import latency
    from kgcelery.clients import queue_for

    for key in broker.scan_iter(match=latency.PREFIX + "*"):
        broker.delete(key)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for client_id in quiet:
            _send(app, client_id, offset + sent * QUIET_PER_TASK, QUIET_PER_TASK)
        sent += 1
        time.sleep(QUIET_EVERY_S)

    def written() -> int:
        return sum(sum(latency.histogram(broker, c).values()) for c in quiet)

    expected = sent * QUIET_PER_TASK * len(quiet)
    give_up = time.monotonic() + 600
    while written() < expected and time.monotonic() < give_up:
        time.sleep(0.2)
    backlog = broker.llen(loud_queue) if loud_queue else 0
    for client_id in quiet:
        assert broker.llen(queue_for(client_id)) == 0
    merged: dict[int, int] = {}
    for client_id in quiet:
        for bucket, count in latency.histogram(broker, client_id).items():
            merged[bucket] = merged.get(bucket, 0) + count
    p99 = latency.percentiles(merged, (99,)).get(99) or 0.0
    return p99, backlog


def fairness(loud_tasks: int, quiet_count: int, seconds: float) -> None:
    from kgcelery.app import create_app
    from kgcelery.clients import queue_for
    from kgcelery.control.scalers.fleet import FleetScaler
    from kgcelery.control.scalers.local_fleet import fleet_worker_argv
    from kgcelery.embedded import open_stack
    from kgcelery.embedded.process import ManagedProcess

    with tempfile.TemporaryDirectory() as state_dir:
        state = Path(state_dir)
        settings: Settings = bench_settings(state, worker_nice=0)
        stack = open_stack(settings, create_topics=False)
        stack.start()
        app = create_app(settings)
        worker = ManagedProcess("fleet-1", fleet_worker_argv(1, settings),
                                run_dir=state / "run", log_dir=state / "logs",
                                env=settings.child_env())
        broker = redis.Redis.from_url(settings.broker_url)
        try:
            worker.start()
            worker.wait_until(lambda: "ready." in worker.tail(200), timeout=120,
                              what="the fleet worker ready")
            scaler = FleetScaler(app, pattern="fleet-*@*", timeout=1.0)
            loud, quiet = "bench-loud", [f"bench-quiet-{i}" for i in range(quiet_count)]
            everyone = {loud: 1, **{c: 1 for c in quiet}}
            while scaler.apply(everyone) != everyone:
                time.sleep(0.5)
            # Warm up: each client's graph exists before anything is timed.
            for client_id in [loud, *quiet]:
                _send(app, client_id, 10_000_000, 1)
            while any(broker.llen(queue_for(c)) for c in everyone):
                time.sleep(0.2)
            alone, _ = _quiet_phase(app, broker, quiet, seconds, None, 0)
            for index in range(loud_tasks):
                _send(app, loud, index * LOUD_PER_TASK, LOUD_PER_TASK)
            beside, backlog = _quiet_phase(app, broker, quiet, seconds, queue_for(loud),
                                           1_000_000)
            rss = tree_peak_mb(worker.pid) if worker.pid else 0.0
            print(f"fleet-fairness: quiet p99 {beside:.2f} s while loud backlog {backlog} "
                  f"tasks (idle worker {alone:.2f} s, {beside / max(alone, 0.001):.1f}x); "
                  f"{quiet_count} quiet clients on 1 fleet worker, worker RSS {rss:.0f} MB",
                  flush=True)
        finally:
            broker.close()
            worker.stop(timeout=30)
            app.close()
            stack.stop()


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="client queues per take")
    parser.add_argument("--rounds", type=int, default=200, help="takes timed per size")
    parser.add_argument("--loud-tasks", type=int, default=300)
    parser.add_argument("--quiet", type=int, default=4, help="quiet clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="of quiet tasks per phase")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle time measured")
    parser.add_argument("--skip-fairness", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    take_costs(sizes, args.rounds)
    idle_costs([5, *sizes], args.idle_s)
    if not args.skip_fairness:
        fairness(args.loud_tasks, args.quiet, args.seconds)


if __name__ == "__main__":
    main()
