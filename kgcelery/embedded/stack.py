"""The embedded stack: Tansu (Kafka), a broker redis-server and a FalkorDB redis-server.

Each service keeps its data under ``<state>/<service>/``, its log in ``<state>/logs/``
and its pid file in ``<state>/run/``. Readiness is checked by talking to the service.
A stale process of an earlier run, or a port taken by something else, stops the start
with an error that says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis
from confluent_kafka.admin import AdminClient

from kgcelery.embedded.binaries import falkordb_module, redis_server_binary, tansu_binary
from kgcelery.embedded.process import ManagedProcess, exited
from kgcelery.errors import StackError, StaleProcessError
from kgcelery.kafka import common_config, ensure_topics
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port that nothing listens on right now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """One embedded server: how to start it and how to know it is ready."""

    name: str
    port: int
    process: ManagedProcess
    ready_check: Callable[[], bool] = field(repr=False)
    ready_timeout_s: float = READY_TIMEOUT_S
    #: Runs before the process starts (formatting Kafka's storage).
    prepare: Callable[[], None] | None = field(default=None, repr=False)
    #: Names the port's setting in the error when the port is taken.
    port_setting: str = ""

    def launch(self) -> None:
        """Start the process without waiting for it (see :meth:`wait_ready`)."""
        self.process.check_stale()
        if port_in_use(self.port):
            setting = self.port_setting or f"KGCELERY_EMBEDDED_{self.name.upper()}_PORT"
            raise StaleProcessError(
                f"port {self.port} for {self.name} is already in use (another program, or "
                f"a kgcelery run whose pid files are gone). Stop it, or choose another port "
                f"with {setting}.")
        if self.prepare is not None:
            self.prepare()
        self.process.start()

    def wait_ready(self) -> None:
        self.process.wait_until(self.ready_check, timeout=self.ready_timeout_s,
                                what=f"ready on port {self.port}")
        log.info("%s ready on 127.0.0.1:%d (pid %s)", self.name, self.port, self.process.pid)

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def stop(self) -> None:
        self.process.stop()


def _redis_ready(port: int, module: str | None = None) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        if not client.ping():
            return False
        if module is None:
            return True
        return any(entry.get(b"name", entry.get("name")) in (module, module.encode())
                   for entry in client.module_list())
    finally:
        client.close()


class EmbeddedStack:
    """Starts, checks and stops the embedded servers; a context manager.

    :param settings: ports, state directory and binaries.
    :param create_topics: create every topic kgcelery uses once Tansu is up.
    """

    def __init__(self, settings: Settings, *, create_topics: bool = True) -> None:
        self.settings = settings
        self.state_dir = Path(settings.state_dir).resolve()
        self.run_dir = self.state_dir / "run"
        self.log_dir = self.state_dir / "logs"
        self.create_topics = create_topics
        self.kafka = self._kafka_service()
        self.broker = self._redis("broker", settings.embedded_broker_port)
        self.graph = self._graph_service()
        self.services = [self.kafka, self.broker, self.graph]

    # The two servers a stack chooses (JvmStack: Apache Kafka and Neo4j).
    def _kafka_service(self) -> Service:
        return self._tansu()

    def _graph_service(self) -> Service:
        return self._redis("graph", self.settings.embedded_graph_port, falkordb=True)

    def _process(self, name: str, argv: list[str]) -> ManagedProcess:
        return ManagedProcess(name, argv, run_dir=self.run_dir, log_dir=self.log_dir)

    def _tansu(self) -> Service:
        port = self.settings.embedded_kafka_port
        url = f"tcp://127.0.0.1:{port}"
        argv = [str(tansu_binary(self.settings)), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]

        def ready() -> bool:
            if not port_in_use(port):
                return False
            admin = AdminClient({**common_config(self.settings), "socket.timeout.ms": 1000})
            admin.list_topics(timeout=1)
            return True

        return Service("kafka", port, self._process("kafka", argv), ready)

    def _redis(self, name: str, port: int, *, falkordb: bool = False) -> Service:
        data_dir = self.state_dir / name
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(redis_server_binary(self.settings)), "--port", str(port),
                "--bind", "127.0.0.1", "--dir", str(data_dir), "--daemonize", "no",
                # Append-only: queued tasks and graphs survive a restart.
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        if falkordb:
            # XXX: FalkorDB replays the graph queries of the append-only file without the
            # indexes they created (built only after loading), so the replay is quadratic:
            # 15k events took 29 s to load, 70k over 150 s. A rewrite turns the file into
            # an RDB base, which loads in a fraction of a second; rewrite from 1 MB on
            # (Redis's default waits for 64 MB) so that a restart stays quick.
            argv += ["--auto-aof-rewrite-min-size", "1mb",
                     "--loadmodule", str(falkordb_module(self.settings))]

        def ready() -> bool:
            return _redis_ready(port, "graph" if falkordb else None)

        return Service(name, port, self._process(name, argv), ready)

    def start(self) -> EmbeddedStack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for service in self.services:
            service.process.check_stale()
        try:
            # All at once, then wait for each: the JVM servers take seconds to start.
            for service in self.services:
                service.launch()
            for service in self.services:
                service.wait_ready()
            if self.create_topics:
                created = ensure_topics(self.settings)
                log.info("created %d topics", len(created))
        except BaseException:
            self.stop()
            raise
        return self

    def restart_dead(self) -> list[str]:
        """Start again every server of a started stack that exited on its own; return
        their names. Redis and FalkorDB reload their append-only files; Tansu keeps its
        topics in memory, so they are created again (what it held is gone). One that
        cannot start is logged and tried again next time."""
        launched = []
        for service in self.services:
            if not exited(service.process):
                continue
            try:
                service.launch()
            except StackError as exc:
                log.error("cannot restart %s: %s", service.name, exc)
                continue
            launched.append(service)
        restarted = []
        for service in launched:  # all launched, then waited for: JVM servers take seconds
            try:
                service.wait_ready()
            except StackError as exc:
                log.error("cannot restart %s: %s", service.name, exc)
                continue
            restarted.append(service.name)
        if self.kafka.name in restarted and self.create_topics:
            try:
                ensure_topics(self.settings)
            except Exception as exc:  # noqa: BLE001 - supervision goes on; the bridge waits
                log.error("cannot create the topics again after restarting %s: %s",
                          self.kafka.name, exc)
        return restarted

    def stop(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
