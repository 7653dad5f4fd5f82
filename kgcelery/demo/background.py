"""Normal life: a CronJob that runs every two minutes, and the everyday log chatter.

Most of what a healthy cluster emits is info logs; :class:`Chatter` makes them, from
the containers that run right now, in each workload's own format, with a few
warnings and fewer errors among them.
"""

from __future__ import annotations

import random
from typing import Any

from kgcelery.demo import objects
from kgcelery.demo.kubelet import complete
from kgcelery.demo.objects import Obj
from kgcelery.demo.rollouts import recommender
from kgcelery.demo.scenarios import fraud_scorer
from kgcelery.demo.signals import log_context
from kgcelery.demo.sim import Sim
from kgcelery.demo.topology import apps, org_of, reconcile_job
from kgcelery.demo.voices import ERROR_SHARE, VOICES, WARN_SHARE, Voice
from kgcelery.demo.world import DemoRecord, iso_micro
from kgcelery.model.timeparse import iso, to_epoch


class LedgerReconcile:
    """The ``ledger-reconcile`` CronJob: a Job (and its pod) every two minutes.

    Each run: ``SuccessfulCreate`` (CronJob and Job), the pod's Scheduled / Pulled /
    Created / Started, a few log lines, ``Completed`` and ``SawCompletedJob``; the
    fourth-oldest Job and its pod are deleted (``SuccessfulDelete``).
    """

    every = 120.0
    keep = 3

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.spec = reconcile_job(org_of(sim.world.client_id))
        self.job_name = ""
        self.pod_name = ""

    def create(self, start: float) -> None:
        """The CronJob and the completed Jobs that its history keeps, before ``start``."""
        created = start - self.sim.world.rng.uniform(2, 10) * 86400
        cronjob = objects.cron_job(self.sim.world, self.spec, created, self.spec.image,
                                   "*/2 * * * *")
        cronjob["status"] = {}
        self.sim.world.put(cronjob, created)
        slot = start // self.every * self.every
        for run_at in (slot - 3 * self.every, slot - 2 * self.every, slot - self.every):
            self._launch(run_at)
            self._run(run_at + 1)
            self._finish(run_at + 9)
        self.sim.world.at(slot + self.every, self._tick)

    @property
    def cronjob(self) -> Obj:
        return self.sim.world.get("CronJob", self.spec.namespace, self.spec.name)

    def _tick(self, at: float) -> list[DemoRecord]:
        world = self.sim.world
        world.at(at + 1, self._run)
        world.at(at + world.rng.uniform(6, 12), self._finish)
        world.at(at + self.every, self._tick)
        return self._launch(at)

    def _launch(self, at: float) -> list[DemoRecord]:
        sim, cronjob = self.sim, self.cronjob
        job = objects.job(sim.world, cronjob, f"{self.spec.name}-{int(at // 60)}", at)
        self.job_name = job["metadata"]["name"]
        records = [sim.world.put(job, at), sim.events.emit(
            at, cronjob, "SuccessfulCreate", f"Created job {self.job_name}",
            component="cronjob-controller")]
        cronjob["status"]["active"] = [{"kind": "Job", "namespace": self.spec.namespace,
                                        "name": self.job_name, "apiVersion": "batch/v1",
                                        "uid": job["metadata"]["uid"]}]
        cronjob["status"]["lastScheduleTime"] = iso(at)
        records.append(sim.world.put(cronjob, at))
        created, pods = sim.create_pods(at, job, 1)
        self.pod_name = pods[0]["metadata"]["name"]
        return records + created

    def _run(self, at: float) -> list[DemoRecord]:
        sim = self.sim
        pod = sim.world.get("Pod", self.spec.namespace, self.pod_name)
        records = sim.kubelet.schedule(at, pod, sim.roomiest_node())
        records += sim.kubelet.pull(at, pod, self.spec.container_name, cached=True)
        records += sim.kubelet.start(at, pod, self.spec.container_name, ready=False)
        records.append(sim.log(at, pod, self.spec.container_name,
                               f"INFO reconcile: window {iso(at - self.every)} .. {iso(at)}, "
                               "source=postgres.payments.svc:5432"))
        return records

    def _finish(self, at: float) -> list[DemoRecord]:
        sim, world, name = self.sim, self.sim.world, self.spec.container_name
        pod = world.get("Pod", self.spec.namespace, self.pod_name)
        job = world.get("Job", self.spec.namespace, self.job_name)
        records = [sim.log(at, pod, name, f"INFO reconcile: {world.rng.randint(200, 4000)} "
                                          "transactions checked, 0 mismatches")]
        complete(pod, name, at)
        records.append(world.put(pod, at))
        job["status"] = {"startTime": job["status"]["startTime"], "succeeded": 1,
                         "completionTime": iso(at), "ready": 0,
                         "conditions": [{"type": "Complete", "status": "True",
                                         "lastProbeTime": iso(at),
                                         "lastTransitionTime": iso(at)}]}
        records += [world.put(job, at), sim.events.emit(at, job, "Completed", "Job completed",
                                                        component="job-controller")]
        cronjob = self.cronjob
        cronjob["status"]["active"] = []
        cronjob["status"]["lastSuccessfulTime"] = iso(at)
        records += [world.put(cronjob, at), sim.events.emit(
            at, cronjob, "SawCompletedJob",
            f"Saw completed job: {self.job_name}, status: Complete",
            component="cronjob-controller")]
        jobs = sorted(world.children(cronjob, "Job"), key=lambda j: j["metadata"]["name"])
        for old in jobs[:-self.keep]:
            for old_pod in world.children(old, "Pod"):
                records.append(world.delete(old_pod, at))
                sim.events.forget(old_pod)
            records.append(world.delete(old, at))
            sim.events.forget(old)
            records.append(sim.events.emit(at, cronjob, "SuccessfulDelete",
                                           f"Deleted job {old['metadata']['name']}",
                                           component="cronjob-controller"))
        return records


