"""Records exactly as the kg agent's ``state-watcher/main.go`` builds them from
Kubernetes objects (``pushPod``, ``pushService``, ... and their edges), for tests.

A port of the Go code (anuragvishwa/kgroot-latest): the same fields, the same
``omitempty`` rules, the same keys (``<kind-lower>:<uid>`` for resources,
``edge:<from>-><to>`` for edges, ``<cluster>|<job>|<ns>|<service>|<instance>`` for
targets), the same edges per object. Each function returns ``(key entity, value)``
pairs in the order the Go code sends them; the Kafka key is ``<client>::<entity>``.
"""

from __future__ import annotations

from typing import Any

Pair = tuple[str, Any]


def key_for(kind: str, uid: str) -> str:
    return f"{kind.lower()}:{uid}"


def id_for(kind: str, namespace: str, name: str) -> str:
    return f"{kind.lower()}:{name}" if not namespace else f"{kind.lower()}:{namespace}:{name}"


def edge_id(from_id: str, to_id: str) -> str:
    return id_for("edge", "", f"{from_id}->{to_id}")


def _omit(record: dict[str, Any]) -> dict[str, Any]:
    """Go's ``omitempty``: empty strings, maps, lists and nil pointers are left out."""
    always = {"op", "at", "cluster", "kind", "uid", "name"}
    return {k: v for k, v in record.items() if k in always or v not in ("", None, {}, [])}


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def _record(kind: str, obj: dict[str, Any], at: str, client: str, cluster: str,
            **fields: Any) -> dict[str, Any]:
    meta = _meta(obj)
    return _omit({
        "op": "UPSERT", "at": at, "client_id": client, "cluster": cluster, "kind": kind,
        "uid": meta.get("uid", ""), "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""), "labels": meta.get("labels") or {},
        "ownerRefs": [{"kind": r["kind"], "name": r["name"]}
                      for r in meta.get("ownerReferences") or []], **fields})


def _edge(at: str, client: str, cluster: str, from_id: str, to_id: str,
          edge_type: str) -> Pair:
    eid = edge_id(from_id, to_id)
    return eid, {"op": "UPSERT", "at": at, "client_id": client, "cluster": cluster,
                 "id": eid, "from": from_id, "to": to_id, "type": edge_type}


def _owner(obj: dict[str, Any], kind: str) -> str:
    return next((r["name"] for r in _meta(obj).get("ownerReferences") or []
                 if r.get("kind") == kind), "")


def pod(obj: dict[str, Any], at: str, client: str = "af-9",
        cluster: str = "af-9") -> tuple[Pair, list[Pair]]:
    """``pushPod``: the resource record and its RUNS_ON / CONTROLS edges."""
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    rec = _record("Pod", obj, at, client, cluster, node=spec.get("nodeName", ""),
                  podIP=status.get("podIP", ""), status={
                      "phase": status.get("phase", ""),
                      "restartCount": sum(s.get("restartCount", 0) for s in statuses),
                      "containerReady": all(s.get("ready", False) for s in statuses)})
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    edges = []
    if spec.get("nodeName"):
        edges.append(_edge(at, client, cluster, id_for("pod", ns, name),
                           id_for("node", "", spec["nodeName"]), "RUNS_ON"))
    controller = ""
    for kind in ("ReplicaSet", "DaemonSet", "Job"):
        if _owner(obj, kind):
            controller = id_for(kind, ns, _owner(obj, kind))
    if controller:
        edges.append(_edge(at, client, cluster, controller, id_for("pod", ns, name),
                           "CONTROLS"))
    return (key_for("Pod", meta.get("uid", "")), rec), edges


def service(obj: dict[str, Any], at: str, pods: list[dict[str, Any]], client: str = "af-9",
            cluster: str = "af-9") -> tuple[Pair, list[Pair]]:
    """``pushService``: the record and SELECTS edges to the matching ``pods``."""
    meta, spec = _meta(obj), obj.get("spec") or {}
    ips = list(spec.get("clusterIPs") or [])
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        ips.append(spec["clusterIP"])
    rec = _record("Service", obj, at, client, cluster,
                  serviceSelector=spec.get("selector") or {}, serviceIPs=ips,
                  spec={"type": spec.get("type", ""), "ports": spec.get("ports"),
                        "ipFamilyPolicy": spec.get("ipFamilyPolicy")})
    # serviceSelector is never nil in Go (an empty map), so omitempty drops it.
    ns, selector = meta.get("namespace", ""), spec.get("selector") or {}
    edges = []
    if selector:
        for p in pods:
            labels = _meta(p).get("labels") or {}
            if _meta(p).get("namespace") == ns and all(
                    labels.get(k) == v for k, v in selector.items()):
                edges.append(_edge(at, client, cluster, id_for("service", ns, meta["name"]),
                                   id_for("pod", ns, _meta(p)["name"]), "SELECTS"))
    return (key_for("Service", meta.get("uid", "")), rec), edges


