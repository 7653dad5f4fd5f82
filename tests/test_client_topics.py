"""Topics that name their client (KGCELERY_CLIENT_TOPICS, agent chart 1.0.x): pure
routing and settings; the real bridge on both stacks is
tests/test_agent_conformance.py's row 15."""

from __future__ import annotations

import re

import pytest

from kgcelery.bridge.routing import Routed, classify
from kgcelery.client_topics import CHART_1_0_TOPICS, ClientTopics, check_template
from kgcelery.dlq import Letter, replay
from kgcelery.errors import RejectedRecordError
from kgcelery.settings import DEFAULT_TOPICS, Settings

CHART_1_0 = ClientTopics.of(CHART_1_0_TOPICS)


def _classify(topic: str, key: bytes | None, value: bytes | None,
              client_topics: ClientTopics = CHART_1_0) -> Routed:
    return classify(topic, key, value, kinds=DEFAULT_TOPICS, max_value_bytes=10_000,
                    client_topics=client_topics)


def _rejected(topic: str, key: bytes | None, value: bytes | None,
              client_topics: ClientTopics = CHART_1_0) -> RejectedRecordError:
    with pytest.raises(RejectedRecordError) as caught:
        _classify(topic, key, value, client_topics)
    return caught.value


def test_the_topic_names_the_client_whatever_the_key_leaves_out() -> None:
    event = _classify("af-9.events.normalized", b"6a7c-uid", b'{"reason": "BackOff"}')
    assert (event.client_id, event.kind, event.entity) == ("af-9", "event", "6a7c-uid")
    log = _classify("af-9.logs.normalized", None, b'{"client_id": "af-9", "message": "x"}')
    assert (log.client_id, log.kind, log.entity) == ("af-9", "log", "")
    assert log.values() == [{"message": "x"}]  # the agreeing client_id is dropped
    resource = _classify("af-9.state.k8s.resource", b"af-9::pod:u1", None)
    assert (resource.client_id, resource.kind, resource.entity) == ("af-9", "resource", "pod:u1")
    assert resource.values() == [None]  # a tombstone, as on the shared topic
    # A key whose prefix is no client id is the entity, whole; one that is must agree.
    assert _classify("af-9.alerts.raw", b"Event::e1", b"{}").entity == "Event::e1"
    assert _rejected("af-9.alerts.raw", b"event::e1", b"{}").reason == "client-id-mismatch"


def test_the_listed_topics_go_first_and_keep_their_keyed_contract() -> None:
    # "events.normalized" is in KGCELERY_TOPICS: its keys must still name the client.
    assert _rejected("events.normalized", b"6a7c-uid", b"{}").reason == "bad-key"


@pytest.mark.parametrize(("topic", "key", "value", "reason"), [
    # a key or payload that names another client than the topic
    ("af-9.events.normalized", b"zz-1::e1", b"{}", "client-id-mismatch"),
    ("af-9.logs.normalized", None, b'{"client_id": "zz-1"}', "client-id-mismatch"),
    # a topic of the right shape whose "client" is no valid id
    ("a.events.normalized", b"e1", b"{}", "invalid-client-id"),
    ("af-9-.logs.normalized", None, b"{}", "invalid-client-id"),
    # no template's shape
    ("af-9.events.raw", b"af-9::e1", b"{}", "unknown-topic"),
    # what the shared topics refuse, these refuse the same way
    ("af-9.events.normalized", b"e1", b"{not json", "undecodable-json"),
    ("af-9.events.normalized", b"e1", None, "undecodable-json"),
    ("af-9.logs.normalized", None, b"x" * 10_001, "oversized"),
])
def test_refusals(topic: str, key: bytes | None, value: bytes | None, reason: str) -> None:
    refused = _rejected(topic, key, value)
    assert refused.reason == reason and refused.detail


def test_the_topic_of_a_mismatch_names_both_clients() -> None:
    refused = _rejected("af-9.events.normalized", b"zz-1::e1", b"{}")
    assert refused.client_id == "af-9"  # counted against the topic's client
    assert "'zz-1'" in refused.detail and "'af-9'" in refused.detail


def test_without_client_topics_such_a_topic_is_unknown() -> None:
    refused = _rejected("af-9.events.normalized", b"e1", b"{}", ClientTopics())
    assert refused.reason == "unknown-topic" and "CLIENT_TOPICS" not in refused.detail


def test_templates_with_text_around_the_client_and_the_most_specific_first() -> None:
    topics = ClientTopics.of({"kg.{client}.events": "event", "kg.{client}.events.v2": "log"})
    assert _classify("kg.af-9.events", b"e", b"{}", topics).kind == "event"
    routed = _classify("kg.af-9.events.v2", b"e", b"{}", topics)
    assert (routed.client_id, routed.kind) == ("af-9", "log")
    assert topics.topics_of("af-9") == ["kg.af-9.events.v2", "kg.af-9.events"]


def test_the_subscription_patterns_match_exactly_the_templates_topics() -> None:
    patterns = [re.compile(p) for p in CHART_1_0.patterns()]
    assert all(p.pattern.startswith("^") and p.pattern.endswith("$") for p in patterns)

    def subscribed(topic: str) -> bool:
        return any(p.match(topic) for p in patterns)

    assert subscribed("af-9.events.normalized") and subscribed("af-9.state.k8s.topology")
    assert not subscribed("events.normalized")  # no client
    assert not subscribed("af-9.eventsXnormalized")  # '.' is literal
    assert not subscribed("af-9.events.normalized.old")
    assert not subscribed("dlq.raw") and not subscribed("af.9.logs.normalized")


@pytest.mark.parametrize("template", [
    "events.normalized", "{client}.{client}.events", "{client}", "{client} events", "ä.{client}"])
def test_templates_that_cannot_name_topics_are_refused(template: str) -> None:
    assert check_template(template)
    with pytest.raises(ValueError, match="CLIENT_TOPICS"):
        Settings(client_topics={template: "event"})


def test_settings_take_the_chart_name_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGCELERY_CLIENT_TOPICS", "chart-1.0")
    assert Settings().client_topics == CHART_1_0_TOPICS
    monkeypatch.setenv("KGCELERY_CLIENT_TOPICS", '{"x.{client}": "log"}')
    settings = Settings()
    assert settings.client_topics == {"x.{client}": "log"}
    # and the same reach the processes kgcelery starts
    monkeypatch.setenv("KGCELERY_CLIENT_TOPICS", settings.to_env()["KGCELERY_CLIENT_TOPICS"])
    assert Settings().client_topics == {"x.{client}": "log"}
    monkeypatch.delenv("KGCELERY_CLIENT_TOPICS")
    assert Settings().client_topics == {}
    with pytest.raises(ValueError, match="kind 'registry'"):
        Settings(client_topics={"{client}.registry": "registry"})
    monkeypatch.setenv("KGCELERY_CLIENT_TOPICS", "chart-2")
    with pytest.raises(ValueError, match=r"neither 'chart-1\.0' nor a JSON object"):
        Settings()


def test_dead_letters_of_a_clients_own_topic_replay_to_it() -> None:
    letter = Letter("dlq.raw", 0, 7, b"ev-1", b"{}",
                    {"kg-reason": "unregistered-client",
                     "kg-source-topic": "af-9.events.normalized", "kg-client": "af-9"})
    with_templates = Settings(client_topics=dict(CHART_1_0_TOPICS))
    assert replay(with_templates, [letter], dry_run=True) == {"af-9.events.normalized": 1}
    assert replay(Settings(), [letter], dry_run=True) == {
        "(unknown topic af-9.events.normalized)": 1}
