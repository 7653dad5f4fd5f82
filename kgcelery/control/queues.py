"""Queue depths and tasks in flight, as the Redis broker holds them.

With late acks a task stays out of its list from delivery until its ack, so ``LLEN``
alone reads low: a worker busy with a 500-record batch, or one killed mid-task, holds
work that is not yet in the graph. kombu's Redis transport keeps every delivered,
unacknowledged message in the ``unacked`` hash (delivery tag ->
``[message, exchange, routing_key]``) until its ack or its restore after the
visibility timeout; counting that hash per routing key (the queue name for our direct
queues) gives the tasks in flight of every client in one round trip, including those
of a dead worker that only the visibility timeout will bring back. A script does the
counting inside Redis so the message bodies (up to a megabyte each) never cross the
network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis

from kgcelery.clients import client_of_queue, queue_for

#: kombu's Redis transport keeps priority levels in extra lists named ``<queue>\x06\x16<n>``.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
#: kombu's default ``unacked_key`` (transport option); we do not change it.
UNACKED_KEY = "unacked"

# The routing key is the last JSON string of the stored [message, exchange, routing_key].
_IN_FLIGHT_SCRIPT = """
local counts = {}
for _, value in ipairs(redis.call('HVALS', KEYS[1])) do
  local key = string.match(string.sub(value, -300), '"([^"]*)"%s*%]%s*$')
  if key then counts[key] = (counts[key] or 0) + 1 end
end
local out = {}
for key, n in pairs(counts) do out[#out + 1] = key; out[#out + 1] = n end
return out
"""

# Records per task from the newest and the oldest task's ``argsrepr`` header, which the
# bridge writes as "('af-9', <500 event records>)"; -1 where a task does not say.
_SAMPLE_SCRIPT = """
local out = {}
for _, index in ipairs({0, -1}) do
  local message = redis.call('LINDEX', KEYS[1], index)
  -- The headers come after the body: search the tail, not the whole message.
  local n = message and string.match(string.sub(message, -4096), '<(%d+) [%w_]+ records>')
  out[#out + 1] = tonumber(n or -1)
end
return out
"""


@dataclass(frozen=True)
class QueueWork:
    """One client's work in the broker: tasks waiting, tasks in flight, records (estimated)."""

    queued: int = 0
    in_flight: int = 0
    records: int = 0

    @property
    def backlog(self) -> int:
        """Tasks not yet done: waiting plus in flight."""
        return self.queued + self.in_flight


def queue_depth(client: redis.Redis, client_id: str) -> int:
    """Tasks waiting in a client's queue (not counting ones a worker holds)."""
    queue = queue_for(client_id)
    pipe = client.pipeline()
    pipe.llen(queue)
    for step in _PRIORITY_STEPS:
        pipe.llen(f"{queue}{_PRIORITY_SEPARATOR}{step}")
    return int(sum(pipe.execute()))


def queue_depths(client: redis.Redis, client_ids: list[str]) -> dict[str, int]:
    return {client_id: queue_depth(client, client_id) for client_id in client_ids}


def in_flight(client: redis.Redis) -> dict[str, int]:
    """Tasks delivered to a worker and not yet acknowledged, per client."""
    flat = client.eval(_IN_FLIGHT_SCRIPT, 1, UNACKED_KEY)
    counts: dict[str, int] = {}
    for routing_key, count in zip(flat[::2], flat[1::2], strict=True):
        key = routing_key.decode() if isinstance(routing_key, bytes) else str(routing_key)
        client_id = client_of_queue(key)
        if client_id is not None:
            counts[client_id] = counts.get(client_id, 0) + int(count)
    return counts


def records_per_task(client: redis.Redis, client_id: str, default: int) -> float:
    """Records in one of the client's tasks, sampled from the ends of its queue."""
    samples = [int(n) for n in client.eval(_SAMPLE_SCRIPT, 1, queue_for(client_id)) if n >= 0]
    return sum(samples) / len(samples) if samples else float(default)


def work_of(client: redis.Redis, client_ids: Iterable[str], *,
            default_records_per_task: int) -> dict[str, QueueWork]:
    """Queued and in-flight tasks and estimated records of each client.

    :param default_records_per_task: the estimate where no queued task says its size
        (a full batch, ``BATCH_MAX_RECORDS``: the size that matters when work piles up).
    """
    flying = in_flight(client)
    work: dict[str, QueueWork] = {}
    for client_id in client_ids:
        queued = queue_depth(client, client_id)
        tasks = queued + flying.get(client_id, 0)
        per_task = (records_per_task(client, client_id, default_records_per_task)
                    if queued else float(default_records_per_task))
        work[client_id] = QueueWork(queued, flying.get(client_id, 0),
                                    round(tasks * per_task))
    return work
