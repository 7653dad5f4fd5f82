"""The real-world corpus, as the records an agent would send for each kind.

Bundles come from different clusters, so each one goes to a client of its own (a
``default`` namespace of one cluster is not that of another). List objects are sent
item by item; plain ``kubectl logs`` files get the metadata their path encodes, as an
agent that tails them would add.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Record = Any


def _items(path: Path) -> list[Any]:
    data = json.loads(path.read_text())
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        kind = str(data.get("kind", "")).removesuffix("List")
        return [{"kind": kind, **item} if kind and "kind" not in item else item
                for item in data["items"]]
    return data if isinstance(data, list) else [data]


def _ndjson(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Bundle:
    """What one cluster of the corpus sends, per kind."""

    events: list[Record] = field(default_factory=list)
    resources: list[Record] = field(default_factory=list)
    logs: list[Record] = field(default_factory=list)
    alerts: list[Record] = field(default_factory=list)


def k3s(corpus: Path) -> Bundle:
    """The single-node k3s support bundle (backend-api in CrashLoopBackOff)."""
    name = "troubleshoot-k3s-bundle-2025-09-11"
    bundle = Bundle()
    for path in sorted((corpus / "events" / name).glob("*.json")):
        bundle.events += _items(path)
    for path in sorted((corpus / "topology" / name).rglob("*.json")):
        if path.name != "cluster_version.json":
            bundle.resources += _items(path)
    for path in sorted((corpus / "logs" / name).rglob("*.log")):
        pod, container = path.parent.name, path.stem.removesuffix("-previous")
        bundle.logs += [{"namespace": "default", "pod_name": pod, "container_name": container,
                         "message": line, "timestamp": "2025-09-11T20:53:00Z"}
                        for line in path.read_text().splitlines() if line.strip()]
    return bundle


def crc(corpus: Path) -> Bundle:
    """OpenShift Local: the k6 pod's chain to its node and deployment, with its logs."""
    name = "korrel8r-openshift-crc-2026-01-12"
    bundle = Bundle()
    for path in sorted((corpus / "events" / name).glob("*.ndjson")):
        bundle.events += _ndjson(path)
    for path in sorted((corpus / "topology" / name).glob("*.json")):
        bundle.resources += _items(path)
    for path in sorted((corpus / "logs" / name).glob("*.ndjson")):
        bundle.logs += _ndjson(path)
    return bundle


def analyzer(corpus: Path) -> dict[str, Bundle]:
    """Troubleshoot's analyzer fixtures: one cluster per failure scenario (its events
    and pods share a file name), and one for the node and ReplicaSet lists. Upstream
    copied events between scenario files, renaming namespaces but not uids, so two
    scenarios in one graph would merge those events."""
    name = "troubleshoot-analyzer-fixtures"
    scenarios: dict[str, Bundle] = {}
    for path in sorted((corpus / "events" / name).glob("*.json")):
        scenarios.setdefault(path.stem, Bundle()).events += _items(path)
    for path in sorted((corpus / "topology" / name / "pods").glob("*.json")):
        scenarios.setdefault(path.stem, Bundle()).resources += _items(path)
    shared = scenarios.setdefault("lists", Bundle())
    shared.resources += _items(corpus / "topology" / name / "nodes.json")
    shared.resources += _items(corpus / "topology" / name / "replicasets" / "default.json")
    return scenarios


def singles(corpus: Path) -> Bundle:
    """Single objects from other clusters (k9s, fluent-bit, demos), and their logs."""
    bundle = Bundle()
    for folder in ("k9s", "fluent-bit", "korrel8r-openshift-demo-2022-09"):
        for path in sorted((corpus / "events" / folder).glob("*.json")):
            bundle.events += _items(path)
    bundle.resources += _items(corpus / "topology" / "fluent-bit" /
                               "default_kairosdb-914055854-b63vq.meta")
    for path in sorted((corpus / "topology" / "k9s").glob("*.json")):
        bundle.resources += _items(path)
    for path in sorted((corpus / "logs" / "fluent-bit").glob("*.out")):
        bundle.logs += _items(path)
    bundle.logs.append(json.loads((corpus / "logs" / "korrel8r-openshift-oscar7-2022-11" /
                                   "loki_query_range_infrastructure_journal.json").read_text()))
    return bundle


def alerts(corpus: Path) -> list[Record]:
    """Every Alertmanager payload and alert list of the corpus, as found."""
    return [json.loads(path.read_text()) for path in sorted((corpus / "alerts").rglob("*.json"))]


def objects_of_kind(bundle: Bundle, kind: str) -> list[dict[str, Any]]:
    return [r for r in bundle.resources if isinstance(r, dict) and r.get("kind") == kind]
