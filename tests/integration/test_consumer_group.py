"""Two workers in one consumer group share a 4-partition topic; when one stops the other takes over."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from pathstream.shared.bus.admin import ensure_topics
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.settings import PathStreamSettings
from tests.integration.bus_helpers import wait_until

pytestmark = pytest.mark.integration

GROUP = "escnn-like-workers"


def _worker(
    settings: PathStreamSettings, topic: str, name: str, log: list[tuple[str, int]]
) -> tuple[KafkaBroker, Any]:
    broker = build_broker(settings)
    subscriber = broker.subscriber(topic, **consumer_options(settings, GROUP))

    @subscriber
    async def handle(body: dict[str, int]) -> None:
        log.append((name, body["n"]))

    return broker, subscriber


def _partitions(subscriber: Any) -> set[int]:
    consumer = getattr(subscriber, "consumer", None)
    return {tp.partition for tp in consumer.assignment()} if consumer is not None else set()


async def test_group_shares_partitions_and_fails_over(bus_settings: PathStreamSettings) -> None:
    topic = bus_settings.topic("group-test")
    assert await ensure_topics(bus_settings, [topic], partitions=4) == {topic: 4}

    deliveries: list[tuple[str, int]] = []
    broker_a, sub_a = _worker(bus_settings, topic, "a", deliveries)
    broker_b, sub_b = _worker(bus_settings, topic, "b", deliveries)
    producer = build_broker(bus_settings)
    await start_with_retry(producer, bus_settings)
    await start_with_retry(broker_a, bus_settings)
    await start_with_retry(broker_b, bus_settings)
    try:
        # During the rebalance the first member still lists its old partitions for a moment (Apache
        # Kafka hands them over in steps), so wait for the settled split: disjoint and complete.
        await wait_until(
            lambda: (
                bool(_partitions(sub_a))
                and bool(_partitions(sub_b))
                and not _partitions(sub_a) & _partitions(sub_b)
                and _partitions(sub_a) | _partitions(sub_b) == {0, 1, 2, 3}
            ),
            60,
            "both workers to own disjoint shares of the partitions",
        )

        for n in range(40):
            await producer.publish({"n": n}, topic, key=f"ln-{n}".encode())
        await wait_until(lambda: {n for _, n in deliveries} >= set(range(40)), 60, "first batch")
        per_worker = Counter(name for name, _ in deliveries)
        assert per_worker["a"] > 0 and per_worker["b"] > 0, per_worker

        await broker_a.stop()
        await wait_until(lambda: _partitions(sub_b) == {0, 1, 2, 3}, 60, "b to take all partitions")

        for n in range(40, 80):
            await producer.publish({"n": n}, topic, key=f"ln-{n}".encode())
        await wait_until(lambda: {n for _, n in deliveries} >= set(range(80)), 60, "second batch")
    finally:
        await broker_b.stop()
        await broker_a.stop()
        await producer.stop()

    counts = Counter(n for _, n in deliveries)
    assert set(counts) == set(range(80)), "every message received"
    assert all(c == 1 for c in counts.values()), f"duplicates after a clean hand-over: {counts}"
    assert {n for name, n in deliveries if name == "b"} >= set(range(40, 80))
