"""The bridge's hand-built Redis envelope is the one kombu itself would write."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis

from kgcelery.app import create_app
from kgcelery.bridge.batcher import Batch
from kgcelery.bridge.publisher import KombuTaskPublisher, RedisTaskPublisher, task_body
from kgcelery.settings import Settings

pytestmark = pytest.mark.integration

#: Fields that differ by design between two publications of the same task.
_PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag"}


def _strip(envelope: dict) -> dict:
    envelope = json.loads(json.dumps(envelope))
    for part in (envelope["headers"], envelope["properties"]):
        for key in _PER_MESSAGE & set(part):
            part[key] = "*"
    return envelope


@pytest.fixture
def broker(stack_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack_settings.broker_url)
    yield client
    client.close()


def test_redis_envelope_matches_kombus(stack_settings: Settings, broker: redis.Redis,
                                       client_ids: list[str]) -> None:
    client = client_ids[0]
    records = [b'{"reason":"BackOff","n":1}', b'{"emoji":"\\u2603","nested":{"a":[1,2]}}']
    batch = Batch(client, "event", 0.0, records=records,
                  origins=[["raw.k8s.events", 0, 7, "event::a"], ["raw.k8s.events", 1, 9, "b"]])
    app = create_app(stack_settings)
    KombuTaskPublisher(app).publish([batch])
    fast = RedisTaskPublisher(app, stack_settings.broker_url)
    fast.publish([batch])
    fast.close()
    kombus, ours = [json.loads(raw) for raw in reversed(broker.lrange(f"client.{client}", 0, -1))]
    assert _strip(ours) == _strip(kombus)
    body = json.loads(base64.b64decode(ours["body"]))
    assert body[0] == [client, [json.loads(r) for r in records], batch.origins]
    assert body[1] == {} and set(body[2]) == {"callbacks", "errbacks", "chain", "chord"}
    # The queue is bound, so Celery's own publishers (task retries) route to it.
    assert broker.exists(f"_kombu.binding.client.{client}")


def test_task_body_splices_records_verbatim() -> None:
    body = task_body("af-9", [b'{"a":1}', b"null"], [["t", 0, 1, "e"], ["t", 0, 2, "f"]])
    assert json.loads(body) == [["af-9", [{"a": 1}, None], [["t", 0, 1, "e"], ["t", 0, 2, "f"]]],
                                {}, {"callbacks": None, "errbacks": None, "chain": None,
                                     "chord": None}]
