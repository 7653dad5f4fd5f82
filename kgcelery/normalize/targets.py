"""Prometheus scrape targets, as the kg agent's state-watcher publishes them on
``state.prom.targets`` (``runPromTargetSync``), to target records.

A record ``{"op": "UPSERT", "at", "cluster", "labels", "scrapeUrl", "health",
"lastScrape", "lastError"}`` is keyed ``<cluster>|<job>|<namespace>|<service>|<instance>``
(the labels' values); a target that disappeared is a null value under that key
(a tombstone: gone). The node is keyed by that key, and linked (``SCRAPES``) to the
objects its labels name: ``pod`` and ``service`` (with ``namespace``), ``node``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kgcelery.errors import RejectedRecordError
from kgcelery.model.objects import label_for, object_id, target_id
from kgcelery.model.timeparse import first_epoch
from kgcelery.normalize.common import RANK_DELETE, filled, object_ref, pairs, text, version

UPSERT, TOMBSTONE = "UPSERT", "TOMBSTONE"
_KEY_LABELS = ("job", "namespace", "service", "instance")
#: Every state property of a target node and its empty value (see ``common.filled``).
TARGET_DEFAULTS: dict[str, Any] = {
    "cluster": "", "job": "", "namespace": "", "service": "", "instance": "", "pod": "",
    "node": "", "health": "", "scrape_url": "", "last_scrape": 0.0, "last_error": "",
    "labels": [], "at": 0.0}
_HEALTH = frozenset({"up", "down", "unknown"})


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """One observation of a scrape target (or its tombstone, ``op`` TOMBSTONE)."""

    id: str
    op: str
    v: str
    props: dict[str, Any] = field(default_factory=dict)
    #: (label, ``object_ref`` row) of each object the target scrapes.
    links: tuple[tuple[str, dict[str, Any]], ...] = ()

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "v": self.v, "at": self.props.get("at"),
                "props": filled(self.props, TARGET_DEFAULTS),
                "link_ids": sorted(row["object_id"] for _, row in self.links)}


def target_key(cluster: str, labels: dict[str, Any]) -> str:
    """The agent's ``targetKey``: ``cluster|job|namespace|service|instance``."""
    return "|".join([cluster, *(text(labels.get(name)) for name in _KEY_LABELS)])


def _links(labels: dict[str, Any]) -> tuple[tuple[str, dict[str, Any]], ...]:
    namespace = text(labels.get("namespace"))
    named = []
    if namespace and labels.get("pod"):
        named.append(("Pod", namespace, text(labels["pod"])))
    if namespace and labels.get("service"):
        named.append(("Service", namespace, text(labels["service"])))
    if labels.get("node"):
        named.append(("Node", "", text(labels["node"])))
    return tuple((label_for(kind), object_ref(object_id(kind, ns, name), kind, ns, name, ""))
                 for kind, ns, name in named)


def _invalid(detail: str) -> RejectedRecordError:
    return RejectedRecordError("invalid-target", detail)


def normalize_target(value: Any, entity: str = "",
                     produced: float | None = None) -> list[TargetRecord]:
    """One ``state.prom.targets`` value (or tombstone, ``None``, its key entity and
    Kafka timestamp ``produced``, which versions it when known).

    Raises :class:`RejectedRecordError` (``invalid-target``, ``unattributable-tombstone``).
    """
    if value is None:
        if entity.count("|") < 4:
            raise RejectedRecordError(
                "unattributable-tombstone",
                "a null target value needs the key entity "
                f"'<cluster>|<job>|<namespace>|<service>|<instance>', not {entity[:200]!r}")
        return [TargetRecord(id=target_id(entity), op=TOMBSTONE, props={"at": produced},
                             v=version(produced, None, rank=RANK_DELETE, content=entity)
                             if produced else "")]
    if not isinstance(value, dict):
        raise _invalid(f"a target must be a JSON object, not {type(value).__name__}")
    labels = value.get("labels")
    if not isinstance(labels, dict):
        raise _invalid("a target needs its labels map (job, namespace, service, instance)")
    op = text(value.get("op") or UPSERT).upper()
    if op != UPSERT:
        raise _invalid(f"a target record's op is UPSERT (removal is a null value), not {op!r}")
    cluster = text(value.get("cluster"))
    key = entity if entity.count("|") >= 4 else target_key(cluster, labels)
    at = first_epoch(value.get("at"))
    health = text(value.get("health")).lower()
    props = {
        "cluster": cluster or None, **{name: text(labels.get(name)) or None
                                       for name in (*_KEY_LABELS, "pod", "node")},
        "health": health if health in _HEALTH else "unknown",
        "scrape_url": text(value.get("scrapeUrl")) or None,
        "last_scrape": first_epoch(value.get("lastScrape")),
        "last_error": text(value.get("lastError")) or None,
        "labels": pairs(labels), "at": at}
    return [TargetRecord(id=target_id(key), op=op, props=props, links=_links(labels),
                         v=version(at, None, content=[key, props]))]
