"""Containers that fail while they run: OOM kills, a crash loop, a flaky readiness probe.

Each scenario is a small state machine on the world's agenda. Every step changes the
pod through the :class:`~kgcelery.demo.kubelet.Kubelet` (status, Events and owners at
once) and writes the log lines and alert notifications of the same moment, so all the
signals about a problem name the same pod, container, node and times.
"""

from __future__ import annotations

from kgcelery.demo.objects import AppSpec, Obj
from kgcelery.demo.sim import Sim, backoff
from kgcelery.demo.topology import org_of
from kgcelery.demo.voices import java_time
from kgcelery.demo.world import DemoRecord

_KSM = "kube-state-metrics"


class OomKills:
    """``cart``'s JVM outgrows its 512Mi limit in load spikes.

    A burst: heap warnings, ``java.lang.OutOfMemoryError``, the kernel's ``OOMKilling`` on
    the node, lastState OOMKilled (137) and CrashLoopBackOff with a growing back-off;
    twice. The third time the liveness probe times out in GC thrash and the kubelet
    kills the container (``Killing``, exit 143). Then it runs fine for 4-6 minutes.
    ``KubeContainerOOMKilled`` fires from the first kill and ``KubePodCrashLooping``
    from the second; both resolve once the burst is over.
    """

    container = "cart"

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.pod_name = sim.pods_of("shop", "cart")[0]["metadata"]["name"]
        self.kills = 0
        self.probe_failures = 0

    @property
    def pod(self) -> Obj:
        return self.sim.world.get("Pod", "shop", self.pod_name)

    @property
    def labels(self) -> dict[str, str]:
        return {"namespace": "shop", "pod": self.pod_name, "container": self.container,
                "job": _KSM}

    def begin(self, at: float) -> list[DemoRecord]:
        return self._pressure(at)

    def _pressure(self, at: float) -> list[DemoRecord]:
        used = self.sim.world.rng.randint(440, 505)
        line = (f"{java_time(at)}  WARN 1 --- [       cart-gc] c.s.cart.HeapMonitor      "
                f"               : heap usage {used}Mi of 512Mi after full GC "
                f"({used * 100 // 512}%)")
        if self.kills < 2:
            self.sim.world.at(at + self.sim.world.rng.uniform(3, 6), self._oom)
        else:
            self.sim.world.at(at + 2, self._liveness)
        return [self.sim.log(at, self.pod, self.container, line)]

    def _oom(self, at: float) -> list[DemoRecord]:
        sim, pod, rng = self.sim, self.pod, self.sim.world.rng
        node = sim.node_of(pod)
        org = org_of(sim.world.client_id)
        records = [sim.log(at, pod, self.container, line, stream="stderr") for line in (
            f'Exception in thread "http-nio-8080-exec-{rng.randint(1, 10)}" '
            "java.lang.OutOfMemoryError: Java heap space",
            "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)",
            f"\tat com.{org}.cart.store.CartCache.load(CartCache.java:142)")]
        records.append(sim.events.emit(
            at, node, "OOMKilling",
            f"Memory cgroup out of memory: Killed process {rng.randint(2000, 40000)} (java) "
            f"total-vm:{rng.randint(3_900_000, 4_400_000)}kB, "
            f"anon-rss:{rng.randint(520_000, 524_288)}kB, "
            f"file-rss:{rng.randint(20_000, 30_000)}kB, shmem-rss:0kB, UID:1000 "
            f"pgtables:{rng.randint(1400, 1700)}kB oom_score_adj:{rng.randint(960, 999)}",
            component="kernel-monitor", host=node["metadata"]["name"], warning=True))
        wait = backoff(self.kills)
        self.kills += 1
        records += sim.kubelet.crash(at, pod, self.container, reason="OOMKilled", exit_code=137,
                                     backoff=wait)
        records.append(sim.alerts.fire(
            at, "KubeContainerOOMKilled", self.labels,
            summary="Container was OOMKilled.",
            description=f"Container {self.container} in pod shop/{self.pod_name} was OOMKilled "
                        f"{self.kills} times in the last 10 minutes (limit 512Mi).",
            expr='increase(kube_pod_container_status_restarts_total[10m]) >= 1 and on '
                 '(namespace, pod, container) kube_pod_container_status_last_terminated_reason'
                 '{reason="OOMKilled"} == 1'))
        if self.kills >= 2:
            records.append(self._crash_looping(at))
        sim.world.at(at + wait, self._restart)
        return records

    def _liveness(self, at: float) -> list[DemoRecord]:
        sim, pod = self.sim, self.pod
        detail = (f'Get "http://{pod["status"]["podIP"]}:8080/actuator/health/liveness": '
                  "context deadline exceeded (Client.Timeout exceeded while awaiting headers)")
        records = sim.kubelet.probe_failed(at, pod, self.container, "Liveness", detail)
        self.probe_failures += 1
        if self.probe_failures < 3:
            sim.world.at(at + 3, self._liveness)
            return records
        self.probe_failures = 0
        records.append(sim.kubelet.kill(at, pod, self.container, "failed liveness probe"))
        wait = backoff(self.kills)
        self.kills += 1
        records += sim.kubelet.crash(at, pod, self.container, reason="Error", exit_code=143,
                                     backoff=wait)
        records.append(self._crash_looping(at))
        sim.world.at(at + wait, self._restart)
        return records

    def _crash_looping(self, at: float) -> DemoRecord:
        return self.sim.alerts.fire(
            at, "KubePodCrashLooping", self.labels, summary="Pod is crash looping.",
            description=f"Pod shop/{self.pod_name} ({self.container}) is in waiting state "
                        '(reason: "CrashLoopBackOff").',
            expr='max_over_time(kube_pod_container_status_waiting_reason{reason='
                 '"CrashLoopBackOff", job="kube-state-metrics"}[5m]) >= 1')

    def _restart(self, at: float) -> list[DemoRecord]:
        sim, pod = self.sim, self.pod
        records = sim.kubelet.pull(at, pod, self.container, cached=True)
        records += sim.kubelet.start(at, pod, self.container, ready=False)
        records.append(sim.log(at, pod, self.container,
                               f"{java_time(at)}  INFO 1 --- [           main] c.s.cart."
                               "CartApplication   : Starting CartApplication v1.12.0 using "
                               "Java 17.0.10 with PID 1"))
        sim.world.at(at + sim.world.rng.uniform(5, 8), self._ready)
        return records

    def _ready(self, at: float) -> list[DemoRecord]:
        sim, pod, rng = self.sim, self.pod, self.sim.world.rng
        records = [sim.log(at, pod, self.container,
                           f"{java_time(at)}  INFO 1 --- [           main] c.s.cart."
                           f"CartApplication   : Started CartApplication in "
                           f"{rng.uniform(4, 8):.3f} seconds")]
        records += sim.kubelet.set_ready(at, pod, self.container)
        if self.kills < 3:
            sim.world.at(at + rng.uniform(8, 15), self._pressure)
        else:
            self.kills = 0
            sim.world.at(at + 30, self._all_clear)
            sim.world.at(at + rng.uniform(240, 360), self._pressure)
        return records

    def _all_clear(self, at: float) -> list[DemoRecord]:
        return [*self.sim.alerts.resolve(at, "KubeContainerOOMKilled", self.labels),
                *self.sim.alerts.resolve(at, "KubePodCrashLooping", self.labels)]


