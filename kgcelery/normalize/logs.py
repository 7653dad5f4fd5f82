"""Log records to log lines, and a batch of lines to log patterns per emitter.

Accepted shapes (one record each, or a Loki ``query_range`` response holding many):
Vector ``kubernetes_logs`` (``message``, ``timestamp``, ``kubernetes.pod_name /
pod_namespace / container_name / pod_uid / pod_node_name``), fluent-bit's
``[time, {"log", "kubernetes": {"namespace_name", "pod_name", ...}}]``, OpenShift
ViaQ with flattened ``kubernetes_*`` or ``k8s_*`` fields, flat records (``namespace``,
``pod_name``, ``container_name``, ``message``, ``timestamp``), and node journal
records (``hostname`` only: the node emitted them).

Logs are not stored line by line: :func:`fold_logs` counts every line per emitter
(a container, else its pod, else a node) and folds warnings and errors into patterns
(:mod:`.logpatterns`) with a count, first and last seen and one sample line.
Severity detection itself lives in :mod:`.severity`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kgcelery.errors import RejectedRecordError
from kgcelery.model.objects import container_id, object_id
from kgcelery.model.timeparse import first_epoch
from kgcelery.normalize.common import digest, text
from kgcelery.normalize.logpatterns import mask, pattern_id
from kgcelery.normalize.severity import SEVERITY_RANK, severity_of

MAX_SAMPLE_CHARS = 2000
_MESSAGE_FIELDS = ("message", "log", "MESSAGE", "msg", "body", "line")
_TIME_FIELDS = ("timestamp", "@timestamp", "time", "_timestamp", "ts", "observed_timestamp")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line, attributed to the container, pod or node that wrote it."""

    namespace: str
    pod: str
    container: str
    node: str
    severity: str
    time: float | None
    message: str

    @property
    def emitter(self) -> tuple[str, str]:
        """(label, id) of the node that emitted this line."""
        if self.namespace and self.pod and self.container:
            return "Container", container_id(self.namespace, self.pod, self.container)
        if self.namespace and self.pod:
            return "Pod", object_id("Pod", self.namespace, self.pod)
        return "Node", object_id("Node", None, self.node)


def _first(record: dict[str, Any], *names: str) -> str:
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return text(value)
    return ""


def _line(record: dict[str, Any], when: Any = None) -> LogLine:
    kube: dict[str, Any] = record["kubernetes"] if isinstance(
        record.get("kubernetes"), dict) else {}
    namespace = _first(kube, "pod_namespace", "namespace_name", "namespace") or _first(
        record, "kubernetes_namespace_name", "k8s_namespace_name", "namespace")
    pod = _first(kube, "pod_name") or _first(record, "kubernetes_pod_name", "k8s_pod_name",
                                             "pod_name", "pod")
    container = _first(kube, "container_name") or _first(
        record, "kubernetes_container_name", "k8s_container_name", "container_name", "container")
    node = _first(kube, "pod_node_name", "host") or _first(
        record, "kubernetes_host", "k8s_node_name", "node_name", "hostname", "host")
    message = _first(record, *_MESSAGE_FIELDS)
    if not (namespace and pod) and not node:
        raise RejectedRecordError("unattributed-log",
                                  "a log record needs a namespace and pod (or a node/hostname)")
    return LogLine(namespace=namespace if pod else "", pod=pod if namespace else "",
                   container=container if (namespace and pod) else "", node=node,
                   severity=severity_of(record, message), message=message.rstrip("\n"),
                   time=first_epoch(when, *(record.get(name) for name in _TIME_FIELDS)))


def normalize_log(value: Any) -> list[LogLine]:
    """One input value to its log lines.

    Raises :class:`RejectedRecordError` (``unrecognized-log``, ``unattributed-log``).
    """
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict):
        return [_line(value[1], value[0])]  # fluent-bit [time, record]
    if not isinstance(value, dict):
        raise RejectedRecordError("unrecognized-log",
                                  f"a log record must be a JSON object, not {type(value).__name__}")
    data = value.get("data")
    if isinstance(data, dict) and isinstance(data.get("result"), list):
        return [line for stream in data["result"] if isinstance(stream, dict)
                for line in _loki_stream(stream)]
    return [_line(value)]


