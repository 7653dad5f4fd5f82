"""Dead letters: a record that cannot be handled goes to a topic, with its reason.

Headers: ``kg-reason`` (a short stable code), ``kg-error`` (the text), ``kg-source-topic``,
``kg-source-partition``, ``kg-source-offset``, ``kg-client`` and ``kg-at`` (epoch seconds).
The original key and value are kept byte for byte, so that ``kgcelery dlq replay`` can
re-drive the record into its source topic.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from kgcelery.errors import DeadLetterError
from kgcelery.kafka import producer_config
from kgcelery.settings import Settings

log = logging.getLogger(__name__)

REASON_HEADER = "kg-reason"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record and why; ``origin`` is (topic, partition, offset)."""

    reason: str
    error: str
    key: bytes | None
    value: bytes | None
    origin: tuple[str, int, int] | None = None
    client_id: str = ""

    def headers(self, now: float) -> list[tuple[str, str | bytes | None]]:
        headers: list[tuple[str, str | bytes | None]] = [(REASON_HEADER, self.reason.encode()),
                   ("kg-error", self.error[:2000].encode("utf-8", "replace")),
                   ("kg-at", f"{now:.3f}".encode())]
        if self.origin is not None:
            topic, partition, offset = self.origin
            headers += [("kg-source-topic", topic.encode()),
                        ("kg-source-partition", str(partition).encode()),
                        ("kg-source-offset", str(offset).encode())]
        if self.client_id:
            headers.append(("kg-client", self.client_id.encode()))
        return headers


def headers_of(message: Message) -> dict[str, str]:
    """A dead letter's headers as text."""
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {name: value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")
            for name, value in pairs}


class DeadLetterWriter:
    """Produces dead letters; :meth:`flush` raises if any of them was not written."""

    def __init__(self, settings: Settings, topic: str, *, producer: Producer | None = None) -> None:
        self.topic = topic
        self._producer = producer or Producer(producer_config(settings))
        self._failures: list[str] = []
        self.sent = 0

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))

    def send(self, letter: DeadLetter, *, quiet: bool = False) -> None:
        """Produce ``letter``; logged unless ``quiet`` (the bridge logs at a bounded rate)."""
        if not quiet:
            log.warning("dead letter (%s) from %s: %s", letter.reason, letter.origin,
                        letter.error)
        try:
            self._producer.produce(self.topic, key=letter.key, value=letter.value,
                                   headers=letter.headers(time.time()),
                                   on_delivery=self._on_delivery)
        except BufferError:
            self._producer.flush(10)
            self._producer.produce(self.topic, key=letter.key, value=letter.value,
                                   headers=letter.headers(time.time()),
                                   on_delivery=self._on_delivery)
        self.sent += 1
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every dead letter is written; raise :class:`DeadLetterError` if not."""
        remaining = self._producer.flush(timeout)
        if remaining or self._failures:
            failures, self._failures = self._failures, []
            raise DeadLetterError(
                f"{remaining} dead letters unsent after {timeout:.0f} s, "
                f"{len(failures)} failed ({'; '.join(failures[:3])}); not committing")
