"""Wire a transport-free service handler to the bus: consume one event type, publish what it returns.

Each message is handled in a worker thread, so the event loop keeps heartbeating to the group
coordinator while a slide or lymph node computes. The results are published (and acknowledged by
the brokers) before the offset is committed, so a worker that dies mid-message leaves the message
to the next member of the group; a broker outage while publishing is waited out without computing
the results again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from faststream.kafka import KafkaBroker

from pathstream.shared.bus.publish import publish_until_sent
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.events import Event
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic


def subscribe_handler(
    broker: KafkaBroker,
    settings: PathStreamSettings,
    topic: Topic,
    group_id: str,
    event_type: type[Event],
    handle: Callable[[Any], Sequence[Event]],
) -> None:
    """Subscribe `handle(event) -> events to publish` to `topic` in consumer group `group_id`.

    `event_type` is the pydantic model the message body is parsed into (invalid bodies go to the
    DLQ through the broker's middleware).
    """

    async def consume(event: Any) -> None:
        for result in await asyncio.to_thread(handle, event):
            # An LN may have taken minutes: a broker outage now must not throw the result away.
            await publish_until_sent(broker, settings, result)

    # FastStream parses the body into the parameter's annotation.
    consume.__annotations__ = {"event": event_type, "return": None}
    consume.__name__ = f"{group_id}_on_{topic.value.replace('.', '_')}"
    broker.subscriber(settings.topic(topic), **consumer_options(settings, group_id))(consume)
