"""What each workload writes to its log while it is healthy, in its own format.

A voice is how loud a workload is (its share of the log volume) and three line
makers: info, warning and error. Everyday noise only: the failure scenarios write
their own, much more telling lines.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Line = Callable[[random.Random, float], str]


@dataclass(frozen=True, slots=True)
class Voice:
    weight: float
    info: Line
    warn: Line
    error: Line


def _clock(at: float, fmt: str) -> str:
    return datetime.fromtimestamp(at, UTC).strftime(fmt)


def java_time(at: float) -> str:
    return _clock(at, "%Y-%m-%d %H:%M:%S.%f")[:-3]


def _ip(rng: random.Random) -> str:
    return f"10.244.{rng.randint(0, 2)}.{rng.randint(2, 250)}"


_PATHS = ("/", "/products", "/products/{n}", "/cart", "/checkout", "/search?q=shoes",
          "/static/app.{h}.js", "/api/recommendations", "/account/orders")
_SERVICES = ("cart.shop.svc.cluster.local.", "catalog.shop.svc.cluster.local.",
             "redis.shop.svc.cluster.local.", "postgres.payments.svc.cluster.local.",
             "payments-api.payments.svc.cluster.local.", "api.stripe.com.")


def _path(rng: random.Random) -> str:
    return rng.choice(_PATHS).format(n=rng.randint(1, 9999), h=f"{rng.getrandbits(32):08x}")


VOICES: dict[str, Voice] = {
    "storefront": Voice(
        5.0,
        lambda r, t: (f'{{"level":30,"time":{int(t * 1000)},"msg":"request completed",'
                      f'"req":{{"method":"GET","url":"{_path(r)}"}},"res":{{"statusCode":200}},'
                      f'"responseTime":{r.randint(3, 90)}}}'),
        lambda r, t: (f'{{"level":40,"time":{int(t * 1000)},"msg":"slow upstream response",'
                      f'"upstream":"catalog","responseTime":{r.randint(900, 2500)}}}'),
        lambda r, t: (f'{{"level":50,"time":{int(t * 1000)},"msg":"request failed",'
                      f'"err":"socket hang up","url":"{_path(r)}"}}')),
    "cart": Voice(
        4.0,
        lambda r, t: (f"{java_time(t)}  INFO 1 --- [nio-8080-exec-{r.randint(1, 10)}] "
                      f"c.s.cart.web.CartController        : GET /api/cart/{r.randint(1, 99999)} "
                      f"200 in {r.randint(2, 40)}ms"),
        lambda r, t: (f"{java_time(t)}  WARN 1 --- [nio-8080-exec-{r.randint(1, 10)}] "
                      f"c.s.cart.store.RedisCartStore      : Redis command timed out after "
                      f"{r.choice((250, 500))}ms, retrying"),
        lambda r, t: (f"{java_time(t)} ERROR 1 --- [nio-8080-exec-{r.randint(1, 10)}] "
                      "o.a.c.c.C.[.[.[/].[dispatcherServlet] : Servlet.service() threw exception "
                      "java.net.SocketTimeoutException: Read timed out")),
    "catalog": Voice(
        3.0,
        lambda r, t: (f'level=info ts={_clock(t, "%Y-%m-%dT%H:%M:%S.%fZ")} msg="GET '
                      f'/api/products/{r.randint(1, 9999)}" status=200 '
                      f"duration={r.uniform(0.4, 30):.1f}ms"),
        lambda r, t: (f'level=warn ts={_clock(t, "%Y-%m-%dT%H:%M:%S.%fZ")} msg="cache miss, '
                      f'loading from database" key=product:{r.randint(1, 9999)}'),
        lambda r, t: (f'level=error ts={_clock(t, "%Y-%m-%dT%H:%M:%S.%fZ")} msg="search index '
                      f'query failed" err="context deadline exceeded"')),
    "payments": Voice(
        3.0,
        lambda r, t: (f'INFO:     {_ip(r)}:{r.randint(30000, 60000)} - "POST /v1/charges '
                      'HTTP/1.1" 201 Created'),
        lambda r, t: (f"WARNING:  payments.gateway: card network latency {r.randint(900, 3000)}ms "
                      f"for charge ch_{r.getrandbits(48):012x}"),
        lambda r, t: (f"ERROR:    payments.gateway: charge ch_{r.getrandbits(48):012x} declined "
                      "by issuer: do_not_honor")),
    "coredns": Voice(
        2.0,
        lambda r, t: (f'[INFO] {_ip(r)}:{r.randint(30000, 60000)} - {r.randint(1, 65535)} '
                      f'"A IN {r.choice(_SERVICES)} udp 50 false 512" NOERROR qr,aa,rd 104 '
                      f"{r.uniform(0.00005, 0.002):.6f}s"),
        lambda r, t: ("[WARNING] plugin/kubernetes: Kubernetes API connection failure: "
                      "Get \"https://10.96.0.1:443/version\": dial tcp 10.96.0.1:443: i/o timeout"),
        lambda r, t: (f"[ERROR] plugin/errors: 2 api.stripe.com. AAAA: read udp {_ip(r)}:"
                      f"{r.randint(30000, 60000)}->10.0.0.2:53: i/o timeout")),
    "redis": Voice(
        1.0,
        lambda r, t: (f"1:M {_clock(t, '%d %b %Y %H:%M:%S.%f')[:-3]} * "
                      f"{r.randint(10, 500)} changes in 300 seconds. Saving..."),
        lambda r, t: (f"1:M {_clock(t, '%d %b %Y %H:%M:%S.%f')[:-3]} # Client id="
                      f"{r.randint(100, 9999)} addr={_ip(r)}:{r.randint(30000, 60000)} "
                      "closed for overcoming of output buffer limits."),
        lambda r, t: (f"1:M {_clock(t, '%d %b %Y %H:%M:%S.%f')[:-3]} # Background saving "
                      "error")),
    "postgres": Voice(
        1.0,
        lambda r, t: (f"{_clock(t, '%Y-%m-%d %H:%M:%S.%f')[:-3]} UTC [{r.randint(60, 900)}] "
                      f"LOG:  checkpoint complete: wrote {r.randint(10, 900)} buffers"),
        lambda r, t: (f"{_clock(t, '%Y-%m-%d %H:%M:%S.%f')[:-3]} UTC [{r.randint(60, 900)}] "
                      f"LOG:  duration: {r.uniform(1000, 4000):.3f} ms  statement: SELECT * "
                      "FROM ledger_entries WHERE account_id = $1"),
        lambda r, t: (f"{_clock(t, '%Y-%m-%d %H:%M:%S.%f')[:-3]} UTC [{r.randint(60, 900)}] "
                      "ERROR:  duplicate key value violates unique constraint "
                      '"charges_idempotency_key"')),
    "ksm": Voice(
        0.5,
        lambda r, t: (f"I{_clock(t, '%m%d %H:%M:%S.%f')}       1 server.go:{r.randint(80, 200)}] "
                      f"Started metrics server at 0.0.0.0:8080"),
        lambda r, t: (f"W{_clock(t, '%m%d %H:%M:%S.%f')}       1 reflector.go:539] watch of "
                      "*v1.Pod ended with: an error on the server has prevented the request"),
        lambda r, t: (f"E{_clock(t, '%m%d %H:%M:%S.%f')}       1 reflector.go:147] Failed to "
                      "watch *v1.Node: the server has asked for the client to provide "
                      "credentials")),
    "vector": Voice(
        0.5,
        lambda r, t: (f"{_clock(t, '%Y-%m-%dT%H:%M:%S.%fZ')}  INFO source{{component_kind="
                      '"source" component_id=k8s}: vector::internal_events::file::source: '
                      f"Found new file to watch. file=/var/log/pods/{r.getrandbits(32):08x}.log"),
        lambda r, t: (f"{_clock(t, '%Y-%m-%dT%H:%M:%S.%fZ')}  WARN sink{{component_id=kafka}}: "
                      "vector::sinks::util::retries: Retrying after error. error=KafkaError "
                      "(Message production error: QueueFull)"),
        lambda r, t: (f"{_clock(t, '%Y-%m-%dT%H:%M:%S.%fZ')} ERROR sink{{component_id=kafka}}: "
                      "vector::internal_events::kafka: Events dropped")),
    "recommender": Voice(
        2.0,
        lambda r, t: (f"{java_time(t)} INFO recommender.api: served {r.randint(1, 40)} "
                      f"recommendations in {r.randint(5, 120)}ms"),
        lambda r, t: (f"{java_time(t)} WARNING recommender.model: feature store lagging "
                      f"{r.randint(30, 300)}s behind"),
        lambda r, t: (f"{java_time(t)} ERROR recommender.model: embedding lookup failed for "
                      f"user {r.randint(1, 99999)}")),
}

#: Warning and error shares of everyday log lines.
WARN_SHARE, ERROR_SHARE = 0.03, 0.004
