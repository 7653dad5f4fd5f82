"""The JVM stack's jars: Apache Kafka and Neo4j Community from Maven Central.

The machine's Maven resolves each component from a generated pom into a cache directory
(``KGCELERY_JVM_CACHE_DIR``, ``~/.cache/kgcelery/jvm`` by default) that holds its own
local repository, so nothing outside it is touched and a second run needs no network.
Each component gets a directory of its own (``kafka-4.1.1/``, ``neo4j-5.26.30/``): the
two need different versions of the same libraries (netty, jackson), so they never
share a classpath. The versions are pinned here and nowhere else; deploy/ and
docker-compose.yml name the same ones (tests/test_jvm_stack.py checks).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kgcelery.errors import JvmUnavailableError
from kgcelery.settings import Settings

KAFKA_VERSION = "4.1.1"
NEO4J_VERSION = "5.26.30"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kgcelery.embedded</groupId>
  <artifactId>{name}</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""
_DEPENDENCY = ("    <dependency><groupId>{0}</groupId><artifactId>{1}</artifactId>"
               "<version>{2}</version></dependency>")


@dataclass(frozen=True)
class Component:
    """One JVM server: what Maven resolves for it."""

    name: str
    version: str
    artifacts: tuple[tuple[str, str, str], ...]


KAFKA = Component("kafka", KAFKA_VERSION, (
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    # kafka_2.13 logs through SLF4J to Log4j 2, whose core it leaves to the distribution.
    ("org.apache.logging.log4j", "log4j-core", "2.24.3"),
    ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
))
NEO4J = Component("neo4j", NEO4J_VERSION, (("org.neo4j", "neo4j", NEO4J_VERSION),))


def cache_dir(settings: Settings) -> Path:
    if settings.jvm_cache_dir is not None:
        return Path(settings.jvm_cache_dir).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kgcelery" / "jvm"


def java_binary() -> Path:
    """java (``JAVA_HOME`` first); Kafka 4 and Neo4j 5 need 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    candidates = [Path(home) / "bin" / "java"] if home else []
    found = shutil.which("java")
    candidates += [Path(found)] if found else []
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise JvmUnavailableError("no java on PATH (nor JAVA_HOME): the kafka-neo4j stack needs "
                              "Java 17 or newer (apt-get install openjdk-17-jdk-headless)")


def _tool(name: str) -> Path:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / name).is_file():
        return Path(home) / "bin" / name
    found = shutil.which(name)
    if not found:
        raise JvmUnavailableError(f"no {name} on PATH: the kafka-neo4j stack resolves its jars "
                                  "with Maven and compiles one class (apt-get install maven "
                                  "openjdk-17-jdk-headless)")
    return Path(found)


def _component_dir(settings: Settings, component: Component) -> Path:
    return cache_dir(settings) / f"{component.name}-{component.version}"


def classpath(settings: Settings, component: Component, *, offline: bool = False) -> list[Path]:
    """The jars of ``component``, resolved by Maven on first use (then from the cache).

    :param offline: never reach the network (Maven's ``-o``; also ``KGCELERY_JVM_OFFLINE``):
        only a filled cache works.
    :raises JvmUnavailableError: no Maven, no network and no cache, or a failed resolve.
    """
    home = _component_dir(settings, component)
    listing = home / "classpath.txt"
    if not listing.is_file():
        _resolve(settings, component, home, listing, offline=offline or settings.jvm_offline)
    jars = [Path(p) for p in listing.read_text().strip().split(os.pathsep) if p]
    missing = [jar for jar in jars if not jar.is_file()]
    if missing:
        listing.unlink()
        raise JvmUnavailableError(f"{len(missing)} jars of {component.name} {component.version} "
                                  f"left the cache ({missing[0]}); run again to resolve them")
    return jars


def _resolve(settings: Settings, component: Component, home: Path, listing: Path, *,
             offline: bool) -> None:
    mvn = _tool("mvn")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_POM.format(
        name=component.name, version=component.version,
        dependencies="\n".join(_DEPENDENCY.format(*a) for a in component.artifacts)))
    partial = home / "classpath.partial"
    argv = [str(mvn), "-B", "-q", "-Dstyle.color=never", *(["-o"] if offline else []),
            f"-Dmaven.repo.local={cache_dir(settings) / 'repository'}",
            "-f", str(home / "pom.xml"), "dependency:build-classpath",
            "-Dmdep.includeScope=runtime", f"-Dmdep.outputFile={partial}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0 or not partial.is_file():
        output = (done.stdout + done.stderr).strip().splitlines()
        raise JvmUnavailableError(
            f"Maven could not resolve {component.name} {component.version} into {home} "
            f"(exit {done.returncode}; offline={offline}):\n" + "\n".join(output[-15:]))
    partial.replace(listing)  # only a complete resolve counts as cached


def neo4j_main_class_dir(settings: Settings) -> Path:
    """KgNeo4j.class, compiled from the source beside this module at first use."""
    jars = classpath(settings, NEO4J)
    source = resources.files("kgcelery.embedded").joinpath("KgNeo4j.java")
    text = source.read_text()
    out = _component_dir(settings, NEO4J) / "classes"
    stamp = out / "KgNeo4j.java"
    if (out / "KgNeo4j.class").is_file() and stamp.is_file() and stamp.read_text() == text:
        return out
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(text)
    done = subprocess.run(
        [str(_tool("javac")), "-nowarn", "-d", str(out), "-cp",
         os.pathsep.join(map(str, jars)), str(stamp)],
        capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        stamp.unlink(missing_ok=True)
        raise JvmUnavailableError(f"javac could not compile KgNeo4j.java:\n{done.stderr[-2000:]}")
    return out


def jvm_available(settings: Settings, *, offline: bool = False) -> str | None:
    """None when the JVM stack can run here, else why not (for skipping its tests)."""
    try:
        java_binary()
        classpath(settings, KAFKA, offline=offline)
        neo4j_main_class_dir(settings)
    except JvmUnavailableError as exc:
        return str(exc)
    return None


def main() -> int:
    """``python -m kgcelery.embedded.maven``: resolve the jars now (``make jvm``)."""
    settings = Settings()
    why_not = jvm_available(settings)
    if why_not:
        print(f"kafka-neo4j stack unavailable: {why_not}")
        return 1
    print(f"kafka-neo4j stack ready: Apache Kafka {KAFKA_VERSION}, Neo4j {NEO4J_VERSION} "
          f"(jars in {cache_dir(settings)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