def fraud_scorer(org: str) -> AppSpec:
    return AppSpec("payments", "fraud-scorer", "Deployment", 1,
                   f"ghcr.io/{org}/fraud-scorer:1.4.0", 8000, "scorer", container="scorer",
                   probe_path="/ready")


class WrongDatabasePort:
    """A new Deployment, ``fraud-scorer``, is configured with port 5433 for postgres.

    Its only pod starts, logs ``Connection refused`` to the ClusterIP of the ``postgres``
    Service on 5433 (the Service listens on 5432) and exits 1, again and again, with the
    kubelet's growing back-off: CrashLoopBackOff, ``BackOff`` Events, a restartCount that
    grows, and ``KubePodCrashLooping`` from the second crash on. It never recovers.
    """

    container = "scorer"

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.spec = fraud_scorer(org_of(sim.world.client_id))
        self.pod_name = ""
        self.crashes = 0

    @property
    def pod(self) -> Obj:
        return self.sim.world.get("Pod", "payments", self.pod_name)

    def begin(self, at: float) -> list[DemoRecord]:
        records, pods = self.sim.create_deployment(at, self.spec)
        self.pod_name = pods[0]["metadata"]["name"]
        self.sim.world.at(at + 0.5, self._schedule)
        return records

    def _schedule(self, at: float) -> list[DemoRecord]:
        sim = self.sim
        records = sim.kubelet.schedule(at, self.pod, sim.roomiest_node())
        records += sim.kubelet.pull(at, self.pod, self.container, cached=False)
        sim.world.at(at + sim.world.rng.uniform(2, 4), self._start)
        return records

    def _start(self, at: float) -> list[DemoRecord]:
        sim, pod = self.sim, self.pod
        records = sim.kubelet.start(at, pod, self.container, ready=False)
        address = sim.world.get("Service", "payments", "postgres")["spec"]["clusterIP"]
        records += [sim.log(at, pod, self.container, line) for line in (
            "INFO  fraud_scorer: starting fraud-scorer 1.4.0 (pid 1)",
            f"INFO  fraud_scorer.db: connecting to postgres at {address}:5433 db=ledger")]
        sim.world.at(at + sim.world.rng.uniform(1.5, 3.0), self._crash)
        return records

    def _crash(self, at: float) -> list[DemoRecord]:
        sim, pod = self.sim, self.pod
        address = sim.world.get("Service", "payments", "postgres")["spec"]["clusterIP"]
        records = [sim.log(at, pod, self.container, line, stream="stderr") for line in (
            f'ERROR fraud_scorer.db: connection to server at "{address}", port 5433 failed: '
            "Connection refused",
            "\tIs the server running on that host and accepting TCP/IP connections?",
            "CRITICAL fraud_scorer: giving up after 3 attempts: database unavailable")]
        wait = backoff(self.crashes)
        self.crashes += 1
        records += sim.kubelet.crash(at, pod, self.container, reason="Error", exit_code=1,
                                     backoff=wait)
        if self.crashes >= 2:
            records.append(sim.alerts.fire(
                at, "KubePodCrashLooping",
                {"namespace": "payments", "pod": self.pod_name, "container": self.container,
                 "job": _KSM},
                summary="Pod is crash looping.",
                description=f"Pod payments/{self.pod_name} ({self.container}) is in waiting "
                            'state (reason: "CrashLoopBackOff").',
                expr='max_over_time(kube_pod_container_status_waiting_reason{reason='
                     '"CrashLoopBackOff", job="kube-state-metrics"}[5m]) >= 1'))
        sim.world.at(at + wait, self._restart)
        return records

    def _restart(self, at: float) -> list[DemoRecord]:
        records = self.sim.kubelet.pull(at, self.pod, self.container, cached=True)
        return records + self._start(at)


