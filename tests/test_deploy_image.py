"""The image's wheel, built as the Dockerfile builds it (no Docker engine runs here).

The build stage of the Dockerfile is replayed step by step in a temporary directory:
its ``WORKDIR``, ``ENV``, ``COPY`` and ``RUN`` instructions, with ``/opt/venv`` a
throwaway virtualenv and ``/src`` a temporary directory. ``COPY`` keeps the sources'
modification times, as Docker's does, which is what decides whether setuptools rebuilds
a file left in ``build/`` by an earlier step (an earlier Dockerfile shipped its stubs).
What differs from the image: this test's interpreter instead of the base image's, and
pip's shared cache. The dependencies are installed from the lock with their hashes, as
in the image, so a lock that lacks something kgcelery needs fails here (``pip check``
and the imports). Then every role's entry point is imported from the throwaway
virtualenv, never from the source tree: the app (workers, control worker), beat's
schedule, the bridge, the control plane's tasks, Flower's command, the health checks
and the CLI.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.deploy_support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
ENV_HOME = "/opt/venv"

#: What each role runs, imported from the installed wheel (the Dockerfile's header).
ENTRY_CHECK = """
import beat_schedule, kgcelery
assert kgcelery.__file__.startswith({site!r}), kgcelery.__file__
assert beat_schedule.__file__.startswith({site!r}), beat_schedule.__file__
from beat_schedule import build_schedule
from kgcelery.app import app  # celery -A kgcelery.app worker | beat | flower
from kgcelery.bridge.commands import bridge  # kgcelery bridge
from kgcelery.bridge.runner import Bridge
from kgcelery.checks import check_bridge, check_redis  # kgcelery check ...
from kgcelery.cli import main  # the console script
from kgcelery.control import tasks as control_tasks  # worker -Q control
from kgcelery.deploy import topics  # kgcelery topics create (the Job)
import flower.command  # celery ... flower
from kgcelery.settings import Settings
assert build_schedule(Settings()), "beat has nothing to schedule"
assert "kgcelery.scale_worker_pools" in app.tasks
print("entry points ok")
"""


def build_stage(text: str) -> list[tuple[str, str]]:
    """``(instruction, arguments)`` of the Dockerfile's first stage, continuations joined."""
    steps: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        logical += stripped
        if logical.endswith("\\"):
            logical = logical[:-1]
            continue
        instruction, _, arguments = logical.partition(" ")
        logical = ""
        if instruction.upper() == "FROM" and steps:
            break
        steps.append((instruction.upper(), arguments.strip()))
    return steps


def dockerignored(relative: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(relative, p.removeprefix("**/"))
               or any(fnmatch.fnmatch(part, p.removeprefix("**/"))
                      for part in Path(relative).parts)
               for p in patterns)


def docker_copy(sources: list[str], target: Path, ignore: list[str]) -> None:
    """``COPY`` from the build context: contents of directories, times kept."""
    for source in sources:
        origin = ROOT / source
        destination = target / origin.name if target.is_dir() and not origin.is_dir() \
            else target
        if origin.is_dir():
            for path in sorted(origin.rglob("*")):
                relative = path.relative_to(ROOT).as_posix()
                if path.is_dir() or dockerignored(relative, ignore):
                    continue
                copied = destination / path.relative_to(origin)
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copied)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)


def replay(tmp: Path) -> Path:
    """Run the build stage in ``tmp``; returns the throwaway virtualenv's site-packages."""
    home = tmp / "venv"
    workdir = tmp
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    for instruction, arguments in build_stage(DOCKERFILE.read_text()):
        arguments = arguments.replace(ENV_HOME, str(home))
        if instruction == "FROM":
            continue
        if instruction == "WORKDIR":
            workdir = tmp / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                if name == "PIP_NO_CACHE_DIR":
                    continue  # the image wants small layers; a test wants the cache
                env[name] = value.replace("$PATH", env.get("PATH", ""))
        elif instruction == "COPY":
            *sources, target = shlex.split(arguments)
            destination = workdir / target
            if target.endswith("/"):
                destination.mkdir(parents=True, exist_ok=True)
            docker_copy(sources, destination, ignore)
        elif instruction == "RUN":
            if arguments.startswith("python -m venv"):
                venv.create(home, with_pip=True)  # this test's interpreter, not python:3.11
                continue
            done = subprocess.run(["sh", "-ec", arguments], cwd=workdir, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"RUN {arguments}\n{done.stdout}\n{done.stderr}"
        else:
            raise AssertionError(f"the replay does not know {instruction}: teach it")
    site = subprocess.run([str(home / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    return Path(site)


def test_build_stage_is_read_as_docker_reads_it() -> None:
    steps = build_stage("FROM a AS b\n# c\nRUN x \\\n  # d\n && y\nCOPY e ./\nFROM f\nRUN g\n")
    assert steps == [("FROM", "a AS b"), ("RUN", "x && y"), ("COPY", "e ./")]


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_the_image_wheel_has_every_role(tmp_path: Path) -> None:
    site = replay(tmp_path)
    installed = sorted(p for p in site.rglob("*.py")
                       if p.relative_to(site).parts[0] in ("kgcelery", "beat_schedule.py"))
    assert installed, "the wheel installed no module of kgcelery"
    empty = [p.relative_to(site).as_posix() for p in installed
             if p.stat().st_size == 0 and p.name != "__init__.py"]
    assert not empty, f"the wheel ships empty modules (stubs of the dependency step): {empty}"
    # Every file of the package, data too (the broker's Lua scripts).
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "kgcelery").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    sources.add("beat_schedule.py")
    shipped = {p.relative_to(site).as_posix() for p in site.rglob("*")
               if p.relative_to(site).parts[0] in ("kgcelery", "beat_schedule.py")}
    assert sources <= shipped, f"missing from the wheel: {sorted(sources - shipped)}"
    for relative in sources:
        assert (site / relative).read_bytes() == (ROOT / relative).read_bytes(), relative
    check = ENTRY_CHECK.format(site=str(site))
    done = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", check],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items()
                               if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "entry points ok" in done.stdout


LOCK = ROOT / "requirements" / "image.lock"


def locked_versions() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in LOCK.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.split(" ")[0].partition("==")
            pins[canonicalize_name(name.split("[")[0])] = version
    return pins


def test_the_lock_pins_every_requirement_with_hashes() -> None:
    """Quick feedback for a dependency changed in pyproject.toml without `make lock`."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"],
              *project["project"]["optional-dependencies"]["kubernetes"],
              *project["build-system"]["requires"]]
    pins = locked_versions()
    stale = []
    for text in wanted:
        requirement = Requirement(text)
        version = pins.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            stale.append(f"{text} (locked: {version})")
    assert not stale, f"requirements/image.lock is stale, run `make lock`: {stale}"
    lines = LOCK.read_text().splitlines()
    unhashed = [line for line, after in zip(lines, [*lines[1:], ""], strict=True)
                if "==" in line and not line.startswith((" ", "#"))
                and not after.strip().startswith("--hash=sha256:")]
    assert not unhashed, f"pinned without a hash: {unhashed}"
    images = [line.split()[1] for line in DOCKERFILE.read_text().splitlines()
              if line.startswith("FROM ")]
    assert all(":" in image and image.split(":")[1][0].isdigit() for image in images), \
        f"base images by exact version: {images}"
