"""Apache Kafka keeps what it acknowledged across a restart: messages on disk, committed offsets.

Each test runs its own single-node broker (the one `infra/local/kafka-up.sh` starts) and stops it
with `kafka-down.sh --keep-data`, as an operator restarting the broker would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker

from pathstream.shared.bus.admin import ensure_topics
from pathstream.shared.bus.broker import build_broker, client_kwargs
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.events import LymphNodeDetected
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic
from tests.integration.bus_helpers import wait_until
from tests.integration.kafka_broker import PrivateKafka
from tests.samples import ln_detected

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GROUP = "restart-resume"


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    broker = PrivateKafka(tmp_path / "kafka")
    broker.start()
    yield broker
    broker.stop()


def _reader(settings: PathStreamSettings, group: str, seen: list[str]) -> KafkaBroker:
    broker = build_broker(settings)

    @broker.subscriber(settings.topic(Topic.LN_DETECTED), **consumer_options(settings, group))
    async def read(event: LymphNodeDetected) -> None:
        seen.append(event.ln_id)

    return broker


async def _committed(settings: PathStreamSettings, group: str) -> int:
    """The offset `group` committed on partition 0 of the LN topic (-1: none)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.topic(group))
    finally:
        await admin.close()
    meta = offsets.get(TopicPartition(settings.topic(Topic.LN_DETECTED), 0))
    return meta.offset if meta is not None else -1


async def _publish(settings: PathStreamSettings, events: list[LymphNodeDetected]) -> None:
    producer = build_broker(settings)
    await start_with_retry(producer, settings)
    try:
        for event in events:
            await publish_event(producer, settings, event)
    finally:
        await producer.stop()


async def test_messages_and_committed_offsets_survive_a_broker_restart(
    kafka: PrivateKafka, tmp_path: Path
) -> None:
    settings = kafka.settings(tmp_path)
    await ensure_topics(settings, [settings.topic(Topic.LN_DETECTED)], partitions=1)
    events = [ln_detected(index=i) for i in range(10)]
    ids = [e.ln_id for e in events]

    # A consumer group reads and commits the first four, then stops; six more arrive after it.
    await _publish(settings, events[:4])
    first: list[str] = []
    reader = _reader(settings, GROUP, first)
    await start_with_retry(reader, settings)
    try:
        await wait_until(lambda: len(first) == 4, 60, "the group to read the first four")
    finally:
        await reader.stop()
    assert first == ids[:4]
    await _publish(settings, events[4:])
    assert await _committed(settings, GROUP) == 4

    kafka.stop(keep_data=True)
    line = kafka.start()
    assert "Apache Kafka 4." in line

    # What was acknowledged before the stop is still there, and the group's position with it.
    assert await _committed(settings, GROUP) == 4
    resumed: list[str] = []
    everything: list[str] = []
    reader = _reader(settings, GROUP, resumed)
    fresh = _reader(settings, "restart-fresh", everything)
    await start_with_retry(reader, settings)
    await start_with_retry(fresh, settings)
    try:
        await wait_until(lambda: len(everything) == 10, 60, "a new group to read all ten")
        await wait_until(lambda: len(resumed) >= 6, 60, "the old group to read the six new ones")
    finally:
        await reader.stop()
        await fresh.stop()
    assert everything == ids
    assert resumed == ids[4:]  # resumed at its committed offset: nothing read twice, nothing skipped
