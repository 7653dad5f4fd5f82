"""How long the first record of an idle client waits to be in its graph: with the
bridge's wake (``KGCELERY_SCALE_WAKE_S``, 2 s) against beat's scaling runs alone
(``KGCELERY_SCALE_WAKE_S=0``, the baseline), in one run on one embedded stack.

What runs is what ``kgcelery up`` runs: the embedded stack (Tansu, Redis, FalkorDB), the
bridge, a control worker, beat (scaling every ``KGCELERY_SCALE_INTERVAL_S``, 10 s), and
with ``--workers per-client`` (the default) a reconciler with the local scaler passing
every second (a worker process per client), with ``--workers fleet`` two fleet workers
given the client queues by the ``celery`` scaler (``add_consumer``; beat reconciles every
``KGCELERY_RECONCILE_INTERVAL_S``, 5 s, and the wake's run reconciles at once).
``--clients`` clients are registered and left without records until beat
has taken their workers away (idle grace ``--idle-grace`` s); then each in turn, at a
random moment of beat's interval, gets one Kubernetes event on Kafka, and the time from
its production to its Event node in the client's graph is taken. Each phase has its own
Redis database and its own clients.

    .venv/bin/python bench/wake.py [--workers per-client|fleet] [--clients 8]
        [--idle-grace 5] [--keep-logs DIR]

The last line: ``wake (<workers>): first record of an idle client in its graph: median <s> s, max
<s> s; beat's runs alone: median <s> s, max <s> s; <x>x sooner``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import orjson
from celery import Celery
from common import bench_settings, exit_on_sigterm, new_producer, produce

from kgcelery.app import create_app
from kgcelery.clients import CONTROL_QUEUE
from kgcelery.control.observe import active_queues, consumers_per_client
from kgcelery.control.registry import Registry
from kgcelery.control.scalers.local_fleet import fleet_worker_argv
from kgcelery.embedded import open_stack
from kgcelery.embedded.process import ManagedProcess, stop_together
from kgcelery.graph import open_store
from kgcelery.graph.base import GraphStore
from kgcelery.settings import Settings

EVENT = {"kind": "Event", "apiVersion": "v1", "reason": "BackOff", "type": "Warning",
         "message": "Back-off restarting failed container api in pod api-0",
         "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "api-0", "uid": "u"},
         "metadata": {"namespace": "shop", "name": "api-0.1", "uid": "first"}, "count": 1,
         "firstTimestamp": "2026-12-07T10:00:00Z", "lastTimestamp": "2026-12-07T10:00:00Z"}
#: How long to wait for a record in its graph before giving up on it.
GIVE_UP_S = 120.0
FLEET_SIZE = 2


def control_plane(settings: Settings, state: Path, fleet: bool) -> list[ManagedProcess]:
    """Bridge, control worker, beat and a local reconciler or a fleet, started and ready."""
    env = settings.child_env()
    python = sys.executable
    argvs = {
        "bridge": [python, "-m", "kgcelery", "bridge"],
        "control": [python, "-m", "celery", "-A", "kgcelery.app", "worker", "-Q",
                    CONTROL_QUEUE, "-n", "control@%h", "--concurrency", "1",
                    "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
        "beat": [python, "-m", "celery", "-A", "kgcelery.app", "beat", "-s",
                 str(state / "beat-schedule"), "--loglevel", "INFO"],
    }
    ready = {"bridge": "assigned", "control": "ready.", "beat": "beat: Starting",
             "reconciler": "reconciler running"}
    if not fleet:
        argvs["reconciler"] = [python, "-m", "kgcelery", "reconcile"]
    for index in range(1, FLEET_SIZE + 1 if fleet else 1):
        argvs[f"fleet-{index}"] = fleet_worker_argv(index, settings)
        ready[f"fleet-{index}"] = "ready."
    processes = []
    try:
        for name, argv in argvs.items():
            process = ManagedProcess(name, argv, run_dir=state / "run", log_dir=state / "logs",
                                     env=env)
            process.start()
            processes.append(process)
        for process in processes:
            process.wait_until(lambda p=process: ready[p.name] in p.tail(200),  # type: ignore[misc]
                               timeout=90, what="ready")
    except BaseException:
        stop_together(list(reversed(processes)), timeout=60)
        raise
    return processes


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit(f"wake: gave up after {timeout:.0f} s waiting for {what}")


def events_in(graph: GraphStore, client_id: str) -> int:
    with suppress(Exception):  # no graph yet
        return int(graph.run(client_id, "MATCH (e:Event) RETURN count(e)")[0][0])
    return 0


def no_worker(settings: Settings, state: Path, fleet: bool, app: Celery) -> bool:
    """No worker serves a client: no local worker process left (its pid file goes when
    the reconciler has seen it stop), or no fleet worker consumes a client queue (the
    registry's count is as old as the last scaling run)."""
    if fleet:
        return not consumers_per_client(active_queues(app, 1.0))
    return not any((state / "run").glob("worker-*.pid"))


def phase(base: Settings, state: Path, db: int, label: str, wake_s: float,
          clients: int, fleet: bool, rng: random.Random) -> list[float]:
    """Seconds from production to graph of each idle client's first record."""
    url = f"redis://127.0.0.1:{base.embedded_broker_port}/{db}"
    settings = base.model_copy(update={
        "broker_url": url, "registry_url": url, "scale_wake_s": wake_s,
        "state_dir": state / label,
        **({"scaler_backend": "celery", "worker_mode": "fleet"} if fleet
           else {"reconcile_interval_s": 1.0})})
    (state / label).mkdir()
    app = create_app(settings)
    registry = Registry.from_url(url)
    graph = open_store(settings)
    names = [f"{label}-{i:02}" for i in range(clients)]
    for name in names:
        registry.register(name, cluster_name=name)
    processes = control_plane(settings, state / label, fleet)
    producer = new_producer(settings)
    topic = settings.topics_of("event")[0]
    took = []
    try:
        print(f"{label}: {clients} clients registered; waiting for beat to take their "
              "workers away", flush=True)
        wait(lambda: all(r.desired_workers == 0 and r.desired_reason == "idle"
                         for r in registry.all())
             and no_worker(settings, state / label, fleet, app),
             timeout=180, what="every client idle without workers")
        for name in names:
            time.sleep(rng.uniform(0, settings.scale_interval_s))  # anywhere in beat's turn
            produced = time.time()
            produce(producer, topic, f"{name}::event::first".encode(), orjson.dumps(EVENT))
            producer.flush(10)
            wait(lambda n=name: events_in(graph, n) == 1,  # type: ignore[misc]
                 GIVE_UP_S, f"{name}'s record in its graph")
            took.append(time.time() - produced)
            print(f"  {name}: {took[-1]:.1f} s", flush=True)
    finally:
        stop_together(list(reversed(processes)), timeout=60)
        graph.close()
        registry.close()
        app.close()
    return took


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", choices=["per-client", "fleet"], default="per-client",
                        help="a worker process per client (local scaler) or a fleet of "
                             f"{FLEET_SIZE} (celery scaler)")
    parser.add_argument("--clients", type=int, default=8, help="idle clients per phase")
    parser.add_argument("--idle-grace", type=float, default=5.0,
                        help="KGCELERY_SCALE_IDLE_GRACE_S: idle this long, no worker")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the processes' logs here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kgcelery-wake-") as tmp:
        state = Path(tmp)
        settings = bench_settings(state, heartbeat_ttl_s=3600.0,
                                  scale_idle_grace_s=args.idle_grace, worker_mode="per-client")
        fleet = args.workers == "fleet"
        with open_stack(settings):
            woken = phase(settings, state, 1, "woken", settings.scale_wake_s, args.clients,
                          fleet, rng)
            try:
                beat_only = phase(settings, state, 2, "beat", 0.0, args.clients, fleet, rng)
            finally:
                if args.keep_logs:
                    for label in ("woken", "beat"):
                        shutil.copytree(state / label / "logs", Path(args.keep_logs) / label,
                                        dirs_exist_ok=True)
    woke, alone = statistics.median(woken), statistics.median(beat_only)
    print(f"wake ({args.workers}): first record of an idle client in its graph: median "
          f"{woke:.1f} s, max {max(woken):.1f} s; beat's runs alone: median {alone:.1f} s, max "
          f"{max(beat_only):.1f} s; {alone / woke:.1f}x sooner")


if __name__ == "__main__":
    main()
