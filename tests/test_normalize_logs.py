"""Unit tables: log record shapes, severity detection, and folding into patterns."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kgcelery.errors import RejectedRecordError
from kgcelery.model.timeparse import to_epoch
from kgcelery.normalize.logs import LogLine, fold_logs, normalize_log, pattern_rows
from kgcelery.normalize.severity import severity_of

T0 = "2026-01-12T15:21:03.850688978Z"


@pytest.mark.parametrize(("value", "expected"), [
    # Vector kubernetes_logs
    ({"message": "ERROR boom", "timestamp": T0,
      "kubernetes": {"pod_name": "web-1", "pod_namespace": "shop", "container_name": "web",
                     "pod_uid": "u1", "pod_node_name": "node-a"}},
     ("Container", "Container/shop/web-1/web", "error", "node-a")),
    # flat
    ({"namespace": "shop", "pod_name": "web-1", "container_name": "web", "message": "hello",
      "timestamp": T0}, ("Container", "Container/shop/web-1/web", "info", "")),
    # flat without a container: the pod emitted it
    ({"namespace": "shop", "pod_name": "web-1", "message": "WARN slow", "timestamp": T0},
     ("Pod", "Pod/shop/web-1", "warning", "")),
    # OpenShift ViaQ, flattened
    ({"kubernetes_namespace_name": "shop", "kubernetes_pod_name": "web-1",
      "kubernetes_container_name": "web", "kubernetes_host": "crc", "level": "error",
      "message": "x", "timestamp": T0}, ("Container", "Container/shop/web-1/web", "error", "crc")),
    # OpenTelemetry-style k8s_* fields, and ViaQ's "default" level (unknown: read the text)
    ({"k8s_namespace_name": "shop", "k8s_pod_name": "web-1", "k8s_container_name": "web",
      "level": "default", "message": "E0112 15:21:03.850000 1 x.go:1] failed", "timestamp": T0},
     ("Container", "Container/shop/web-1/web", "error", "")),
    # a journald record from a node
    ({"hostname": "oscar7", "message": "kubelet started", "PRIORITY": "6", "timestamp": T0},
     ("Node", "Node/oscar7", "info", "oscar7")),
])
def test_log_shapes(value: dict[str, Any], expected: tuple[str, str, str, str]) -> None:
    [line] = normalize_log(value)
    assert (*line.emitter, line.severity, line.node) == expected
    assert line.time == pytest.approx(to_epoch(T0))


def test_fluent_bit_records_are_time_and_record() -> None:
    record = [1554141513.598656, {"log": "Fluent Bit is logging\n", "stream": "stdout",
                                  "kubernetes": {"pod_name": "p", "namespace_name": "core",
                                                 "container_name": "fluent-bit", "host": "h"}}]
    [line] = normalize_log(record)
    assert line.emitter == ("Container", "Container/core/p/fluent-bit")
    assert line.message == "Fluent Bit is logging" and line.time == 1554141513.598656


def test_a_loki_response_holds_many_lines() -> None:
    viaq = {"hostname": "oscar7", "level": "error", "message": "E1117 boom"}
    response = {"status": "success", "data": {"resultType": "streams", "result": [
        {"stream": {"kubernetes_host": "oscar7"},
         "values": [["1668716356906752956", json.dumps(viaq)], ["1668716356906752957", "plain"]]}]}}
    lines = normalize_log(response)
    assert [line.severity for line in lines] == ["error", "info"]
    assert lines[0].time == pytest.approx(1668716356.906753)


@pytest.mark.parametrize(("record", "message", "severity"), [
    ({"level": "warn"}, "x", "warning"), ({"severity": "ERROR"}, "x", "error"),
    ({"log.level": "fatal"}, "x", "critical"), ({"PRIORITY": 3}, "x", "error"),
    ({"PRIORITY": "4"}, "x", "warning"), ({"level": "debug"}, "ERROR in text", "info"),
    ({}, '{"level":"error","msg":"boom"}', "error"),
    ({}, '{"severity":"warning","message":"slow"}', "warning"),
    ({}, "W0102 12:00:00.000000 1 x.go:1] hmm", "warning"),
    ({}, "F0102 12:00:00.000000 1 x.go:1] dead", "critical"),
    ({}, 'time="2022-11-17" level=error msg="x"', "error"),
    ({}, "ERROR: Failed to connect to database: connection refused", "error"),
    ({}, "[warn] disk almost full", "warning"),
    ({}, "2026-01-12T15:21:03.850Z\tinfo\tExporting failed. Will retry", "info"),
    ({}, "2026-01-12 15:21:03,850 WARNING pool exhausted", "warning"),
    ({}, "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>", "error"),
    ({}, "java.lang.NullPointerException: null", "error"),
    ({}, "\tat com.shop.Cart.add(Cart.java:42)", "error"),
    ({}, "panic: runtime error: index out of range", "critical"),
    ({}, "goroutine 1 [running]:", "error"),
    ({}, "Database connection failed after 3 retries", "warning"),
    ({}, "GET /healthz 200 1ms", "info"),
])
def test_severity_detection(record: dict[str, Any], message: str, severity: str) -> None:
    assert severity_of(record, message) == severity


def line(message: str, severity: str, time: float, pod: str = "web-1") -> LogLine:
    return LogLine("shop", pod, "web", "", severity, time, message)


def test_folding_counts_lines_and_keeps_patterns_of_warnings_and_errors() -> None:
    lines = [line("GET /x 200", "info", 1.0), line("GET /y 200", "info", 2.0),
             line("timeout after 30s talking to 10.0.0.7:5432", "warning", 5.0),
             line("timeout after 12s talking to 10.0.0.9:5432", "error", 3.0),
             line("disk full", "error", 4.0, pod="web-2")]
    emitters = {e.id: e for e in fold_logs(lines)}
    web1 = emitters["Container/shop/web-1/web"]
    assert (web1.lines, web1.info_lines) == (4, 2)
    [pattern] = web1.patterns.values()
    assert pattern.pattern == "timeout after <num>s talking to <ip>"
    assert (pattern.count, pattern.first_seen, pattern.last_seen) == (2, 3.0, 5.0)
    assert pattern.severity == "error"  # the worst seen
    assert pattern.sample == "timeout after 12s talking to 10.0.0.9:5432"  # the earliest
    assert web1.row()["pod_id"] == "Pod/shop/web-1"
    assert emitters["Container/shop/web-2/web"].patterns


def test_pattern_rows_merge_emitters_so_each_pattern_is_one_row() -> None:
    lines = [line("timeout after 1s", "warning", 5.0), line("timeout after 2s", "error", 7.0,
                                                            pod="web-2")]
    [row] = pattern_rows(fold_logs(lines))
    assert (row["count"], row["severity"], row["rank"]) == (2, "error", 2)
    assert (row["first_seen"], row["last_seen"], row["sample"]) == (5.0, 7.0, "timeout after 1s")
    assert [e["id"] for e in row["emitters"]] == ["Container/shop/web-1/web",
                                                  "Container/shop/web-2/web"]


@pytest.mark.parametrize(("value", "reason"), [
    ("text", "unrecognized-log"), (7, "unrecognized-log"),
    ({"message": "no metadata"}, "unattributed-log"),
    ({"log": "x", "stream": "stdout", "time": T0}, "unattributed-log"),
])
def test_unusable_log_records_are_rejected(value: Any, reason: str) -> None:
    with pytest.raises(RejectedRecordError) as info:
        normalize_log(value)
    assert info.value.reason == reason
