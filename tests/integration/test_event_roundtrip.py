"""Every event type survives a trip through the real broker between two app instances unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, KafkaMessage

from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.publish import EVENT_TYPE_HEADER, publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.events import ALL_EVENTS, Event
from pathstream.shared.settings import PathStreamSettings
from tests.integration.bus_helpers import wait_until
from tests.samples import one_of_each

pytestmark = pytest.mark.integration


def _handler_for(event_type: type[Event], received: dict[str, Any]) -> Callable[..., Any]:
    """A handler whose body parameter is typed `event_type`, so FastStream validates into it."""

    async def handle(event: Event, message: KafkaMessage) -> None:
        received[type(event).__name__] = (event, message.raw_message.key, message.headers)

    handle.__annotations__ = {"event": event_type, "message": KafkaMessage, "return": None}
    handle.__name__ = f"on_{event_type.__name__}"
    return handle


def _receiving_broker(settings: PathStreamSettings, received: dict[str, Any]) -> KafkaBroker:
    """A second app instance: one subscriber per topic, each typed with that topic's event."""
    broker = build_broker(settings)
    for event_type in ALL_EVENTS:
        # One consumer group, as one service would use: each member is assigned only its topic.
        broker.subscriber(settings.topic(event_type.TOPIC), **consumer_options(settings, "roundtrip"))(
            _handler_for(event_type, received)
        )
    return broker


async def test_each_event_type_round_trips_unchanged(bus_settings: PathStreamSettings) -> None:
    sent = one_of_each()
    assert {type(e) for e in sent} == set(ALL_EVENTS)
    received: dict[str, Any] = {}

    producer = build_broker(bus_settings)
    consumer = _receiving_broker(bus_settings, received)
    await start_with_retry(producer, bus_settings)
    try:
        for event in sent:
            await publish_event(producer, bus_settings, event)
        await start_with_retry(consumer, bus_settings)
        await wait_until(lambda: len(received) == len(sent), 60, "all event types to arrive")
    finally:
        await consumer.stop()
        await producer.stop()

    for event in sent:
        got, key, headers = received[type(event).__name__]
        assert type(got) is type(event)
        assert got == event
        assert got.model_dump() == event.model_dump()
        assert key == event.kafka_key()
        assert headers[EVENT_TYPE_HEADER] == type(event).__name__
