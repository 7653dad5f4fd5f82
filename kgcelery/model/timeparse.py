"""Timestamps as found in Kubernetes, Alertmanager and log shippers, to epoch seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

_FRACTION = re.compile(r"(\.\d{1,6})\d*")
#: Go's zero time, which Kubernetes and Alertmanager write for "never".
_ZERO_YEARS = ("0001-", "0000-")


def to_epoch(value: Any) -> float | None:
    """Epoch seconds from RFC 3339 text or a number (s, ms, µs or ns); None if absent.

    Raises ValueError for text that is not a timestamp at all.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        # Guess the unit by magnitude: seconds until 2286, then ms, µs, ns.
        while number > 1e11:
            number /= 1000.0
        return number if number > 0 else None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return _text_epoch(value)


_NUMBER = re.compile(r"\d+(\.\d+)?")


@lru_cache(maxsize=8192)
def _text_epoch(value: str) -> float | None:
    """:func:`to_epoch` of text; cached, because an object repeats its few times in
    many fields (a ValueError is not cached: it is raised again)."""
    text = value.strip()
    if text.startswith(_ZERO_YEARS):
        return None
    if _NUMBER.fullmatch(text):
        return to_epoch(float(text))
    text = _FRACTION.sub(r"\1", text.replace(" ", "T", 1))
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def first_epoch(*values: Any) -> float | None:
    """The first of ``values`` that parses to a time."""
    for value in values:
        try:
            parsed = to_epoch(value)
        except ValueError:
            continue
        if parsed is not None:
            return parsed
    return None


def iso(epoch: float | None) -> str:
    """Epoch seconds as RFC 3339 (UTC) for people; empty for None."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