class FlakyReadiness:
    """A ``frontend`` pod's event loop stalls now and then; its readiness probe answers 503.

    Warnings in its log, ``Unhealthy`` Events (one Event whose count grows), and after
    three failures in a row the pod is taken out of service (Ready False) until the probe
    passes again. Episodes repeat every few minutes. No alert: it is only noise, as in
    real clusters.
    """

    container = "web"

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.pod_name = sim.pods_of("shop", "frontend")[-1]["metadata"]["name"]
        self.failures = 0
        self.episode = 0

    @property
    def pod(self) -> Obj:
        return self.sim.world.get("Pod", "shop", self.pod_name)

    def begin(self, at: float) -> list[DemoRecord]:
        self.episode = self.sim.world.rng.randint(3, 5)
        return self._fail(at)

    def _fail(self, at: float) -> list[DemoRecord]:
        sim, pod = self.sim, self.pod
        lag = sim.world.rng.randint(600, 2400)
        records = [sim.log(at, pod, self.container,
                           f'{{"level":40,"time":{int(at * 1000)},"msg":"event loop lag {lag}ms '
                           'exceeds 500ms, reporting unhealthy","path":"/healthz"}')]
        self.failures += 1
        records += sim.kubelet.probe_failed(
            at, pod, self.container, "Readiness", "HTTP probe failed with statuscode: 503",
            take_out=self.failures >= 3)
        if self.failures < self.episode:
            sim.world.at(at + 10, self._fail)
        else:
            sim.world.at(at + 10, self._recover)
        return records

    def _recover(self, at: float) -> list[DemoRecord]:
        sim, pod = self.sim, self.pod
        self.failures = 0
        records = [sim.log(at, pod, self.container,
                           f'{{"level":30,"time":{int(at * 1000)},"msg":"event loop lag back '
                           'to normal, reporting healthy"}')]
        records += sim.kubelet.set_ready(at, pod, self.container)
        sim.world.at(at + sim.world.rng.uniform(90, 200), self.begin)
        return records
