"""Shared pieces of kgcelery's command line: exit codes, settings, clean errors.

Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 unknown client,
4 embedded stack error, 5 a service (Redis, Kafka, graph) is unreachable.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click
import redis
from pydantic import ValidationError

from kgcelery.errors import (
    GraphUnavailableError,
    InvalidClientIdError,
    KgceleryError,
    StackError,
    UnknownClientError,
)
from kgcelery.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_UNKNOWN_CLIENT, EXIT_STACK, EXIT_UNAVAILABLE = range(6)

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    click.echo(f"kgcelery: {message}", err=True)
    sys.exit(code)


def friendly_errors(command: F) -> F:
    """Turn our errors into one clear line and a named exit code, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (UnknownClientError, InvalidClientIdError) as exc:
            _fail(str(exc), EXIT_UNKNOWN_CLIENT)
        except StackError as exc:
            _fail(str(exc), EXIT_STACK)
        except (GraphUnavailableError, redis.ConnectionError) as exc:
            _fail(f"a service is unreachable: {exc}", EXIT_UNAVAILABLE)
        except KgceleryError as exc:
            _fail(str(exc), EXIT_FAILURE)

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # A field's error names its variable; a cross-field error (empty loc) names its own.
        problems = "; ".join(
            f"KGCELERY_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" if e["loc"]
            else str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        _fail(f"invalid configuration: {problems}", EXIT_USAGE)
        raise  # unreachable


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C), for loops that stop cleanly."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
