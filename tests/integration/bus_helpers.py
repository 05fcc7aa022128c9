"""Helpers for tests on the real broker: wait for a condition without fixed sleeps, a group's lag."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from pathstream.shared.bus.admin import topic_partitions
from pathstream.shared.bus.broker import build_broker, client_kwargs
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.events import Event
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    """Poll `condition` every 50 ms until it is true; fail with `what` after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def collected(
    settings: PathStreamSettings, topics: dict[str, tuple[Topic, type[Event]]]
) -> AsyncIterator[dict[str, list[Any]]]:
    """Collect what is published on each topic: {name: (topic, event type)} -> {name: [events]},
    each topic read by its own consumer group (so collectors joining or leaving never make each
    other rebalance), until the block ends."""
    seen: dict[str, list[Any]] = {name: [] for name in topics}
    broker = build_broker(settings)

    def collector(name: str, event_type: type[Event]) -> Callable[..., Any]:
        # FastStream reads the body's type from the only parameter's annotation.
        async def collect(event: Any) -> None:
            seen[name].append(event)

        collect.__annotations__ = {"event": event_type, "return": None}
        collect.__name__ = f"collect_{name}"
        return collect

    for name, (topic, event_type) in topics.items():
        options = consumer_options(settings, f"watch-{name}")
        broker.subscriber(settings.topic(topic), **options)(collector(name, event_type))
    await start_with_retry(broker, settings)
    try:
        yield seen
    finally:
        await broker.stop()


async def group_lag(
    settings: PathStreamSettings, group: str, topics: list[str], partitions_per_topic: int | None = None
) -> int:
    """Messages in `topics` (full names) not yet committed by consumer group `group` (prefix
    applied). Fails when a topic has no partitions, or not `partitions_per_topic` when given: a lag
    over no partitions would read 0 without looking."""
    partitions = await topic_partitions(settings, topics)
    expected = len(topics) * partitions_per_topic if partitions_per_topic is not None else None
    assert partitions and (expected is None or len(partitions) == expected), (
        f"partitions of {topics}: {partitions}"
    )
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    consumer = AIOKafkaConsumer(**client_kwargs(settings))
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.topic(group))
        ends = await consumer.end_offsets(partitions)
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in partitions)
    finally:
        await consumer.stop()
        await admin.close()
