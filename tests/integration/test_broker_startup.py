"""A service started before Kafka waits for it (retrying start); an absent Kafka gives a clear error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pathstream.shared.bus.admin import ensure_topics, pipeline_topics
from pathstream.shared.bus.app import service_app
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.startup import connect_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings
from tests.integration.bus_helpers import wait_until
from tests.integration.kafka_broker import PrivateKafka, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def late_broker(tmp_path: Path) -> Iterator[PrivateKafka]:
    """An Apache Kafka broker that is not running yet; the test starts it, the fixture stops it."""
    broker = PrivateKafka(tmp_path / "kafka")
    yield broker
    broker.stop()


async def test_start_waits_for_a_broker_that_comes_up_late(late_broker: PrivateKafka, tmp_path: Path) -> None:
    address = late_broker.bootstrap
    settings = PathStreamSettings(data_dir=tmp_path, kafka_bootstrap=address, kafka_connect_timeout_s=30)
    broker = build_broker(settings)
    connecting = asyncio.create_task(connect_with_retry(broker, settings))
    await asyncio.sleep(1.5)
    assert not connecting.done(), "nothing listens yet, so the start must still be retrying"

    late_broker.start_in_background()
    await asyncio.wait_for(connecting, 30)
    try:
        await broker.publish({"hello": "late broker"}, "startup-check")
    finally:
        await broker.stop()


async def test_absent_broker_gives_a_clear_retriable_error(tmp_path: Path) -> None:
    settings = PathStreamSettings(
        data_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_connect_timeout_s=2
    )
    broker = build_broker(settings)
    with pytest.raises(PathStreamError) as info:
        await connect_with_retry(broker, settings)
    assert info.value.code == ErrorCode.BROKER_UNAVAILABLE
    assert info.value.retriable
    assert settings.kafka_bootstrap in info.value.message
    assert "PATHSTREAM_KAFKA_BOOTSTRAP" in info.value.hint


async def test_ensure_topics_creates_the_pipeline_once(bus_settings: PathStreamSettings) -> None:
    created = await ensure_topics(bus_settings, partitions=3)
    assert set(created) == set(pipeline_topics(bus_settings))
    assert len(created) == 14 and set(created.values()) == {3}
    assert f"{bus_settings.topic_prefix}ln.detected.dlq" in created
    # Running it again (another worker starting) changes nothing and does not fail.
    assert await ensure_topics(bus_settings, partitions=5) == created


async def test_service_app_waits_for_kafka_then_consumes(late_broker: PrivateKafka, tmp_path: Path) -> None:
    address = late_broker.bootstrap
    settings = PathStreamSettings(
        data_dir=tmp_path,
        kafka_bootstrap=address,
        kafka_connect_timeout_s=30,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
    )
    broker = build_broker(settings)
    seen: list[dict[str, str]] = []

    @broker.subscriber("svc-check", **consumer_options(settings, "svc"))
    async def handle(body: dict[str, str]) -> None:
        seen.append(body)

    app = service_app(broker, settings, "test")
    starting = asyncio.create_task(app.start())
    await asyncio.sleep(1.0)
    assert not starting.done()
    late_broker.start_in_background()
    await asyncio.wait_for(starting, 60)
    try:
        await broker.publish({"hello": "service"}, "svc-check")
        await wait_until(lambda: seen == [{"hello": "service"}], 30, "the service to consume")
    finally:
        await app.stop()
    assert "svc-check" in json.dumps(app.schema.to_specification().to_jsonable())
