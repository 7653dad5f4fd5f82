"""Liveness files: each role's loop touches ``<dir>/kgcelery-<role>.alive``; a probe
reads the file's age.

A probe that asks Redis (``kgcelery check bridge`` reads a key each bridge writes)
fails exactly when Redis refuses writes under ``noeviction`` backpressure, and
Kubernetes would then restart every bridge for a full Redis, which a restart does not
cure. The file proves only what a liveness probe should: the role's own loop still
turns. Off unless ``KGCELERY_LIVENESS_DIR`` is set (the Kubernetes manifests set
``/tmp``, an emptyDir).

The probe is ``python -m kgcelery.liveness ROLE --max-age SECONDS``: the standard
library only, so it starts in a fraction of the CLI's time. Exit 0 alive, 1 not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

ROLES = ("bridge", "beat", "worker")


def path_for(directory: str | os.PathLike[str], role: str) -> Path:
    return Path(directory) / f"kgcelery-{role}.alive"


class Heartbeat:
    """Touches one role's file, at most every ``interval`` seconds (cheap to call often)."""

    def __init__(self, directory: str | os.PathLike[str] | None, role: str,
                 interval: float = 5.0) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        self.path = path_for(directory, role) if directory else None
        self.interval = interval
        self._last = float("-inf")

    def beat(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        # A probe that finds no fresh file restarts the pod: the right outcome for an
        # unwritable directory, and no reason to stop the loop meanwhile.
        with contextlib.suppress(OSError):
            self.path.touch()


def age(directory: str | os.PathLike[str], role: str) -> float | None:
    """Seconds since ``role`` last touched its file; None if it never did."""
    try:
        return time.time() - path_for(directory, role).stat().st_mtime
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kgcelery.liveness",
                                     description="Exit 0 if ROLE touched its file lately.")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--max-age", type=float, default=60.0,
                        help="seconds (default 60)")
    parser.add_argument("--dir", default=os.environ.get("KGCELERY_LIVENESS_DIR") or "/tmp")
    args = parser.parse_args(argv)
    found = age(args.dir, args.role)
    if found is None:
        print(f"{args.role}: no {path_for(args.dir, args.role)} yet")
        return 1
    alive = found <= args.max_age
    print(f"{args.role}: {'alive' if alive else 'STUCK'}, last turn {found:.0f} s ago")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
