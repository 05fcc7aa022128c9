"""Helpers for tests on the real broker: wait for a condition without fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from pathstream.shared.bus.broker import build_broker
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
