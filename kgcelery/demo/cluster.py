"""A simulated Kubernetes cluster that emits what a kg agent would send from a real one.

:class:`SimulatedCluster` is pure and deterministic: it never reads a clock (every
method takes ``now``) and draws every random choice from one generator seeded by the
client, the cluster name and ``seed``. The same calls give the same records.

The cluster starts at the first ``now`` it is given, already weeks old. Within its
first ~25 simulated seconds five problems begin (see :mod:`kgcelery.demo.scenarios`
and :mod:`kgcelery.demo.rollouts`): OOM kills of a ``cart`` pod, a crash-looping
``fraud-scorer`` that cannot reach postgres, a ``catalog`` rollout to an image tag
that does not exist, a ``recommender`` pod too big for any node (until the autoscaler
adds one), and a ``frontend`` pod with a flaky readiness probe. Around them, normal
life: a CronJob every two minutes and info logs at a much higher volume than
warnings and errors.
"""

from __future__ import annotations

from typing import Any

from kgcelery.clients import validate_client_id
from kgcelery.demo.background import Chatter, LedgerReconcile
from kgcelery.demo.rollouts import MissingImageTag, NoRoomForRecommender
from kgcelery.demo.scenarios import FlakyReadiness, OomKills, WrongDatabasePort
from kgcelery.demo.sim import Sim
from kgcelery.demo.topology import build
from kgcelery.demo.world import DemoRecord

__all__ = ["DemoRecord", "SimulatedCluster"]

#: When each scenario begins, in seconds after the start (a random part is added).
_SCENARIO_STARTS = (
    (NoRoomForRecommender, 3.0), (WrongDatabasePort, 6.0), (OomKills, 9.0),
    (MissingImageTag, 13.0), (FlakyReadiness, 17.0),
)


class SimulatedCluster:
    """One client's cluster: a snapshot, then what happens in it by tick (its agent,
    :mod:`kgcelery.demo.agent`, turns that into what goes on the wire).

    :param client_id: the client the records belong to (must be a valid client id).
    :param cluster_name: the cluster's name, as registered.
    :param seed: varies the cluster; the same seed and calls give the same records.
    """

    def __init__(self, client_id: str, cluster_name: str, *, seed: int = 0) -> None:
        self.client_id = validate_client_id(client_id)
        self.cluster_name = cluster_name
        self.seed = seed
        self._sim: Sim | None = None
        self._chatter: Chatter | None = None
        self._clock = 0.0

    def _started(self, now: float) -> Sim:
        """The simulation, built at the first call (the cluster's life starts then)."""
        if self._sim is None:
            sim = Sim.create(self.client_id, self.cluster_name, self.seed)
            build(sim.world, sim.kubelet, now)
            LedgerReconcile(sim).create(now)
            for scenario, offset in _SCENARIO_STARTS:
                sim.world.at(now + offset + sim.world.rng.uniform(0, 4), scenario(sim).begin)
            self._sim, self._chatter, self._clock = sim, Chatter(sim), now
        return self._sim

    def _advance(self, now: float) -> float:
        # Time never runs backwards inside the simulation, whatever clock we are given.
        self._clock = max(self._clock, now)
        return self._clock

    def region(self, now: float) -> str:
        """The cloud region the cluster's nodes run in (their zone without its letter)."""
        nodes = self._started(now).world.of_kind("Node")
        return str(nodes[0]["metadata"]["labels"]["topology.kubernetes.io/zone"])[:-1]

    def nodes(self, now: float) -> list[dict[str, Any]]:
        """The cluster's Node objects as they are now (for what polls them, like Prometheus)."""
        return self._started(now).world.of_kind("Node")

    def snapshot(self, now: float) -> list[DemoRecord]:
        """Every object as it is now, one ``resource`` record each."""
        sim = self._started(now)
        return sim.world.snapshot(self._advance(now))

    def tick(self, now: float, records: int) -> list[DemoRecord]:
        """Advance to ``now``; about ``records`` records of what happened since, by time.

        Everything the scenarios and the CronJob do comes first (so a small ``records``
        may be exceeded); everyday log lines fill up the rest.
        """
        sim = self._started(now)
        assert self._chatter is not None
        since = self._clock
        now = self._advance(now)
        out = list(sim.world.run_until(now))
        out += self._chatter.fill(since, now, records - len(out))
        out.sort(key=lambda record: record.ts)
        return out
