"""Publish an event to its topic with its key: the only way services put events on the bus."""

from __future__ import annotations

import asyncio

from aiokafka.errors import MessageSizeTooLargeError
from faststream.kafka import KafkaBroker

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Event
from pathstream.shared.logs import get_logger
from pathstream.shared.retry import backoff_s, is_outage
from pathstream.shared.settings import PathStreamSettings

log = get_logger(__name__)

EVENT_TYPE_HEADER = "pathstream-event-type"
SCHEMA_VERSION_HEADER = "pathstream-schema-version"


async def publish_event(broker: KafkaBroker, settings: PathStreamSettings, event: Event) -> None:
    """Send `event` as JSON to `settings.topic(event.TOPIC)` keyed by `event.kafka_key()`,
    and wait for the brokers to acknowledge it.

    Raises `PathStreamError(EVENT_TOO_LARGE)` (not retriable) when the event is larger than this
    producer's `PATHSTREAM_KAFKA_MAX_REQUEST_SIZE` or than the brokers accept: nothing was written.
    """
    body = event.model_dump_json().encode()
    topic = settings.topic(event.TOPIC)
    try:
        await broker.publish(
            body,
            topic,
            key=event.kafka_key(),
            headers={
                "content-type": "application/json",
                EVENT_TYPE_HEADER: type(event).__name__,
                SCHEMA_VERSION_HEADER: event.schema_version,
            },
        )
    except MessageSizeTooLargeError as exc:
        # aiokafka names its own setting when it refuses before sending; otherwise a broker did.
        if "max_request_size" in str(exc):
            limit = settings.kafka_max_request_size
            who = f"this producer's limit (PATHSTREAM_KAFKA_MAX_REQUEST_SIZE={limit:,})"
        else:
            who = f"the broker's limit for {topic} (message.max.bytes / max.message.bytes)"
        raise PathStreamError(
            ErrorCode.EVENT_TOO_LARGE,
            f"{type(event).__name__} for {event.kafka_key().decode(errors='replace')} is "
            f"{len(body):,} bytes, over {who}; it was not sent.",
            hint="Raise the brokers' message.max.bytes (or the topic's max.message.bytes) and "
            "PATHSTREAM_KAFKA_MAX_REQUEST_SIZE together, or make the event smaller.",
        ) from exc


async def publish_until_sent(broker: KafkaBroker, settings: PathStreamSettings, event: Event) -> None:
    """`publish_event`, tried again while the brokers cannot be reached (capped exponential back-off,
    at most `PATHSTREAM_HANDLER_OUTAGE_MAX_WAIT_S` apart) until they confirm; other errors raise."""
    attempt = 0
    while True:
        try:
            await publish_event(broker, settings, event)
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            attempt += 1
            wait = backoff_s(attempt, 0.5, settings.handler_outage_max_wait_s)
            log.warning(
                "publish_waiting_for_brokers",
                event_type=type(event).__name__,
                attempt=attempt,
                next_try_in_s=wait,
                error=f"{type(exc).__name__}: {exc}",
            )
            await asyncio.sleep(wait)
