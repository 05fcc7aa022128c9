"""An event larger than Apache Kafka accepts is refused at publish with a clear error, and nothing
of it reaches the topic (the broker's `message.max.bytes` is its default, 1 MiB)."""

from __future__ import annotations

import math

import pytest

from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import LymphNodeDetected
from pathstream.shared.events.base import BBox
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic
from tests.integration.bus_helpers import collected, wait_until
from tests.samples import ln_detected

pytestmark = pytest.mark.integration


def _huge_ln(points: int = 120_000) -> LymphNodeDetected:
    """An LN whose contour has `points` vertices on a circle: about 1.6 MB of JSON."""
    radius, centre = 40_000, 50_000
    contour = [
        (
            round(centre + radius * math.cos(2 * math.pi * i / points)),
            round(centre + radius * math.sin(2 * math.pi * i / points)),
        )
        for i in range(points)
    ]
    small = ln_detected(index=7)
    return small.model_copy(
        update={
            "contour": contour,
            "bbox": BBox(x=centre - radius, y=centre - radius, width=2 * radius + 1, height=2 * radius + 1),
        }
    )


@pytest.mark.parametrize("who_refuses", ["producer", "broker"])
async def test_an_event_over_the_limit_is_refused_and_nothing_is_written(
    bus_settings: PathStreamSettings, who_refuses: str
) -> None:
    huge = _huge_ln()
    size = len(huge.model_dump_json())
    assert 1_048_588 < size < 4 * 1_048_576
    # "broker": the producer is (mis)configured to allow more than the broker's 1 MiB, so the
    # broker's own MESSAGE_TOO_LARGE answer must surface as the same clear error.
    settings = (
        bus_settings
        if who_refuses == "producer"
        else bus_settings.model_copy(update={"kafka_max_request_size": 8 * 1_048_576})
    )
    marker = ln_detected(index=8)
    async with collected(settings, {"ln": (Topic.LN_DETECTED, LymphNodeDetected)}) as seen:
        producer = build_broker(settings)
        await start_with_retry(producer, settings)
        try:
            with pytest.raises(PathStreamError) as info:
                await publish_event(producer, settings, huge)
            await publish_event(producer, settings, marker)
        finally:
            await producer.stop()
        await wait_until(lambda: len(seen["ln"]) >= 1, 60, "the marker event")

    error = info.value
    assert error.code == ErrorCode.EVENT_TOO_LARGE and not error.retriable
    assert "LymphNodeDetected" in error.message and huge.ln_id in error.message
    assert f"{size:,} bytes" in error.message and "not sent" in error.message
    # Who refused shows that the configured producer limit really reached the producer.
    expected = "this producer's limit" if who_refuses == "producer" else "the broker's limit"
    assert expected in error.message, error.message
    assert "message.max.bytes" in error.hint and "PATHSTREAM_KAFKA_MAX_REQUEST_SIZE" in error.hint
    assert [e.ln_id for e in seen["ln"]] == [marker.ln_id]  # the refused event left no trace
