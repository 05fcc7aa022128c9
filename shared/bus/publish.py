"""Publish an event to its topic with its key: the only way services put events on the bus."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from shared.events import Event
from shared.settings import PathStreamSettings

EVENT_TYPE_HEADER = "pathstream-event-type"
SCHEMA_VERSION_HEADER = "pathstream-schema-version"


async def publish_event(broker: KafkaBroker, settings: PathStreamSettings, event: Event) -> None:
    """Send `event` as JSON to `settings.topic(event.TOPIC)` keyed by `event.kafka_key()`,
    and wait for the brokers to acknowledge it."""
    await broker.publish(
        event.model_dump_json().encode(),
        settings.topic(event.TOPIC),
        key=event.kafka_key(),
        headers={
            "content-type": "application/json",
            EVENT_TYPE_HEADER: type(event).__name__,
            SCHEMA_VERSION_HEADER: event.schema_version,
        },
    )
