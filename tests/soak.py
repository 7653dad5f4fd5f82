"""The soak: the fault tests' faults, at random, under a steady stream, for a while.

``make soak`` runs it (``SOAK_SECONDS``, default 300; ``SOAK_RATE`` events/s, default
1500; ``SOAK_SEED`` for a repeatable order of faults). Three clients, one ten times
louder than the others, two bridges, a worker per client; every ``SOAK_EVERY`` seconds
(default 8) one fault from :data:`FAULTS`. At the end every event must be in its graph
exactly once and every malformed record in ``dlq.raw`` with its reason; the last line
says what was injected and what was found, as the fault tests do.

Not collected by the normal suite (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kgcelery.clients import queue_for
from kgcelery.control.registry import Registry
from kgcelery.embedded.process import ManagedProcess
from kgcelery.graph import GraphStore, open_store
from kgcelery.settings import Settings
from tests.fault_support import (
    FAULT_SETTINGS,
    MALFORMED_REASONS,
    MAX_VALUE_BYTES,
    DedicatedServices,
    Feeder,
    Ledger,
    assert_exactly_once,
    kill_mid_task,
    malformed_records,
    restart,
    settle,
)
from tests.helpers import Processes, produce

pytestmark = pytest.mark.integration

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "1500"))
SOAK_EVERY = float(os.environ.get("SOAK_EVERY", "8"))
SOAK_SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))

FAULTS = ("pool child kill -9", "worker kill -9", "bridge kill -9", "broker restart",
          "graph down 10 s", "malformed burst")


class Soak:
    """The running system of the soak and the faults it can suffer."""

    def __init__(self, settings: Settings, services: DedicatedServices,
                 processes: Processes, clients: list[str]) -> None:
        self.settings = settings
        self.services = services
        self.processes = processes
        self.clients = clients
        self.broker = redis.Redis.from_url(settings.broker_url)
        self.started = 0
        self.malformed = 0
        self.bridges = [processes.bridge(settings, name=f"bridge-{n}") for n in (1, 2)]
        self.workers = {client: self._worker(client) for client in clients}

    def _worker(self, client: str) -> ManagedProcess:
        self.started += 1
        return self.processes.worker(queue_for(client), self.settings,
                                     name=f"{client}-{self.started}")

    def inject(self, fault: str, rng: random.Random) -> str:
        """Inject ``fault``; what was done, for the report."""
        client = rng.choice(self.clients)
        if fault == "pool child kill -9" or fault == "worker kill -9":
            whole = fault == "worker kill -9"
            try:
                kill_mid_task(self.workers[client], self.broker, client, whole_worker=whole)
            except AssertionError:
                return f"{fault} of {client}: missed (no task running)"
            if whole:
                self.workers[client] = self._worker(client)
            return f"{fault} of {client}"
        if fault == "bridge kill -9":
            index = rng.randrange(len(self.bridges))
            self.bridges[index].kill()
            self.bridges[index] = self.processes.bridge(
                self.settings, name=f"bridge-{index + 1}-{self.started}")
            self.started += 1
            return fault
        if fault == "broker restart":
            restart(self.services.broker)
            return fault
        if fault == "graph down 10 s":
            restart(self.services.graph, down_for=10.0)
            return fault
        bad = malformed_records(client, "never-registered", 6 * rng.randint(20, 100))
        produce(self.settings, self.settings.topics_of("event")[0], bad)
        self.malformed += len(bad)
        return f"{fault} of {len(bad)}"


@pytest.fixture
def services(stack_settings: Settings, tmp_path: Path) -> Iterator[DedicatedServices]:
    own = DedicatedServices(stack_settings, tmp_path / "services")
    try:
        own.start()
        yield own
    finally:
        own.stop()


def test_soak(test_settings: Settings, services: DedicatedServices, processes: Processes,
              client_ids: list[str]) -> None:
    rng = random.Random(SOAK_SEED)
    settings = services.settings_for(test_settings, max_value_bytes=MAX_VALUE_BYTES,
                                     **FAULT_SETTINGS)
    loud, *quiet = client_ids[:3]
    registry = Registry.from_url(settings.registry_url)
    for client in (loud, *quiet):
        registry.register(client, cluster_name=f"{client}-cluster")
    soak = Soak(settings, services, processes, [loud, *quiet])
    ledger = Ledger()
    feeder = Feeder(settings, ledger, {loud: 10, **dict.fromkeys(quiet, 1)},
                    rate=SOAK_RATE).start()
    injected: Counter[str] = Counter()
    print(f"\nsoak: {SOAK_SECONDS:.0f} s at {SOAK_RATE:.0f} events/s, a fault every "
          f"{SOAK_EVERY:.0f} s, seed {SOAK_SEED}")
    started = time.monotonic()
    try:
        while time.monotonic() - started < SOAK_SECONDS:
            time.sleep(SOAK_EVERY)
            fault = rng.choice(FAULTS)
            done = soak.inject(fault, rng)
            injected[fault] += 1
            print(f"[{time.monotonic() - started:6.1f} s] {done}; "
                  f"{feeder.sent} events sent", flush=True)
    finally:
        feeder.stop()
    graph: GraphStore = open_store(settings)
    try:
        result = settle(graph, ledger, settings, timeout=180)
    finally:
        graph.close()
    summary = ", ".join(f"{n} {fault}" for fault, n in sorted(injected.items()))
    print(result.line(summary))
    per_reason = soak.malformed // len(MALFORMED_REASONS)
    expected = dict.fromkeys(MALFORMED_REASONS, per_reason) if soak.malformed else {}
    assert_exactly_once(result, dead_lettered=expected)
