"""Several small ingest tasks, of one client or of several, taken at once, as one task.

A worker that finds a backlog in a client's queue takes the oldest message and, in the
same script (``lua/take.lua``), the bridge's tasks of the same client behind it, up to
``merge_max_records`` records. :func:`merge` makes them one ``kgcelery.ingest_batches``
task (one batch per kind, in queue order), which the transport records as unacknowledged
in their place in one step (``lua/replace.lua``): a worker lost after that gets the
merged task again, with the same batch ids, so log counts are still added once.

Why: every task costs the same few round trips (take, ack, task events, one graph
statement per kind and label) however few records it carries. A thousand quiet clients
make tasks of a record or two; once they queue up, a worker writes them a few hundred
at a time instead (docs/BENCHMARKS.md, merged takes). Only what the bridge published
and nobody delayed is merged: a retry (``retries`` > 0, an ``eta``) and a task someone
else published are delivered as they are.

A fleet worker serving many client queues also takes the heads of its other queues in
the same script, up to ``merge_max_clients`` clients: :func:`merge` makes them one
``kgcelery.ingest_clients`` task, ``[[client_id, batches], ...]``, which runs each client
as ``ingest_batches`` would, in its own unit. Why: a take costs ~15 ms of CPU (Celery's
dispatch, acks and events in the worker, its pool's trace, Redis, the graph), and with a
thousand clients most takes carry a record or two (docs/BENCHMARKS.md, tenth session):
sharing the take's Celery part between clients is what lets quiet clients be served
more often. Should such a task be restored (its worker lost), :func:`split` puts each
client's part back on that client's own queue, as an ``ingest_batches`` task.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson

from kgcelery.clients import queue_for
from kgcelery.errors import InvalidClientIdError
from kgcelery.kinds import KIND_OF_TASK, MERGED_TASK, MULTI_CLIENT_TASK

#: The ``origin`` header of a merged task (the bridge's is ``kgcelery-bridge``): never
#: merged again, should it be restored to its queue.
MERGED_ORIGIN = "kgcelery-merged"


def _batch_of(message: dict[str, Any]) -> tuple[str, str, list[Any], list[Any], Any] | None:
    """(kind, client id, records, origins, embed) of one bridge ingest message."""
    headers = message.get("headers") or {}
    kind = KIND_OF_TASK.get(headers.get("task", ""))
    props = message.get("properties") or {}
    if kind is None or props.get("body_encoding") != "base64":
        return None
    try:
        args, kwargs, embed = orjson.loads(base64.b64decode(message["body"]))
    except (ValueError, TypeError, KeyError):
        return None
    if kwargs or not isinstance(args, list) or len(args) != 3:
        return None
    client_id, records, origins = args
    if not (isinstance(records, list) and isinstance(origins, list)
            and len(origins) == len(records)):
        return None
    return kind, client_id, records, origins, embed


def merge(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The one message carrying ``messages`` (kombu's decoded envelopes, oldest first):
    ``ingest_batches`` when they are one client's, ``ingest_clients`` when several
    clients'; None when any is not a bridge ingest task."""
    by_client: dict[str, dict[str, list[Any]]] = {}
    embed = None
    for message in messages:
        batch = _batch_of(message)
        if batch is None:
            return None
        kind, client, records, origins, embed_of = batch
        if not by_client:
            embed = embed_of
        into = by_client.setdefault(client, {}).setdefault(kind, [kind, [], []])
        into[1] += records
        into[2] += origins
    count = sum(len(batch[1]) for batches in by_client.values() for batch in batches.values())
    if len(by_client) == 1:
        [(client_id, batches)] = by_client.items()
        return _message(messages[0], MERGED_TASK, [client_id, list(batches.values())], embed,
                        f"({client_id!r}, <{count} merged records>)")
    parts = [[client_id, list(batches.values())] for client_id, batches in by_client.items()]
    return _message(messages[0], MULTI_CLIENT_TASK, [parts], embed,
                    f"(<{len(parts)} clients>, <{count} merged records>)")


def _message(first: dict[str, Any], task: str, args: list[Any], embed: Any,
             argsrepr: str) -> dict[str, Any]:
    """A task message like ``first`` (its envelope and queue), with a new id and tag."""
    task_id = str(uuid.uuid4())
    body = orjson.dumps([args, {}, embed])
    headers = {**first["headers"], "task": task, "id": task_id, "root_id": task_id,
               "parent_id": None, "origin": MERGED_ORIGIN, "argsrepr": argsrepr}
    properties = {**first["properties"], "correlation_id": task_id,
                  "delivery_tag": str(uuid.uuid4())}
    return {**first, "body": base64.b64encode(body).decode("ascii"), "headers": headers,
            "properties": properties}


def split(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]] | None:
    """An ``ingest_clients`` task as one ``ingest_batches`` task per client, each with the
    queue it goes back to; None for any other message, or one that does not decode (it
    is then restored as it is). A client id that is not valid (never so in what the
    bridge published) keeps the task's own queue, where the task dead-letters it."""
    if message.get("headers", {}).get("task") != MULTI_CLIENT_TASK:
        return None
    try:
        [parts], _kwargs, embed = orjson.loads(base64.b64decode(message["body"]))
        out = []
        for client_id, batches in parts:
            count = sum(len(records) for _kind, records, _origins in batches)
            try:
                queue = queue_for(client_id)
            except InvalidClientIdError:
                queue = message["properties"]["delivery_info"]["routing_key"]
            one = _message(message, MERGED_TASK, [client_id, batches], embed,
                           f"({client_id!r}, <{count} merged records>)")
            one["properties"] = {**one["properties"],
                                 "delivery_info": {"exchange": queue, "routing_key": queue}}
            out.append((queue, one))
    except (ValueError, TypeError, KeyError):
        return None
    return out
