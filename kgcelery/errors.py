"""The error tree of kgcelery; every error says what happened and what to do."""

from __future__ import annotations


class KgceleryError(Exception):
    """Base of every error kgcelery raises on purpose."""


class InvalidClientIdError(KgceleryError, ValueError):
    """A client id does not match ``^[a-z][a-z0-9-]{1,61}[a-z0-9]$``."""


class BadKeyError(KgceleryError, ValueError):
    """A Kafka record key has no ``<client>::`` prefix."""


class RejectedRecordError(KgceleryError):
    """A record that must go to a dead-letter topic; ``reason`` is a short stable code.

    ``client_id`` is the client the record names, when it names a valid one ("" when
    not): the bridge judges dead letters per topic and client.
    """

    def __init__(self, reason: str, detail: str, *, client_id: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.client_id = client_id


class UnknownClientError(KgceleryError):
    """An operation names a client that is not in the registry."""


class StackError(KgceleryError):
    """The embedded stack could not start or stop."""


class StaleProcessError(StackError):
    """A process from an earlier run still holds the state directory or a port."""


class BinaryNotFoundError(StackError):
    """An embedded server binary is missing."""


class BrokerUnavailableError(KgceleryError):
    """The task broker could not be reached; nothing of the call is known to be done."""


class JvmUnavailableError(StackError):
    """The kafka-neo4j stack cannot run here: no Java or Maven, or its jars cannot be had."""


class GraphConfigurationError(KgceleryError):
    """The graph settings cannot work with this server (found at start, not per record)."""


class GraphUnavailableError(KgceleryError):
    """The graph database cannot be reached right now (transient; retry later)."""


class DeadLetterError(KgceleryError):
    """A dead letter could not be written; the batch must not be committed or acked."""


class ReplayError(KgceleryError):
    """Dead letters could not all be re-driven into their source topics."""


class UnknownObjectError(KgceleryError):
    """A read names an object that is not in the client's graph."""
