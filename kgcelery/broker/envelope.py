"""A batch of records as a Celery task message, built without kombu.

The body follows Celery's message protocol 2, ``[[client_id, [records...], origins],
{}, embed]``, with each record's JSON spliced in as the producer wrote it: decoding and
re-encoding every record was most of the bridge's time. :func:`redis_envelope` wraps it
as kombu's Redis transport would before LPUSHing it (checked against kombu's own in
``tests/test_broker_contract.py``).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

_EMBED = b'{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'
ORIGIN = "kgcelery-bridge"


def task_body(client_id: str, records: Sequence[bytes], origins: list[list[Any]]) -> bytes:
    """``[[client_id, [records...], origins], {}, embed]`` with records spliced in as is."""
    return b"".join((b"[[", orjson.dumps(client_id), b",[", b",".join(records), b"],",
                     orjson.dumps(origins), b"],{},", _EMBED, b"]"))


def task_headers(task: str, task_id: str, argsrepr: str) -> dict[str, Any]:
    """Celery protocol 2 headers; ``argsrepr`` is what Flower shows for the task and how
    the control plane reads a queued task's size (``records_per_task.lua``)."""
    return {
        "lang": "py", "task": task, "id": task_id, "shadow": None,
        "eta": None, "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": argsrepr, "kwargsrepr": "{}", "origin": ORIGIN, "ignore_result": True,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }


def argsrepr(client_id: str, count: int, kind: str) -> str:
    """``('af-9', <500 event records>)``."""
    return f"({client_id!r}, <{count} {kind} records>)"


def redis_envelope(body: bytes, headers: dict[str, Any], queue: str) -> bytes:
    """The JSON that kombu's Redis transport LPUSHes for this task (direct exchange named
    after the queue, as kgcelery's queues are declared)."""
    task_id = headers["id"]
    return orjson.dumps({
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": queue, "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })
