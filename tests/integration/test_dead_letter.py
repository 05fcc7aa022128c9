"""Unparseable and persistently failing messages go to `<topic>.dlq` with their error; the consumer
keeps consuming."""

from __future__ import annotations

import json
from typing import Any

import pytest
from faststream.kafka import KafkaMessage

from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.dead_letter import DeadLetter
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.events import LymphNodeScored
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic, dead_letter_topic
from tests.integration.bus_helpers import wait_until
from tests.samples import ln_scored

pytestmark = pytest.mark.integration


async def test_bad_messages_are_dead_lettered_and_consumption_continues(
    bus_settings: PathStreamSettings,
) -> None:
    topic = bus_settings.topic(Topic.LN_SCORED)
    handled: list[str] = []
    attempts: dict[str, int] = {}
    dead: list[DeadLetter] = []

    worker = build_broker(bus_settings)

    @worker.subscriber(topic, **consumer_options(bus_settings, "reporter-like"))
    async def on_scored(event: LymphNodeScored) -> None:
        attempts[event.ln_id] = attempts.get(event.ln_id, 0) + 1
        if event.ln_id.endswith("ln666"):
            raise ConnectionError("the database keeps refusing this one")
        handled.append(event.ln_id)

    watcher = build_broker(bus_settings)

    @watcher.subscriber(dead_letter_topic(topic), **consumer_options(bus_settings, "dlq-watch"))
    async def on_dead(message: KafkaMessage) -> None:
        record: Any = message.raw_message
        headers = {k: v.decode() for k, v in record.headers}
        dead.append(DeadLetter.from_record(record.key, record.value, headers))

    producer = build_broker(bus_settings)
    await start_with_retry(producer, bus_settings)
    garbage = b"\x00\xffnot json{"
    schema_invalid = json.loads(ln_scored(index=1).model_dump_json())
    schema_invalid["score"] = 1.7
    try:
        await producer.publish(garbage, topic, key=b"S-001", headers={"content-type": "application/json"})
        await producer.publish(b'{"half": ', topic, key=b"S-001")
        await producer.publish(schema_invalid, topic, key=b"S-001")
        await publish_event(producer, bus_settings, ln_scored(index=666))
        await publish_event(producer, bus_settings, ln_scored(index=2))

        await start_with_retry(worker, bus_settings)
        await start_with_retry(watcher, bus_settings)
        await wait_until(lambda: handled == ["S-001-ln002"] and len(dead) == 4, 60, "DLQ and good message")
    finally:
        await watcher.stop()
        await worker.stop()
        await producer.stop()

    by_offset = {d.original_offset: d for d in dead}
    assert set(by_offset) == {0, 1, 2, 3}
    assert all(d.original_topic == topic for d in dead)
    assert all(d.key == b"S-001" for d in dead)

    assert by_offset[0].value == garbage, "original bytes kept for replay"
    assert by_offset[0].attempts == 1, "unparseable input is not retried"
    assert by_offset[1].value == b'{"half": '
    assert by_offset[1].attempts == 1

    assert by_offset[2].error_type == "ValidationError"
    assert "score" in by_offset[2].error and "[0, 1]" in by_offset[2].error
    assert "1.7" not in by_offset[2].error.split("got")[0], "input values stay out of the error text"
    assert by_offset[2].attempts == 1

    assert by_offset[3].error_type == "ConnectionError"
    assert "keeps refusing" in by_offset[3].error
    assert by_offset[3].attempts == bus_settings.handler_max_attempts == attempts["S-001-ln666"]
    assert by_offset[3].headers["content-type"] == "application/json"
