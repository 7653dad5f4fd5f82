"""Every command the deployment files run is a real kgcelery or celery invocation.

No image is built here, so each command (compose services and healthchecks, Kubernetes
containers and probes, the rendered per-client worker) is run from this checkout with
``--help`` appended and the environment its container gets: click refuses unknown
commands and options before it prints the help, and ``celery -A kgcelery.app`` builds
the Settings object from that environment while it imports the app.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kgcelery.control.scalers.k8s import Templates
from kgcelery.settings import Settings
from tests.deploy_support import (
    COMPOSE,
    DEPLOY,
    config_env,
    kgcelery_services,
    load_compose,
    manifests,
    pod_specs,
    settings_env,
)

ENTRY_POINTS = ("kgcelery", "celery", "python")


def compose_commands() -> list[tuple[str, list[str], dict[str, str]]]:
    commands = []
    for name, service in kgcelery_services(load_compose(COMPOSE)).items():
        env = settings_env(service["environment"])
        commands.append((f"compose {name}", service["command"], env))
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "kgcelery"] or test[1:3] == ["python", "-m"]:
            commands.append((f"compose {name} healthcheck", test[1:], env))
    return commands


def kubernetes_commands() -> list[tuple[str, list[str], dict[str, str]]]:
    objects = manifests()
    env = config_env(objects, "kgcelery")
    commands = []
    for name, pod in pod_specs(objects).items():
        for container in pod["containers"]:
            commands.append((f"k8s {name}", container["args"], env))
            for probe in ("livenessProbe", "readinessProbe"):
                if "exec" in container.get(probe, {}):
                    commands.append((f"k8s {name} {probe}", container[probe]["exec"]["command"],
                                     env))
    worker = Templates(Settings(kubernetes_template_dir=DEPLOY)).deployment("af-9", 1)
    for container in worker["spec"]["template"]["spec"]["containers"]:
        workers_env = config_env(objects, "kgcelery-workers")
        commands.append(("k8s per-client worker", container["args"], workers_env))
        for probe in ("livenessProbe", "readinessProbe"):
            if "exec" in container.get(probe, {}):
                commands.append((f"k8s per-client worker {probe}",
                                 container[probe]["exec"]["command"], workers_env))
    return commands


def run_help(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KGCELERY_")}
    if argv[0] == "python":  # python -m <a kgcelery module>, as the image has it
        assert argv[1] == "-m" and argv[2].startswith("kgcelery."), argv
        command = [sys.executable, *argv[1:], "--help"]
    else:
        module = "kgcelery" if argv[0] == "kgcelery" else "celery"
        command = [sys.executable, "-m", module, *argv[1:], "--help"]
    return subprocess.run(command,
                          env={**clean, **env}, capture_output=True, text=True, timeout=90)


def test_every_deployment_command_is_accepted() -> None:
    commands = compose_commands() + kubernetes_commands()
    wrong = [where for where, argv, _ in commands if argv[0] not in ENTRY_POINTS]
    assert not wrong, f"not a kgcelery or celery command: {wrong}"
    # The same command line with the same settings needs one run.
    unique: dict[str, tuple[str, list[str], dict[str, str]]] = {}
    for where, argv, env in commands:
        unique.setdefault(repr((argv, sorted(env.items()))), (where, argv, env))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results: list[Any] = list(pool.map(lambda c: (c[0], c[1], run_help(c[1], c[2])),
                                           unique.values()))
    failed = [f"{where}: {' '.join(argv)}: exit {r.returncode}: {r.stderr[-500:]}"
              for where, argv, r in results
              if r.returncode != 0 or "usage:" not in r.stdout.lower()]
    assert not failed, "\n".join(failed)
    covered = {argv[1] if argv[0] == "kgcelery" else argv[2] if argv[0] == "python"
               else argv[3] for _, argv, _ in commands}
    assert {"bridge", "topics", "check", "beat", "worker", "flower",
            "kgcelery.liveness"} <= covered