def _loki_stream(stream: dict[str, Any]) -> Iterable[LogLine]:
    labels: dict[str, Any] = stream["stream"] if isinstance(stream.get("stream"), dict) else {}
    for entry in stream.get("values") or []:
        when, raw = entry[0], text(entry[1])
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = {**labels, **body} if isinstance(body, dict) else {**labels, "message": raw}
        yield _line(record, int(when) / 1e9 if text(when).isdigit() else when)


@dataclass(slots=True)
class PatternCount:
    """A pattern's occurrences in one batch, from one emitter."""

    id: str
    pattern: str
    severity: str
    count: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    sample: str = ""
    sample_v: str = ""

    def add(self, line: LogLine) -> None:
        self.count += 1
        if line.time is not None:
            self.first_seen = min(self.first_seen or line.time, line.time)
            self.last_seen = max(self.last_seen or line.time, line.time)
        if SEVERITY_RANK[line.severity] > SEVERITY_RANK[self.severity]:
            self.severity = line.severity
        # The earliest line is the sample, whichever batch it arrives in.
        candidate = f"{round((line.time or 0) * 1000):015d}.{digest(line.message)}"
        if not self.sample_v or candidate < self.sample_v:
            self.sample, self.sample_v = line.message[:MAX_SAMPLE_CHARS], candidate


@dataclass(slots=True)
class EmitterLogs:
    """Everything one batch says about one emitter's logs."""

    label: str
    id: str
    namespace: str
    pod: str
    name: str
    lines: int = 0
    info_lines: int = 0
    patterns: dict[str, PatternCount] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The emitter's row (its patterns go in :func:`pattern_rows`)."""
        pod_id = object_id("Pod", self.namespace, self.pod) if self.pod else ""
        return {"id": self.id, "namespace": self.namespace, "name": self.name,
                "pod": self.pod, "pod_id": pod_id, "lines": self.lines,
                "info_lines": self.info_lines}


def pattern_rows(emitters: Iterable[EmitterLogs]) -> list[dict[str, Any]]:
    """One row per pattern over these emitters, listing what each emitter contributed:
    a statement must update each pattern node from one row only."""
    merged: dict[str, PatternCount] = {}
    contributions: dict[str, list[dict[str, Any]]] = {}
    for emitter in emitters:
        for pid, found in sorted(emitter.patterns.items()):
            total = merged.setdefault(pid, PatternCount(pid, found.pattern, found.severity))
            total.count += found.count
            for seen in (found.first_seen, found.last_seen):
                if seen is not None:
                    total.first_seen = min(total.first_seen or seen, seen)
                    total.last_seen = max(total.last_seen or seen, seen)
            if SEVERITY_RANK[found.severity] > SEVERITY_RANK[total.severity]:
                total.severity = found.severity
            if not total.sample_v or found.sample_v < total.sample_v:
                total.sample, total.sample_v = found.sample, found.sample_v
            contributions.setdefault(pid, []).append(
                {"id": emitter.id, "count": found.count, "first_seen": found.first_seen,
                 "last_seen": found.last_seen})
    return [{"id": p.id, "pattern": p.pattern, "severity": p.severity,
             "rank": SEVERITY_RANK[p.severity], "count": p.count, "first_seen": p.first_seen,
             "last_seen": p.last_seen, "sample": p.sample, "sample_v": p.sample_v,
             "emitters": contributions[pid]} for pid, p in sorted(merged.items())]


def fold_logs(lines: Iterable[LogLine]) -> list[EmitterLogs]:
    """Count lines per emitter; fold warnings and errors into patterns."""
    emitters: dict[str, EmitterLogs] = {}
    for line in lines:
        label, eid = line.emitter
        emitter = emitters.get(eid)
        if emitter is None:
            name = line.container or line.pod or line.node
            emitter = emitters[eid] = EmitterLogs(label, eid, line.namespace, line.pod, name)
        emitter.lines += 1
        if SEVERITY_RANK[line.severity] < SEVERITY_RANK["warning"]:
            emitter.info_lines += 1
            continue
        pattern = mask(line.message) or "<empty>"
        pid = pattern_id(pattern)
        if pid not in emitter.patterns:
            emitter.patterns[pid] = PatternCount(pid, pattern, line.severity)
        emitter.patterns[pid].add(line)
    return [emitters[key] for key in sorted(emitters)]