def voice_names(org: str) -> dict[str, str]:
    """The voice of each app, by the app name that its pods' labels carry."""
    specs = [*apps(org), fraud_scorer(org), recommender(org)]
    return {next(iter(spec.selector.values())): spec.voice for spec in specs}


class Chatter:
    """Everyday log lines of the containers that run right now."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        world = sim.world
        # Its own generator: the cluster's story must not depend on the log volume asked for.
        self.rng = random.Random(f"kgcelery-demo/chatter/{world.client_id}/{world.cluster_name}/"
                                 f"{world.seed}")
        self.voice_of = voice_names(org_of(world.client_id))
        self._seen = -1
        self._talkers: list[tuple[dict[str, Any], Voice, float]] = []
        self._weights: list[float] = []

    def _refresh(self) -> None:
        """Rebuild the list of talking containers when the world has changed."""
        if self._seen == self.sim.world.changes:
            return
        self._seen = self.sim.world.changes
        self._talkers, self._weights = [], []
        for pod in self.sim.world.of_kind("Pod"):
            labels = pod["metadata"]["labels"]
            app = labels.get("app.kubernetes.io/name") or labels.get("k8s-app", "")
            voice = VOICES.get(self.voice_of.get(app, ""))
            if voice is None:
                continue
            for status in pod["status"].get("containerStatuses", ()):
                if "running" in status["state"]:
                    # startedAt has whole seconds: one more is surely after the start.
                    started = (to_epoch(status["state"]["running"]["startedAt"]) or 0) + 1
                    self._talkers.append((log_context(pod, status["name"]), voice, started))
                    self._weights.append(voice.weight)

    def fill(self, start: float, end: float, count: int) -> list[DemoRecord]:
        """``count`` log lines at times spread over (``start``, ``end``]."""
        self._refresh()
        if count <= 0 or not self._talkers:
            return []
        rng = self.rng
        records = []
        for context, voice, started in rng.choices(self._talkers, weights=self._weights,
                                                   k=count):
            # A container that started within the window only talks after its start.
            low = min(max(start, started), end)
            at = low + (end - low) * (1.0 - rng.random())
            roll = rng.random()
            if roll < ERROR_SHARE:
                message, stream = voice.error(rng, at), "stderr"
            elif roll < ERROR_SHARE + WARN_SHARE:
                message, stream = voice.warn(rng, at), "stderr"
            else:
                message, stream = voice.info(rng, at), "stdout"
            kubernetes = {**context["kubernetes"],
                          "pod_labels": dict(context["kubernetes"]["pod_labels"])}
            value = {**context, "kubernetes": kubernetes, "message": message,
                     "timestamp": iso_micro(at), "stream": stream}
            records.append(DemoRecord("log", f"log::{kubernetes['pod_name']}", value, at))
        records.sort(key=lambda record: record.ts)
        return records
