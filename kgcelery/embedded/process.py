"""A child process that kgcelery starts, watches and stops, with a pid file.

Every process we start gets a pid file under ``<state>/run/`` so that a later run can
tell a stale process from a free slot, and ``kgcelery down`` can stop what a crashed
run left behind. On Linux a child also gets SIGTERM when its parent dies (even by
``kill -9``), so nothing outlives the run that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from kgcelery.errors import StackError, StaleProcessError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Have this process get SIGTERM when its parent dies (Linux; elsewhere nothing).
    Called in a child before exec, or first thing in a forked child."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class ManagedProcess:
    """One child process with a name, a log file and a pid file.

    :param name: short unique name (``broker``, ``worker-af-9``); names the files.
    :param argv: the command line.
    :param run_dir: where the pid file goes.
    :param log_dir: where stdout and stderr go (appended).
    :param env: the child's environment (inherits ours when None).
    """

    def __init__(self, name: str, argv: Sequence[str], *, run_dir: Path, log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.env = env
        self.pid_path = run_dir / f"{name}.pid"
        self.log_path = log_dir / f"{name}.log"
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def check_stale(self) -> None:
        """Raise :class:`StaleProcessError` if an earlier run's process still lives."""
        pid = read_pid(self.pid_path)
        if pid is None:
            return
        if pid_alive(pid):
            raise StaleProcessError(
                f"{self.name} from an earlier run is still running (pid {pid}: "
                f"{_cmdline(pid)[:120]!r}). Stop it with 'kgcelery down' or 'kill {pid}'."
            )
        log.info("removing the pid file of %s (pid %s is gone)", self.name, pid)
        self.pid_path.unlink(missing_ok=True)

    def start(self) -> None:
        self.check_stale()
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(self.argv)}\n"
                      .encode())
            out.flush()
            self._popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, start_new_session=True, preexec_fn=die_with_parent,
            )
        self.pid_path.write_text(f"{self._popen.pid}\n")

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def send_signal(self, signum: int) -> None:
        if self.alive() and self._popen is not None:
            self._popen.send_signal(signum)

    def stop(self, timeout: float = 15.0, signum: int = signal.SIGTERM) -> None:
        """Ask the process to stop; kill it (and its group) if it does not in time."""
        popen = self._popen
        if popen is None:
            return  # never started here: the pid file, if any, is someone else's
        if popen.poll() is None:
            popen.send_signal(signum)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(5)
        # Children of the process (a Celery pool) share its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """``kill -9`` the process itself (for fault injection), not its group."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait(5)

    def tail(self, lines: int = 20) -> str:
        """The last lines of the log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Poll ``ready()`` until it is true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise StackError(f"{self.name} exited with code {self.returncode()} before "
                                 f"{what}; its log ({self.log_path}) ends with:\n{self.tail()}")
            try:
                if ready():
                    return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last_error = exc
            time.sleep(0.1)
        raise StackError(f"{self.name} was not {what} after {timeout:.0f} s "
                         f"(last error: {last_error}); log {self.log_path}:\n{self.tail()}")


def exited(process: ManagedProcess) -> bool:
    """True if ``process`` was started and has exited; the log says so, with how the
    process's own log ended (a crash report, often), as it is about to be started again."""
    if process.alive() or process.pid is None:
        return False
    log.warning("%s exited with code %s; starting it again. Its log (%s) ended with:\n%s",
                process.name, process.returncode(), process.log_path, process.tail(10))
    return True


def restart_dead(processes: Iterable[ManagedProcess]) -> list[str]:
    """Start again every process that exited on its own; return their names. One that
    cannot start (a stale pid file, say) is logged and tried again next time."""
    restarted = []
    for process in processes:
        if not exited(process):
            continue
        try:
            process.start()
        except StackError as exc:
            log.error("cannot restart %s: %s", process.name, exc)
            continue
        restarted.append(process.name)
    return restarted


def stop_together(processes: Sequence[ManagedProcess], timeout: float) -> None:
    """SIGTERM all first, so their graceful shutdowns run side by side; then wait for
    each (SIGKILL after ``timeout``)."""
    for process in processes:
        if process.alive():
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.stop(timeout=timeout)


def read_pid(pid_path: Path) -> int | None:
    try:
        return int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_leftovers(run_dir: Path, timeout: float = 10.0) -> list[str]:
    """Stop every process named by a pid file in ``run_dir``; return what was stopped."""
    stopped: list[str] = []
    if not run_dir.is_dir():
        return stopped
    for pid_path in sorted(run_dir.glob("*.pid")):
        pid = read_pid(pid_path)
        if pid is not None and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGKILL)
            stopped.append(f"{pid_path.stem} (pid {pid})")
        pid_path.unlink(missing_ok=True)
    return stopped
