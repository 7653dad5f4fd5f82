"""Helpers every normalizer shares: tolerant field reading, and observation versions.

A *version* orders two observations of the same thing so that the graph keeps the
newest whatever order they arrive in. It is one string that compares correctly as
text in Cypher (FalkorDB and Neo4j alike): the observation time in milliseconds, the
Kubernetes resourceVersion, a rank (a deletion beats an update at the same instant)
and a digest of the content, so that two different observations never tie and the
winner never depends on arrival order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import orjson

#: Version ranks: absent from a complete snapshot < updated < deleted, at equal times.
RANK_ABSENT, RANK_UPSERT, RANK_DELETE = 0, 1, 2

_MAX_MS = 10**15 - 1
_MAX_RV = 10**20 - 1


def text(value: Any) -> str:
    """A string field as text; None is empty; NUL characters (which FalkorDB's query
    header cannot carry) are dropped."""
    if value is None:
        return ""
    result = value if isinstance(value, str) else str(value)
    return result.replace("\x00", "") if "\x00" in result else result


def count(*values: Any, default: int = 1) -> int:
    """The first value that is a non-negative integer (or integer text)."""
    for value in values:
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) and value >= 0:
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return default


def optional_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def pairs(mapping: Any) -> list[str]:
    """Kubernetes labels or a selector as sorted ``key=value`` strings (graph properties
    cannot hold maps, and a list of pairs makes selector matching a list test)."""
    if not isinstance(mapping, Mapping):
        return []
    return sorted(f"{text(key)}={text(value)}" for key, value in mapping.items())


_SCALARS = (str, int, float, bool, type(None))


def digest(content: Any, length: int = 12) -> str:
    """A short hash of any JSON-able content, the same in every process (unlike
    ``hash()``); a flat list of scalars takes a faster path than JSON."""
    if isinstance(content, list | tuple) and all(isinstance(x, _SCALARS) for x in content):
        encoded = "\x1f".join(map(repr, content)).encode()
    elif isinstance(content, dict | list | tuple):
        # An observation's content (version tie-breaks): orjson, 10x sooner than json.
        try:
            encoded = orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=str)
        except (orjson.JSONEncodeError, TypeError):  # big integers, non-str keys
            encoded = _json_text(content).encode()
    else:
        encoded = _json_text(content).encode()
    return hashlib.sha1(encoded).hexdigest()[:length]


def _json_text(content: Any) -> str:
    return json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))


def version(at: float | None, resource_version: Any = None, *, rank: int = RANK_UPSERT,
            content: Any = None) -> str:
    """The sortable version of one observation (see the module docstring)."""
    ms = min(max(round(at * 1000), 0), _MAX_MS) if at else 0
    rv_text = text(resource_version)
    rv = min(int(rv_text), _MAX_RV) if rv_text.isdigit() else 0
    return f"{ms:015d}.{rv:020d}.{rank}.{digest(content)}"


def filled(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Every key of ``defaults``, with its default where ``values`` has None.

    XXX: the graph never removes a state property, because FalkorDB 4.16 removes the
    wrong properties when one write removes several of them. An empty value ("", 0,
    0.0, false, []) stands for "absent", and every state property is always written, so
    a newer observation still replaces a stale value.
    """
    return {key: default if values.get(key) is None else values[key]
            for key, default in defaults.items()}


def object_ref(oid: str, kind: str, namespace: str, name: str, uid: str,
               prefix: str = "object_") -> dict[str, Any]:
    """Row fields naming the object a signal is about (``graph.cypher.merge_object``).

    A uid seen on a reference only fills the node's uid until a resource record says
    otherwise (``1.`` sorts below the ``2.<version>`` of resource records); between two
    references the greater uid wins, which is arbitrary but the same in any order, and
    lets a reference that repeats a known uid write nothing.
    """
    uid_v = f"1.{uid}" if uid else ""
    return {f"{prefix}id": oid, f"{prefix}kind": kind, f"{prefix}namespace": namespace,
            f"{prefix}name": name, f"{prefix}uid": uid, f"{prefix}uid_v": uid_v}
