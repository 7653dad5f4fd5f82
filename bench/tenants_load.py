"""One end-to-end run of ``bench/tenants.py``: ``n`` clients with a skewed load, one mode.

Run by ``bench/tenants.py`` in a fresh process per size and mode (the Celery app reads
its settings once, at import, and each run has its own stack on its own ports); it can
also be run alone:

    .venv/bin/python bench/tenants_load.py --clients 100 --mode fleet --seconds 30

The load: 1 client in 50 (at least one) loud, half of them quiet, the rest registered
but idle (idle for long: beat has already taken their workers away); the loud clients
share 60% of ``--rate`` records/s, the quiet ones 40%, spread evenly over each second.
What runs is what ``kgcelery up`` runs: the embedded stack (Tansu, Redis, FalkorDB), the
bridge, beat's expiry and scaling passes every ``KGCELERY_SCALE_INTERVAL_S`` (their task
bodies, timed, in this process: the scaling pass without its broadcast to the workers,
which waits ``KGCELERY_INSPECT_TIMEOUT_S`` whatever the number of clients), and a
reconciler (its own process) with

- ``local``: the local scaler, one worker process per client as beat decides, within
  ``KGCELERY_SCALE_GLOBAL_MAX_WORKERS`` (16);
- ``fleet``: ``--fleet`` generic workers (``fleet-<i>@%h -Q fleet.idle``) given the
  client queues by the ``celery`` scaler (``add_consumer``); there a worker of a client
  is a queue assignment, not a process, so the global budget covers every client.

The load starts once the reconciler's assignments have settled (beat's first passes
gave every client with a record to come its workers, or the budget's share of them), so
that the figures show a steady state, not a start-up backlog. After ``--warmup``
seconds of load, ``--seconds`` are measured: records written into the
graphs per second (the workers' produce-to-graph histograms), Redis commands per second
(``total_commands_processed``), the worker processes running, beat's passes. Then the
load stops and the backlog gets ``--drain`` seconds; the p99 latencies are over the
records written from the window's start to then, and a record still queued after the
drain counts as older than the drain: if more than 1% are, the p99 is given as
``> <drain> s``. A server of the stack that dies meanwhile is started again, as
``kgcelery up`` does, and the run says so (``servers_restarted`` in its JSON). The
last line is the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from common import (
    KINDS,
    bench_settings,
    committed,
    cpu_s,
    descendants,
    exit_on_sigterm,
    new_producer,
    produce,
    sample_records,
)

from kgcelery import latency
from kgcelery.broker.redis_broker import work_of
from kgcelery.control.registry import Registry, client_key
from kgcelery.control.scalers.local_fleet import fleet_worker_argv
from kgcelery.embedded import open_stack
from kgcelery.embedded.process import ManagedProcess, die_with_parent, stop_together
from kgcelery.settings import Settings

LOUD_SHARE = 0.6
HEARTBEAT_EVERY_S = 30.0
CENSORED_SHARE = 0.01
#: Before the load: assignments unchanged this long count as settled (local workers
#: also need a few seconds to start), waited for at most SETTLE_MAX_S.
SETTLED_AFTER_S = 8.0
SETTLE_MAX_S = 120.0


@dataclass(frozen=True)
class Tenants:
    """Who is loud, quiet or idle, and the order their records go out in."""

    loud: list[str]
    quiet: list[str]
    idle: list[str]
    rate: float

    @classmethod
    def of(cls, n: int, rate: float) -> Tenants:
        ids = [f"tenant-{i:04d}" for i in range(n)]
        loud_count = max(1, n // 50)
        quiet_count = max(1, n // 2)
        return cls(ids[:loud_count], ids[loud_count:loud_count + quiet_count],
                   ids[loud_count + quiet_count:], rate)

    @property
    def all(self) -> list[str]:
        return [*self.loud, *self.quiet, *self.idle]

    def second(self) -> list[str]:
        """One second of records: whose each is, shuffled so that every client's records
        are spread over the second."""
        per_loud = LOUD_SHARE * self.rate / len(self.loud)
        per_quiet = (1 - LOUD_SHARE) * self.rate / len(self.quiet)
        order = [c for c in self.loud for _ in range(round(per_loud))]
        order += [c for c in self.quiet for _ in range(max(1, round(per_quiet)))]
        random.Random(7).shuffle(order)
        return order


@dataclass
class Result:
    mode: str
    clients: int
    rate: float = 0.0
    p99_quiet: str = ""
    p99_loud: str = ""
    workers: int = 0
    beat_pass_ms: float = 0.0
    redis_commands_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return (f"tenants-{self.clients} ({self.mode}): {self.rate:,.0f} records/s, "
                f"p99 quiet {self.p99_quiet} s, p99 loud {self.p99_loud} s, "
                f"{self.workers} worker processes, beat pass {self.beat_pass_ms:.0f} ms, "
                f"redis {self.redis_commands_s:,.0f} commands/s")


# -- the processes besides the stack ------------------------------------------------------
def produce_load(settings: Settings, pool: list[tuple[str, bytes]], order: list[str],
                 stop: Any, produced: Any) -> None:
    """Records at ``len(order)`` per second until ``stop``; counts them in ``produced``."""
    die_with_parent()  # a forked child: not stopped by PDEATHSIG otherwise
    producer = new_producer(settings)
    topics = {kind: settings.topics_of(kind)[0] for kind in KINDS}
    began, i = time.monotonic(), 0
    while not stop.is_set():
        kind, value = pool[i % len(pool)]
        produce(producer, topics[kind], f"{order[i % len(order)]}::{kind}::r{i}".encode(),
                value)
        i += 1
        if i % 50 == 0:
            producer.poll(0)
            produced.value = i
            ahead = i / len(order) - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush(60)
    produced.value = i


def reconcile(settings: Settings, stop: Any, workers: Any, assigned: Any,
              interval: float) -> None:
    """The reconciler as ``kgcelery up`` (local) or beat's reconcile task (fleet) runs it;
    publishes the workers per client it manages, summed, in ``assigned`` (and in
    ``workers``, when those are processes)."""
    die_with_parent()
    from kgcelery.control.reconciler import Reconciler, make_scaler
    from kgcelery.control.scalers.base import Scaler
    from kgcelery.control.scalers.local import LocalScaler

    registry = Registry.from_url(settings.registry_url)
    scaler: Scaler
    if settings.scaler_backend == "local":  # one worker process per client, whatever
        state = Path(settings.state_dir)    # the number of clients registered
        scaler = LocalScaler(settings, run_dir=state / "run", log_dir=state / "logs")
    else:
        scaler = make_scaler(settings)
    reconciler = Reconciler(registry, scaler)
    try:
        while not stop.is_set():
            try:
                actual = reconciler.reconcile()
                assigned.value = sum(actual.values())
                if workers is not None:  # a fleet's size is its processes, not assignments
                    workers.value = sum(actual.values())
            except redis.ConnectionError:
                pass
            stop.wait(interval)
    finally:
        scaler.close()


# -- what is measured ---------------------------------------------------------------------
def written(broker: redis.Redis, clients: list[str]) -> dict[int, int]:
    """Records written so far into the graphs of ``clients``: latency bucket -> count."""
    pipe = broker.pipeline(transaction=False)
    for client_id in clients:
        pipe.hgetall(latency.PREFIX + client_id)
    merged: dict[int, int] = {}
    for part in pipe.execute():
        for bound, count in part.items():
            merged[int(bound)] = merged.get(int(bound), 0) + int(count)
    return merged


def published(broker: redis.Redis) -> int:
    """Tasks the bridge has published so far: one ``LPUSH`` each (the control plane's
    few ``LPUSH`` to its decision log are noise)."""
    stats = broker.info("commandstats").get("cmdstat_lpush", {})
    return int(stats.get("calls", 0))


def minus(after: dict[int, int], before: dict[int, int]) -> dict[int, int]:
    return {b: after[b] - before.get(b, 0) for b in after if after[b] > before.get(b, 0)}


def p99_text(histogram: dict[int, int], left: int, drained_s: float) -> str:
    """The p99 of ``histogram`` with ``left`` records still not written after
    ``drained_s`` seconds of drain (older than that, at least)."""
    total = sum(histogram.values()) + left
    if not total:
        return "n/a"
    if left > CENSORED_SHARE * total:
        return f"> {drained_s:.0f}"
    return f"{latency.percentiles(histogram, (99,))[99]:.2f}"


class Beat:
    """Beat's expiry and scaling passes, run and timed here at beat's intervals."""

    def __init__(self, settings: Settings) -> None:
        from kgcelery.control import tasks

        self.tasks = tasks
        self.interval = min(settings.expiry_interval_s, settings.scale_interval_s)
        self.next_at = 0.0
        self.passes: list[tuple[float, float, float]] = []  # (at, expire ms, scale ms)

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def run(self) -> None:
        from kgcelery.control.observe import active_queues

        self.next_at = time.monotonic() + self.interval
        started = time.perf_counter()
        self.tasks.expire_stale_clients()
        expired = time.perf_counter()
        self.tasks.active_queues = lambda app, timeout: {}
        try:
            self.tasks.scale_worker_pools()
        finally:
            self.tasks.active_queues = active_queues
        done = time.perf_counter()
        self.passes.append((time.monotonic(), (expired - started) * 1000,
                            (done - expired) * 1000))

    def since(self, at: float) -> list[float]:
        return [expire + scale for when, expire, scale in self.passes if when >= at]


def run(mode: str, n: int, args: argparse.Namespace) -> Result:
    tenants = Tenants.of(n, args.rate)
    with tempfile.TemporaryDirectory(prefix="kgcelery-tenants-") as tmp:
        state = Path(tmp)
        overrides: dict[str, Any] = {"scaler_backend": "local" if mode == "local" else "celery"}
        if mode == "fleet":
            overrides["scale_global_max_workers"] = n * args.fleet
            overrides["scale_max_workers"] = args.fleet
        settings = bench_settings(state, **overrides)
        # The control tasks (imported by Beat) read their settings at import.
        os.environ.update(settings.to_env())
        try:
            with open_stack(settings) as stack:
                return _measure(mode, tenants, settings, state, stack, args)
        finally:
            if args.keep_logs:
                kept = Path(args.keep_logs) / f"{n}-{mode}"
                shutil.copytree(state / "logs", kept, dirs_exist_ok=True)
                print(f"   logs kept in {kept}", flush=True)


def _measure(mode: str, tenants: Tenants, settings: Settings, state: Path, stack: Any,
             args: argparse.Namespace) -> Result:
    broker = redis.Redis.from_url(settings.broker_url)
    registry = Registry(broker)
    now = time.time()
    for client_id in tenants.all:
        registry.register(client_id, cluster_name=client_id, now=now)
    for client_id in tenants.idle:  # idle for long: beat took their workers away already
        broker.hset(client_key(client_id), "idle_since", now - 2 * settings.scale_idle_grace_s)
    beat = Beat(settings)
    fork = multiprocessing.get_context("fork")
    stop_load, stop_control = fork.Event(), fork.Event()
    produced, workers, assigned = fork.Value("q", 0), fork.Value("q", 0), fork.Value("q", 0)
    processes: list[ManagedProcess] = []

    def start(name: str, argv: list[str]) -> None:
        process = ManagedProcess(name, argv, run_dir=state / "run", log_dir=state / "logs",
                                 env=settings.child_env())
        process.start()
        processes.append(process)

    start("bridge", [sys.executable, "-m", "kgcelery", "bridge"])
    if mode == "fleet":
        for index in range(1, args.fleet + 1):
            start(f"fleet-{index}", fleet_worker_argv(index, settings))
        workers.value = args.fleet
    control = fork.Process(target=reconcile, args=(
        settings, stop_control, workers if mode == "local" else None, assigned,
        1.0 if mode == "local" else settings.reconcile_interval_s), daemon=False)
    producer = fork.Process(target=produce_load, args=(
        settings, sample_records(20_000), tenants.second(), stop_load, produced))
    control.start()
    try:
        settled = settle(beat, assigned)
        producer.start()
        return _timeline(mode, tenants, settings, stack, broker, registry, beat, workers,
                         produced, stop_load, producer, args, settled)
    finally:
        stop_load.set()
        stop_control.set()
        if producer.pid is not None:
            producer.join(120)
        control.join(300)
        stop_together(list(reversed(processes)), timeout=60)


def workers_cpu_s() -> float:
    """CPU seconds used so far by this run's Celery workers: every process below this one
    that runs a Celery worker, pool processes included (from /proc; 0 elsewhere)."""
    total = 0.0
    for pid in descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if b"celery" in command and b"worker" in command:
            total += cpu_s(pid)
    return total


def settle(beat: Beat, assigned: Any) -> float:
    """Run beat until the reconciler's assignments stop changing (the workers of a
    steady state, before the load: not a start-up backlog in the figures); seconds."""
    began = time.monotonic()
    seen, since = -1, began
    while time.monotonic() - began < SETTLE_MAX_S:
        if beat.due():
            beat.run()
        if assigned.value != seen:
            seen, since = assigned.value, time.monotonic()
        elif seen > 0 and time.monotonic() - since >= SETTLED_AFTER_S:
            break
        time.sleep(0.2)
    print(f"   workers settled in {time.monotonic() - began:.0f} s ({seen} per client, "
          "summed)", flush=True)
    return time.monotonic() - began


def _timeline(mode: str, tenants: Tenants, settings: Settings, stack: Any,
              broker: redis.Redis, registry: Registry, beat: Beat, workers: Any,
              produced: Any, stop_load: Any, producer: Any, args: argparse.Namespace,
              settled: float) -> Result:
    began = time.monotonic()
    restarted: list[tuple[float, str]] = []
    window_at, window_end = began + args.warmup, began + args.warmup + args.seconds
    heartbeat_at = began + HEARTBEAT_EVERY_S
    worker_counts: list[int] = []
    before: dict[str, dict[int, int]] = {}
    at_end: dict[str, dict[int, int]] = {}
    commands = [0, 0]
    memory = 0

    def step() -> None:
        nonlocal heartbeat_at
        # As kgcelery up does; a run whose server died says so (its figures are not
        # the pipeline's), and the server's log is kept with the others (--keep-logs).
        for name in stack.restart_dead():
            restarted.append((round(time.monotonic() - began, 1), name))
            print(f"   {name} exited {restarted[-1][0]:.0f} s into the load; started again",
                  flush=True)
        if beat.due():
            beat.run()
        if time.monotonic() >= heartbeat_at:
            heartbeat_at += HEARTBEAT_EVERY_S
            for client_id in tenants.all:
                registry.heartbeat(client_id, time.time())
        time.sleep(0.2)

    print(f"== {len(tenants.all)} clients ({len(tenants.loud)} loud, {len(tenants.quiet)} "
          f"quiet, {len(tenants.idle)} idle), {mode}: warm-up {args.warmup:.0f} s", flush=True)
    while time.monotonic() < window_at:
        step()
    before = {"quiet": written(broker, tenants.quiet), "loud": written(broker, tenants.loud)}
    commands[0] = int(broker.info("stats")["total_commands_processed"])
    tasks = [published(broker), 0]
    cpu = [workers_cpu_s(), 0.0]
    print(f"   measuring {args.seconds:.0f} s", flush=True)
    while time.monotonic() < window_end:
        step()
        worker_counts.append(workers.value)
    commands[1] = int(broker.info("stats")["total_commands_processed"])
    tasks[1] = published(broker)
    cpu[1] = workers_cpu_s()
    at_end = {"quiet": written(broker, tenants.quiet), "loud": written(broker, tenants.loud)}
    stop_load.set()
    producer.join(120)
    total = produced.value
    memory = int(broker.info("memory")["used_memory_peak"])
    print(f"   draining (up to {args.drain:.0f} s)", flush=True)
    drain_from = time.monotonic()
    topics = [t for t, k in settings.topics.items() if k in KINDS]
    left: dict[str, int] = {"quiet": 0, "loud": 0}
    while True:
        work = work_of(broker, tenants.all, default_records_per_task=settings.batch_max_records)
        left = {"quiet": sum(work[c].records for c in tenants.quiet),
                "loud": sum(work[c].records for c in tenants.loud)}
        lag = total - committed(settings, topics)
        if (not any(left.values()) and lag <= 0) or time.monotonic() - drain_from > args.drain:
            break
        step()
    drained = time.monotonic() - drain_from
    final = {"quiet": written(broker, tenants.quiet), "loud": written(broker, tenants.loud)}
    in_window = sum(at_end["quiet"].values()) + sum(at_end["loud"].values()) - sum(
        before["quiet"].values()) - sum(before["loud"].values())
    passes = beat.since(window_at)
    result = Result(
        mode=mode, clients=len(tenants.all), rate=in_window / args.seconds,
        p99_quiet=p99_text(minus(final["quiet"], before["quiet"]), left["quiet"], drained),
        p99_loud=p99_text(minus(final["loud"], before["loud"]), left["loud"], drained),
        workers=max(worker_counts, default=0), beat_pass_ms=max(passes, default=0.0),
        redis_commands_s=(commands[1] - commands[0]) / args.seconds)
    written_total = sum(final["quiet"].values()) + sum(final["loud"].values())
    result.details = {
        "offered_records_s": args.rate, "produced": total, "written": written_total,
        "tasks_published_s": round((tasks[1] - tasks[0]) / args.seconds),
        # What the workers spend per record: the Celery part of a take is most of it
        # at a thousand clients (docs/BENCHMARKS.md).
        "worker_cpu_ms_per_1000_records": round((cpu[1] - cpu[0]) * 1e6 / in_window)
        if in_window else None,
        "left_after_drain": left, "kafka_lag_after_drain": max(lag, 0),
        "drained_s": round(drained, 1), "settled_s": round(settled),
        "beat_pass_ms_median": round(statistics.median(passes), 1) if passes else None,
        "beat_passes": [(round(e, 1), round(s, 1)) for _, e, s in beat.passes],
        "workers_mean": round(statistics.mean(worker_counts), 1) if worker_counts else 0,
        "redis_peak_mb": round(memory / 2**20, 1), "load_average": os.getloadavg(),
        "servers_restarted": restarted,
    }
    return result


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--mode", choices=["fleet", "local"], required=True)
    parser.add_argument("--rate", type=float, default=5000.0, help="records/s in total")
    parser.add_argument("--seconds", type=float, default=45.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds after, at most")
    parser.add_argument("--fleet", type=int, default=4, help="fleet worker processes")
    parser.add_argument("--keep-logs", metavar="DIR",
                        help="copy every process's log there (per size and mode)")
    args = parser.parse_args()
    result = run(args.mode, args.clients, args)
    print(result.line(), flush=True)
    print(json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
