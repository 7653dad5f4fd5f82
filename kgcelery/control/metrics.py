"""Prometheus metrics of the control plane: queue depths and scaling decisions.

Flower's own metrics have no queue depth, and a client queue that no worker consumes
is invisible on Flower's Broker page; these gauges fill that gap. They are read from
Redis at scrape time (no state of their own), so any process may serve them: the
reconciler (``kgcelery reconcile``), ``kgcelery up`` and the worker of the control
queue (``ControlMetricsStep``: on Kubernetes) do when
``KGCELERY_CONTROL_METRICS_PORT`` is set. Actual workers are the count beat recorded at
its last scaling run (a scrape does not broadcast to every worker).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

from celery import bootsteps
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kgcelery.broker import open_broker
from kgcelery.clients import CONTROL_QUEUE
from kgcelery.control.observe import observe
from kgcelery.control.registry import STATES, Registry
from kgcelery.settings import Settings

log = logging.getLogger(__name__)


class ControlCollector(Collector):
    """One gauge family per fact, one sample per client."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.broker = open_broker(None, settings.broker_url)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        def family(name: str, text: str, labels: tuple[str, ...] = ("client",)
                   ) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"kgcelery_control_{name}", text, labels=list(labels))

        depth = family("queue_depth", "Tasks waiting in the client's queue")
        flying = family("in_flight", "Tasks delivered to a worker and not yet acknowledged")
        records = family("records", "Records waiting or in flight (estimated from batches)")
        desired = family("workers_desired", "Workers the scaling policy wants")
        actual = family("workers_actual", "Workers seen consuming the queue at the last run")
        pinned = family("workers_pinned", "Workers pinned by ops (absent: not pinned)")
        state = family("client_state", "1 for the client's current state",
                       ("client", "state"))
        age = family("heartbeat_age_seconds", "Seconds since the last heartbeat")
        try:
            rows = observe(self.registry, self.broker, None, inspect_timeout=0,
                           records_per_task=self.settings.batch_max_records)
        except Exception:
            log.exception("could not read the registry for metrics")
            rows = []
        for row in rows:
            client = [row.client]
            depth.add_metric(client, row.queue_depth)
            flying.add_metric(client, row.in_flight)
            records.add_metric(client, row.records)
            desired.add_metric(client, row.workers_desired or 0)
            actual.add_metric(client, row.workers_actual)
            if row.pin is not None:
                pinned.add_metric(client, row.pin)
            for name in STATES:
                state.add_metric([row.client, name], 1 if row.state == name else 0)
            if row.last_heartbeat_age_s is not None:
                age.add_metric(client, row.last_heartbeat_age_s)
        yield from (depth, flying, records, desired, actual, pinned, state, age)


def serve_metrics(settings: Settings, registry: Registry) -> WSGIServer:
    """Serve the metrics on ``CONTROL_METRICS_PORT`` in a thread; shut down the server."""
    collectors = CollectorRegistry()
    collectors.register(ControlCollector(settings, registry))
    server, _thread = start_http_server(settings.control_metrics_port, registry=collectors)
    log.info("control-plane metrics on :%d/metrics", settings.control_metrics_port)
    return server


class ControlMetricsStep(bootsteps.StartStopStep):
    """These metrics, served by the
    worker that consumes the control queue when KGCELERY_CONTROL_METRICS_PORT is set and
    the reconciler runs as its beat job (a scaler other than ``local``: Kubernetes,
    compose). With ``local``, ``kgcelery up`` or ``kgcelery reconcile`` serves them."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.server: Any = None
        self.registry: Any = None

    def start(self, worker: Any) -> None:
        from kgcelery.app import CONTROL_METRICS_PORT, settings

        port = worker.app.conf.get(CONTROL_METRICS_PORT)
        consumed = worker.app.amqp.queues.consume_from or {}
        if not port or CONTROL_QUEUE not in consumed or settings.scaler_backend == "local":
            return
        self.registry = Registry.from_url(settings.registry_url)
        try:
            self.server = serve_metrics(settings, self.registry)
        except OSError as exc:  # metrics are no reason to stop the control plane
            log.warning("control metrics not served on :%s: %s", port, exc)
            self.registry.close()

    def stop(self, worker: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.registry.close()
            self.server = None
