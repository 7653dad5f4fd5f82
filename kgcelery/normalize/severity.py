"""The severity of a log line: info, warning, error or critical.

Evidence, strongest first:
1. a level field of the record (``level``, ``severity``, ``lvl``, ``loglevel``,
   ``levelname``, ``log.level``; journald's numeric ``PRIORITY``), unless it says
   nothing (OpenShift writes ``default`` when it could not tell);
2. the same fields inside a message that is itself JSON;
3. the text: a klog header (``E0102 ...``), ``level=error``, a level word at the
   start (``ERROR:``, ``[warn]``, ``2026-01-12T... info ...``), stack traces (Java
   ``at ...(...)`` frames, Python tracebacks, Go panics and goroutine dumps), and last
   words that only failures use (``exception``, ``fatal``; ``failed``, ``refused``).
Debug and trace lines count as info: they are counted, never stored.
"""

from __future__ import annotations

import json
import re
from typing import Any

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}

LEVELS = {
    "trace": "info", "debug": "info", "dbg": "info", "info": "info", "information": "info",
    "informational": "info", "notice": "info", "inf": "info", "i": "info", "d": "info",
    "warn": "warning", "warning": "warning", "wrn": "warning", "w": "warning",
    "error": "error", "err": "error", "eror": "error", "e": "error", "severe": "error",
    "fatal": "critical", "critical": "critical", "crit": "critical", "panic": "critical",
    "dpanic": "critical", "emerg": "critical", "emergency": "critical", "alert": "critical",
    "f": "critical",
}
_FIELDS = ("level", "severity", "lvl", "loglevel", "log_level", "levelname", "log.level")
_SYSLOG = {0: "critical", 1: "critical", 2: "critical", 3: "error", 4: "warning"}

_KLOG = re.compile(r"^([IWEF])\d{4} \d{2}:\d{2}:\d{2}")
_KEY_VALUE = re.compile(r"\b(?:level|lvl|severity)=\"?(\w+)", re.IGNORECASE)
_HEAD_WORD = re.compile(
    r"^[\s\[(]*(?:[\d:.,TZ+/-]+[\])]?\s*){0,3}[\[(<]?(trace|debug|info|notice|warn|warning|"
    r"error|err|fatal|critical|crit|panic|emerg)[\])>:]?(?=[\s:|\]]|$)", re.IGNORECASE)
_STACK = re.compile(
    r"^\s+at [\w$.<>]+\(.*\)|^Traceback \(most recent call last\)|^\s*File \".+\", line \d+"
    r"|^panic: |^goroutine \d+ \[|^Exception in thread|^[\w$]+(?:\.[\w$]+)+(?:Exception|Error)"
    r"(?::|$)|^Caused by: ", re.MULTILINE)
_ERROR_WORDS = re.compile(r"\b(?:exception|fatal|panic|segmentation fault|stack trace)\b",
                          re.IGNORECASE)
_WARNING_WORDS = re.compile(r"\b(?:error|errors|fail|failed|failure|refused|denied|timed out|"
                            r"timeout|unable to|cannot|could not|not found|unreachable)\b",
                            re.IGNORECASE)


def level_of(value: Any) -> str | None:
    """A level field's value as a severity, or None if it says nothing."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return _SYSLOG.get(value, "info") if 0 <= value <= 7 else None
    word = str(value).strip().lower()
    if word.isdigit():
        return level_of(int(word))
    return LEVELS.get(word)


def _from_fields(record: dict[str, Any]) -> str | None:
    for name in _FIELDS:
        found = level_of(record.get(name))
        if found:
            return found
    log = record.get("log")
    if isinstance(log, dict):
        found = level_of(log.get("level"))
        if found:
            return found
    return level_of(record.get("PRIORITY"))


def _from_text(message: str) -> str:
    klog = _KLOG.match(message)
    if klog:
        return LEVELS[klog.group(1).lower()]
    pair = _KEY_VALUE.search(message[:300])
    if pair and (found := LEVELS.get(pair.group(1).lower())):
        return found
    head = _HEAD_WORD.match(message[:80].replace("\t", " "))
    if head:
        return LEVELS[head.group(1).lower()]
    if _STACK.search(message):
        return "error"
    if _ERROR_WORDS.search(message):
        return "error"
    if _WARNING_WORDS.search(message):
        return "warning"
    return "info"


def severity_of(record: dict[str, Any], message: str) -> str:
    """The severity of one log record whose text is ``message``."""
    found = _from_fields(record)
    if found:
        return found
    stripped = message.lstrip()
    if stripped.startswith("{"):
        try:
            inner = json.loads(stripped)
        except ValueError:
            inner = None
        if isinstance(inner, dict) and (found := _from_fields(inner)):
            return found
    return _from_text(message)
