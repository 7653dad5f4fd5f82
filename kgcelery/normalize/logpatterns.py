"""Log lines to log patterns: mask what varies between occurrences of one message.

Masked, in this order: a leading timestamp and klog header, timestamps and clock times
anywhere, UUIDs, IP addresses (v4 with port or prefix length, v6, MAC), hex ids (at
least 8 hex digits with a letter and a digit, or ``0x``...), quoted values (JSON
values but not JSON keys; the leading quoted message of a structured klog line is
kept, it is the message itself), then numbers that stand alone or carry a unit
(``30s``; ``k8s``, ``v1.2`` and ``7d4b`` keep theirs). Whitespace is collapsed and
the pattern is cut at :data:`MAX_PATTERN_CHARS`. Only the first line of a multi-line
message (a stack trace) makes the pattern.
"""

from __future__ import annotations

import hashlib
import re

MAX_PATTERN_CHARS = 400

_LEADING_TS = re.compile(
    r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?\s*")
_KLOG = re.compile(r"^([IWEF])\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ ([\w.-]+):\d+\] ")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\b")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?:/\d{1,2})?(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}(?![\w:])"
                   r"|(?<![\w:])[0-9a-fA-F]{0,4}::(?:[0-9a-fA-F]{1,4}:?)*[0-9a-fA-F]{0,4}(?![\w])")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])"
                  r"[0-9a-fA-F]{8,}\b")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|(?<!\w)\'(?:[^\'\\\n]|\\.)*\'(?!\w)')
_KEY_FOLLOWS = re.compile(r"\s*:")
#: A number standing alone, or with a unit (30s, 250ms); not inside a word (7d4b).
_NUMBER = re.compile(r"(?<![\w.<>])\d+(?:\.\d+)?(?=[a-zA-Z\u00b5]{0,3}\b|\W|$)")
_SPACES = re.compile(r"\s+")


def _mask_quoted(text: str) -> str:
    # A structured klog line starts with its message in quotes: keep that one.
    keep_first = text.startswith('"')

    def replace(match: re.Match[str]) -> str:
        quoted = match.group(0)
        if (keep_first and match.start() == 0) or _KEY_FOLLOWS.match(text, match.end()):
            return quoted  # the message itself, or a JSON key
        return quoted[0] + "<*>" + quoted[0]

    # One left-to-right pass: a closing quote is never taken for an opening one.
    return _QUOTED.sub(replace, text)


def mask(line: str) -> str:
    """The pattern of a log line (see the module docstring)."""
    text = line.strip().split("\n", 1)[0]
    text = _LEADING_TS.sub("", text)
    klog = _KLOG.match(text)
    head = f"{klog.group(1)} {klog.group(2)}:<num>] " if klog else ""
    text = text[klog.end():] if klog else text
    text = _TIMESTAMP.sub("<ts>", text)
    text = _CLOCK.sub("<time>", text)
    text = _UUID.sub("<uuid>", text)
    text = _IPV4.sub("<ip>", text)
    text = _IPV6.sub("<ip>", text)
    text = _HEX.sub("<hex>", text)
    text = _mask_quoted(text)
    text = _NUMBER.sub("<num>", text)
    return _SPACES.sub(" ", head + text).strip()[:MAX_PATTERN_CHARS]


def pattern_id(pattern: str) -> str:
    """The stable id of a pattern node in a client's graph."""
    return "lp:" + hashlib.sha1(pattern.encode()).hexdigest()[:20]
