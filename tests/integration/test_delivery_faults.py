"""The delivery policy on the real broker (issue 18): long handlers past `max.poll.interval.ms`,
outages waited out in order, oversized messages dead-lettered as excerpts, in-flight work kept
through a rebalance, and DLQ records replayed once. Every case ends with the group's lag at 0."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker, KafkaMessage

from pathstream.services.operations.dead_letters import read_dead_letters, read_original, replay, replayed
from pathstream.shared.bus.admin import ensure_topics
from pathstream.shared.bus.broker import build_broker, client_kwargs
from pathstream.shared.bus.dead_letter import DeadLetter
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import dead_letter_topic
from tests.integration.bus_helpers import group_lag, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GROUP = "delivery-faults"


def _worker(settings: PathStreamSettings, topic: str, handle: Any) -> KafkaBroker:
    broker = build_broker(settings)
    broker.subscriber(topic, **consumer_options(settings, GROUP))(handle)
    return broker


async def _dead_letters(settings: PathStreamSettings, topic: str) -> list[DeadLetter]:
    return [e.record for e in await read_dead_letters(settings, [dead_letter_topic(topic)])]


async def test_a_handler_longer_than_the_poll_interval_runs_once_and_commits(
    bus_settings: PathStreamSettings,
) -> None:
    settings = bus_settings.model_copy(
        update={"kafka_max_poll_interval_ms": 3000, "kafka_session_timeout_ms": 6000}
    )
    topic = settings.topic("long-ln")
    await ensure_topics(settings, [topic, dead_letter_topic(topic)], partitions=2)
    handled: list[int] = []

    async def handle(body: dict[str, int]) -> None:
        # Twice the poll interval, like a 1 cm node on a CPU worker against the default 300 s.
        await asyncio.sleep(7.0 if body["n"] == 0 else 0.05)
        handled.append(body["n"])

    workers = [_worker(settings, topic, handle) for _ in range(2)]
    producer = build_broker(settings)
    await start_with_retry(producer, settings)
    for worker in workers:
        await start_with_retry(worker, settings)
    try:
        for n in range(6):
            await producer.publish({"n": n}, topic, key=f"ln-{n}".encode())
        await wait_until(lambda: set(handled) == set(range(6)), 90, "every LN handled")
        await asyncio.sleep(settings.kafka_max_poll_interval_ms / 1000 * 2)  # time for a redelivery
        assert await group_lag(settings, GROUP, [topic]) == 0, "offsets committed"
    finally:
        for worker in workers:
            await worker.stop()
        await producer.stop()
    assert Counter(handled) == Counter(range(6)), f"each LN handled once, got {Counter(handled)}"
    assert await _dead_letters(settings, topic) == []


async def test_an_outage_is_waited_out_in_order_and_nothing_is_dead_lettered(
    bus_settings: PathStreamSettings,
) -> None:
    settings = bus_settings.model_copy(update={"handler_max_attempts": 1, "handler_outage_max_wait_s": 0.5})
    topic = settings.topic("outage")
    await ensure_topics(settings, [topic, dead_letter_topic(topic)], partitions=1)
    down_until = time.monotonic() + 1e9
    handled: list[int] = []
    tries: Counter[int] = Counter()

    async def handle(body: dict[str, int]) -> None:
        tries[body["n"]] += 1
        if time.monotonic() < down_until:
            raise PathStreamError(ErrorCode.DATABASE_UNAVAILABLE, "PostgreSQL is down", retriable=True)
        handled.append(body["n"])

    worker = _worker(settings, topic, handle)
    producer = build_broker(settings)
    await start_with_retry(producer, settings)
    await start_with_retry(worker, settings)
    try:
        for n in range(5):
            await producer.publish({"n": n}, topic, key=b"one-study")
        await wait_until(lambda: tries[0] >= 3, 30, "the first message to be tried a few times")
        assert handled == [] and set(tries) == {0}, "nothing behind the waiting message was taken"
        down_until = time.monotonic() + 2.0  # the database comes back in 2 s
        await wait_until(lambda: len(handled) == 5, 60, "all messages after the outage")
        assert await group_lag(settings, GROUP, [topic]) == 0
    finally:
        await worker.stop()
        await producer.stop()
    assert handled == [0, 1, 2, 3, 4], "in order, each once"
    assert await _dead_letters(settings, topic) == [], "an outage is never dead-lettered"


async def test_an_oversized_message_is_dead_lettered_as_an_excerpt_and_the_partition_moves_on(
    bus_settings: PathStreamSettings,
) -> None:
    topic = bus_settings.topic("oversized")
    admin = AIOKafkaAdminClient(**client_kwargs(bus_settings))
    await admin.start()
    try:
        # A topic someone configured to take 4 MB, while PathStream (and its DLQ) keep 1 MiB.
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "4194304"})])
    finally:
        await admin.close()
    await ensure_topics(bus_settings, [dead_letter_topic(topic)], partitions=1)
    handled: list[int] = []

    async def handle(body: dict[str, int]) -> None:
        handled.append(body["n"])

    big_settings = bus_settings.model_copy(update={"kafka_max_request_size": 4_000_000})
    producer = build_broker(big_settings)
    worker = _worker(bus_settings, topic, handle)
    huge = b'{"n": 0, "junk": "' + b"x" * 2_000_000 + b'"}'
    await start_with_retry(producer, big_settings)
    try:
        await producer.publish(huge, topic, key=b"k", headers={"content-type": "application/json"})
        await producer.publish({"n": 1}, topic, key=b"k")
        await start_with_retry(worker, bus_settings)
        await wait_until(lambda: handled == [1], 60, "the message behind the oversized one")
        assert await group_lag(bus_settings, GROUP, [topic]) == 0
    finally:
        await worker.stop()
        await producer.stop()

    entries = await read_dead_letters(bus_settings, [dead_letter_topic(topic)])
    assert len(entries) == 1
    dead = entries[0].record
    assert dead.truncated and dead.error_code == ErrorCode.EVENT_TOO_LARGE.value
    assert dead.original_bytes == len(huge) and len(dead.value) < 100_000
    assert dead.original_sha256 == hashlib.sha256(huge).hexdigest()
    assert huge.startswith(dead.value)
    assert await read_original(bus_settings, entries[0]) == huge, "replay can read the original back"


async def test_in_flight_work_survives_a_rebalance(bus_settings: PathStreamSettings) -> None:
    settings = bus_settings.model_copy(update={"kafka_session_timeout_ms": 6000})
    topic = settings.topic("rebalance")
    await ensure_topics(settings, [topic, dead_letter_topic(topic)], partitions=4)
    started: list[str] = []
    handled: list[tuple[str, int]] = []

    def handler(name: str) -> Any:
        async def handle(body: dict[str, int]) -> None:
            started.append(f"{name}:{body['n']}")
            await asyncio.sleep(6.0 if body["n"] == 0 else 0.05)
            handled.append((name, body["n"]))

        return handle

    first = _worker(settings, topic, handler("a"))
    second = _worker(settings, topic, handler("b"))
    producer = build_broker(settings)
    await start_with_retry(producer, settings)
    await start_with_retry(first, settings)
    try:
        await producer.publish({"n": 0}, topic, key=b"ln-0")
        await wait_until(lambda: "a:0" in started, 60, "worker a to start the long LN")
        await start_with_retry(second, settings)  # joins: the group rebalances mid-LN
        for n in range(1, 9):
            await producer.publish({"n": n}, topic, key=f"ln-{n}".encode())
        await wait_until(lambda: {n for _, n in handled} == set(range(9)), 90, "every LN")
        await asyncio.sleep(3)
        assert await group_lag(settings, GROUP, [topic]) == 0
    finally:
        await second.stop()
        await first.stop()
        await producer.stop()
    counts = Counter(n for _, n in handled)
    assert counts == Counter(range(9)), f"in-flight work was repeated or lost: {handled}"
    assert ("a", 0) in handled


async def test_dead_letters_are_listed_and_replayed_once(
    bus_settings: PathStreamSettings, pg_url: str
) -> None:
    topic = bus_settings.topic("replay")
    await ensure_topics(bus_settings, [topic, dead_letter_topic(topic)], partitions=1)
    fixed = False
    handled: list[int] = []

    async def handle(body: dict[str, int], message: KafkaMessage) -> None:
        if body["n"] == 13 and not fixed:
            raise PathStreamError(ErrorCode.MODEL_UNAVAILABLE, "no model for this one yet")
        handled.append(body["n"])

    worker = _worker(bus_settings, topic, handle)
    producer = build_broker(bus_settings)
    await start_with_retry(producer, bus_settings)
    await start_with_retry(worker, bus_settings)
    migrate.upgrade(pg_url)
    engine = create_db_engine(pg_url)
    sessions = session_factory(engine)
    try:
        await producer.publish({"n": 13}, topic, key=b"k")
        await producer.publish({"n": 14}, topic, key=b"k")
        await wait_until(lambda: handled == [14], 60, "the good message")
        entries = await read_dead_letters(bus_settings, [dead_letter_topic(topic)])
        assert len(entries) == 1 and entries[0].record.error_code == "MODEL_UNAVAILABLE"
        assert json.loads(entries[0].record.value) == {"n": 13}
        assert replayed(sessions, entries) == {}

        fixed = True
        assert await replay(producer, bus_settings, sessions, entries[0], replayed_by="ops", reason="model")
        assert not await replay(
            producer, bus_settings, sessions, entries[0], replayed_by="ops", reason="again"
        )
        await wait_until(lambda: handled == [14, 13], 60, "the replayed message")
        assert set(replayed(sessions, entries)) == {entries[0].coordinates}
        await asyncio.sleep(2)
        assert handled == [14, 13], "replayed once only"
        assert await group_lag(bus_settings, GROUP, [topic]) == 0
    finally:
        await worker.stop()
        await producer.stop()
        engine.dispose()