def deployment(obj: dict[str, Any], at: str, client: str = "af-9",
               cluster: str = "af-9") -> Pair:
    spec = obj.get("spec") or {}
    rec = _record("Deployment", obj, at, client, cluster, replicas=spec.get("replicas"),
                  spec={"strategy": (spec.get("strategy") or {}).get("type", ""),
                        "selector": spec.get("selector")})
    return key_for("Deployment", _meta(obj).get("uid", "")), rec


def replicaset(obj: dict[str, Any], at: str, client: str = "af-9",
               cluster: str = "af-9") -> tuple[Pair, list[Pair]]:
    meta, spec = _meta(obj), obj.get("spec") or {}
    rec = _record("ReplicaSet", obj, at, client, cluster, replicas=spec.get("replicas"),
                  spec={"selector": spec.get("selector")})
    edges = []
    if _owner(obj, "Deployment"):
        ns = meta.get("namespace", "")
        edges.append(_edge(at, client, cluster, id_for("deployment", ns, _owner(obj, "Deployment")),
                           id_for("replicaset", ns, meta["name"]), "CONTROLS"))
    return (key_for("ReplicaSet", meta.get("uid", "")), rec), edges


def daemonset(obj: dict[str, Any], at: str, client: str = "af-9",
              cluster: str = "af-9") -> Pair:
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    rec = _record("DaemonSet", obj, at, client, cluster, status={
        "desired": status.get("desiredNumberScheduled", 0),
        "ready": status.get("numberReady", 0), "available": status.get("numberAvailable", 0)},
        spec={"selector": spec.get("selector")})
    return key_for("DaemonSet", _meta(obj).get("uid", "")), rec


def job(obj: dict[str, Any], at: str, client: str = "af-9",
        cluster: str = "af-9") -> tuple[Pair, list[Pair]]:
    meta, status, spec = _meta(obj), obj.get("status") or {}, obj.get("spec") or {}
    rec = _record("Job", obj, at, client, cluster, status={
        "active": status.get("active", 0), "succeeded": status.get("succeeded", 0),
        "failed": status.get("failed", 0), "startTime": status.get("startTime"),
        "completion": status.get("completionTime")},
        spec={"parallelism": spec.get("parallelism"), "completions": spec.get("completions")})
    edges = []
    if _owner(obj, "CronJob"):
        ns = meta.get("namespace", "")
        edges.append(_edge(at, client, cluster, id_for("cronjob", ns, _owner(obj, "CronJob")),
                           id_for("job", ns, meta["name"]), "CONTROLS"))
    return (key_for("Job", meta.get("uid", "")), rec), edges


def cronjob(obj: dict[str, Any], at: str, client: str = "af-9",
            cluster: str = "af-9") -> Pair:
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    rec = _record("CronJob", obj, at, client, cluster, status={
        "lastScheduleTime": status.get("lastScheduleTime"),
        "active": len(status.get("active") or [])},
        spec={"schedule": spec.get("schedule", ""), "suspend": spec.get("suspend")})
    return key_for("CronJob", _meta(obj).get("uid", "")), rec


def node(obj: dict[str, Any], at: str, client: str = "af-9", cluster: str = "af-9") -> Pair:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    meta = _meta(obj)
    rec = _record("Node", {"metadata": {k: v for k, v in meta.items() if k != "namespace"}},
                  at, client, cluster, status={"ready": ready})
    return key_for("Node", meta.get("uid", "")), rec


def target_key(cluster: str, labels: dict[str, str]) -> str:
    return "|".join([cluster, *(labels.get(k, "") for k in ("job", "namespace", "service",
                                                            "instance"))])


def target(labels: dict[str, str], at: str, *, health: str = "up", scrape_url: str = "",
           last_scrape: str = "", last_error: str = "", client: str = "af-9",
           cluster: str = "af-9") -> Pair:
    """``runPromTargetSync``: one active target (``lastError`` omitempty)."""
    rec = {"op": "UPSERT", "at": at, "client_id": client, "cluster": cluster,
           "labels": labels, "scrapeUrl": scrape_url, "health": health,
           "lastScrape": last_scrape}
    if last_error:
        rec["lastError"] = last_error
    return target_key(cluster, labels), rec


def objects(items: list[dict[str, Any]], at: str, client: str = "af-9",
            cluster: str = "af-9") -> tuple[list[Pair], list[Pair]]:
    """Resource records and edge records of ``items`` (Kubernetes objects of any of
    the watched kinds; others are skipped, as the state-watcher does not watch them)."""
    pods = [i for i in items if i.get("kind") == "Pod"]
    resources: list[Pair] = []
    edges: list[Pair] = []
    for item in items:
        kind = item.get("kind")
        if kind == "Pod":
            rec, more = pod(item, at, client, cluster)
        elif kind == "Service":
            rec, more = service(item, at, pods, client, cluster)
        elif kind == "ReplicaSet":
            rec, more = replicaset(item, at, client, cluster)
        elif kind == "Job":
            rec, more = job(item, at, client, cluster)
        elif kind in ("Deployment", "DaemonSet", "CronJob", "Node"):
            build = {"Deployment": deployment, "DaemonSet": daemonset, "CronJob": cronjob,
                     "Node": node}[kind]
            rec, more = build(item, at, client, cluster), []
        else:
            continue
        resources.append(rec)
        edges += more
    return resources, edges
