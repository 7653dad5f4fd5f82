"""Topics that name their client (``KGCELERY_CLIENT_TOPICS``).

Chart 1.0.x of the kg-rca-agent (AGENT_FORMATS.md row 15) sends each cluster's records
to topics of its own, ``<client>.events.normalized``, ``<client>.logs.normalized`` and
three more, keyed by an Event's uid or not at all: only the topic names the client. Each
template names such a topic with ``{client}`` where the client id goes, and the kind of
record it carries. The bridge subscribes to every topic of that shape (a pattern
subscription, so the topics of clients added later are found too) and takes the client
from the topic's name; a key's ``<client>::`` prefix, where there is one, must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PLACEHOLDER = "{client}"
#: ``KGCELERY_CLIENT_TOPICS=chart-1.0``: the topics of the agent chart 1.0.x
#: (``saas/client/helm-chart`` in anuragvishwa/kgroot-latest, its configmap and sinks).
CHART_1_0 = "chart-1.0"
CHART_1_0_TOPICS: dict[str, str] = {
    "{client}.state.k8s.resource": "resource",
    "{client}.state.k8s.topology": "topology",
    "{client}.events.normalized": "event",
    "{client}.logs.normalized": "log",
    "{client}.alerts.raw": "alert",
}
#: Characters of a Kafka topic name.
TOPIC_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# What a client id can be made of, for the subscription pattern (the bridge then
# validates the id itself and dead-letters a topic of the right shape but a bad id).
_ID_PATTERN = "[a-z0-9-]+"
_REGEX_SPECIAL = frozenset(".^$*+?()[]{}|\\")


def check_template(template: str) -> str | None:
    """Why ``template`` cannot name client topics, or None when it can."""
    if template.count(PLACEHOLDER) != 1:
        return f"{template!r} must contain {PLACEHOLDER} exactly once"
    literal = template.replace(PLACEHOLDER, "")
    if not literal or set(literal) - TOPIC_CHARACTERS:
        return (f"{template!r}: a topic name has a-z, A-Z, 0-9, '.', '_' and '-' around "
                f"{PLACEHOLDER}, and something besides it")
    return None


def _regex_literal(text: str) -> str:
    # Only what is special to a regex: librdkafka's own regex engine need not know
    # the escapes Python's re.escape writes for other characters.
    return "".join(f"\\{c}" if c in _REGEX_SPECIAL else c for c in text)


@dataclass(frozen=True)
class ClientTopics:
    """The templates of ``KGCELERY_CLIENT_TOPICS``, checked (see :func:`check_template`)."""

    #: (text before the id, text after it, kind)
    shapes: tuple[tuple[str, str, str], ...] = ()
    _seen: dict[str, tuple[str, str] | None] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, templates: Mapping[str, str]) -> ClientTopics:
        shapes = []
        for template, kind in templates.items():
            problem = check_template(template)
            if problem:
                raise ValueError(problem)
            before, _, after = template.partition(PLACEHOLDER)
            shapes.append((before, after, kind))
        # The longest literal first: of two templates that fit, the more specific wins.
        shapes.sort(key=lambda shape: -(len(shape[0]) + len(shape[1])))
        return cls(tuple(shapes))

    def __bool__(self) -> bool:
        return bool(self.shapes)

    def match(self, topic: str) -> tuple[str, str] | None:
        """(client id as the topic spells it, kind) when ``topic`` has a template's
        shape, else None. The id is not validated here."""
        if topic in self._seen:
            return self._seen[topic]
        found = None
        for before, after, kind in self.shapes:
            if (len(topic) > len(before) + len(after) and topic.startswith(before)
                    and topic.endswith(after)):
                found = (topic[len(before):len(topic) - len(after)], kind)
                break
        if len(self._seen) >= 100_000:  # bounded: one entry per topic seen
            self._seen.clear()
        self._seen[topic] = found
        return found

    def patterns(self) -> list[str]:
        """librdkafka subscription patterns (a leading ``^`` makes a name a regex)."""
        return [f"^{_regex_literal(before)}{_ID_PATTERN}{_regex_literal(after)}$"
                for before, after, _kind in self.shapes]

    def topics_of(self, client_id: str) -> list[str]:
        """The topics of ``client_id`` (``kgcelery topics create --client``)."""
        return [f"{before}{client_id}{after}" for before, after, _kind in self.shapes]
