"""Unit table: what log-pattern masking hides, and what it keeps."""

from __future__ import annotations

import pytest

from kgcelery.normalize.logpatterns import MAX_PATTERN_CHARS, mask, pattern_id


@pytest.mark.parametrize(("line", "pattern"), [
    ("retry 3 of 10 after 2.5s", "retry <num> of <num> after <num>s"),
    ("pod uid 796af1ab-cf12-41d0-8908-2d23e163b027 gone", "pod uid <uuid> gone"),
    ("dial tcp 10.217.4.166:8090: connect: connection refused",
     "dial tcp <ip>: connect: connection refused"),
    ("from 10.0.0.0/16 via fe80::1ff:fe23:4567:890a", "from <ip> via <ip>"),
    ("mac 0a:58:0a:d9:01:3c up", "mac <ip> up"),
    ("container 56e257661383836fac4cd90a23ee8a7a ready", "container <hex> ready"),
    ("addr 0x7f3a1c", "addr <hex>"),
    ("image sha256:2ee07e3f3ba61b96597c78ab0aa7b837d771b375888b020da7a7316bb524b6e8",
     "image sha256:<hex>"),
    ("nc: bad address 'postgres-service.database'", "nc: bad address '<*>'"),
    ('user "alice" denied', 'user "<*>" denied'),
    # JSON keys stay, JSON values go.
    ('failed {"error": "EOF", "retries": 3}', 'failed {"error": "<*>", "retries": <num>}'),
    # A structured klog line: header reduced, its quoted message kept, values masked.
    ('E1117 20:19:16.053330    3289 pod_workers.go:951] "Error syncing pod, skipping" '
     'err="back-off 5m0s" pod="openshift-demo/httpd-676d9bc46d-9wlnd"',
     'E pod_workers.go:<num>] "Error syncing pod, skipping" err="<*>" pod="<*>"'),
    ("2026-01-12T15:21:03.850Z\terror\tExporting failed", "error Exporting failed"),
    ("[2026-01-12 15:21:03,850] WARN slow at 15:21:03", "WARN slow at <time>"),
    ("deadline 2026-01-12T15:21:03Z passed", "deadline <ts> passed"),
    # Words with digits, and versions, keep them.
    ("k8s v1.33.4 on node-7d4b ok", "k8s v1.33.4 on node-7d4b ok"),
    ("can't connect, don't retry", "can't connect, don't retry"),
    ("Exception in thread main\n\tat x.y(Z.java:1)", "Exception in thread main"),
    ("  spaced    out  ", "spaced out"),
])
def test_masking(line: str, pattern: str) -> None:
    assert mask(line) == pattern


def test_occurrences_of_one_message_share_a_pattern_id() -> None:
    a = mask("timeout after 30s talking to 10.0.0.7:5432 (attempt 3)")
    b = mask("timeout after 5s talking to 10.0.0.9:5432 (attempt 12)")
    assert a == b and pattern_id(a) == pattern_id(b)
    assert pattern_id(a) != pattern_id(mask("disk full"))


def test_patterns_are_bounded() -> None:
    assert len(mask("word " * 1000)) == MAX_PATTERN_CHARS
