"""Several small ingest tasks of one client, taken at once, as one task.

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
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson

from kgcelery.kinds import KIND_OF_TASK, MERGED_TASK

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
    """The one message carrying ``messages`` (kombu's decoded envelopes, oldest first), or
    None when they are not all the bridge's ingest tasks of one client."""
    batches: dict[str, list[Any]] = {}
    client_id, embed = None, None
    for message in messages:
        batch = _batch_of(message)
        if batch is None:
            return None
        kind, client, records, origins, embed_of = batch
        if client_id is None:
            client_id, embed = client, embed_of
        elif client != client_id:
            return None
        into = batches.setdefault(kind, [kind, [], []])
        into[1] += records
        into[2] += origins
    first = messages[0]
    task_id = str(uuid.uuid4())
    count = sum(len(batch[1]) for batch in batches.values())
    body = orjson.dumps([[client_id, list(batches.values())], {}, embed])
    headers = {**first["headers"], "task": MERGED_TASK, "id": task_id, "root_id": task_id,
               "parent_id": None, "origin": MERGED_ORIGIN,
               "argsrepr": f"({client_id!r}, <{count} merged records>)"}
    properties = {**first["properties"], "correlation_id": task_id,
                  "delivery_tag": str(uuid.uuid4())}
    return {**first, "body": base64.b64encode(body).decode("ascii"), "headers": headers,
            "properties": properties}
