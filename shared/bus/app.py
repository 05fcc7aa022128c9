"""The FastStream app every service runs: its broker, a retrying start, and its AsyncAPI document."""

from __future__ import annotations

import logging

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from pathstream.shared.bus.startup import connect_with_retry
from pathstream.shared.events import SCHEMA_VERSION
from pathstream.shared.settings import PathStreamSettings


def service_app(broker: KafkaBroker, settings: PathStreamSettings, name: str) -> FastStream:
    """Wrap a service's broker in a FastStream app that waits for Kafka before subscribing.

    `name` is the service (`detector`, `escnn`, ...); it titles the app's AsyncAPI document and
    its log lines. Run with `await app.run()` (handles SIGTERM) or `start()` / `stop()`.
    """
    app = FastStream(
        broker,
        logger=logging.getLogger(f"pathstream.{name}"),
        specification=AsyncAPI(broker, title=f"PathStream {name}", version=SCHEMA_VERSION),
    )

    @app.on_startup
    async def wait_for_kafka() -> None:
        await connect_with_retry(broker, settings)

    return app
