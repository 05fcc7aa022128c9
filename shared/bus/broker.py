"""Build FastStream's KafkaBroker from settings: security, logging, DLQ and log-context middleware."""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security

from pathstream.shared.bus.delivery import DeliveryPolicy
from pathstream.shared.bus.log_context import LogContextMiddleware
from pathstream.shared.bus.security import kafka_security
from pathstream.shared.settings import PathStreamSettings

BUS_LOGGER = "pathstream.bus"


def build_broker(settings: PathStreamSettings, *, description: str | None = None) -> KafkaBroker:
    """Return an unstarted KafkaBroker for `settings.kafka_bootstrap`.

    Every subscriber on it binds message ids to logs and follows `pathstream.shared.bus.delivery`:
    outages are waited out, messages that can never succeed are dead-lettered.
    """
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=settings.kafka_client_id,
        security=kafka_security(settings),
        middlewares=[
            LogContextMiddleware,
            DeliveryPolicy(settings),
        ],
        # Waits for every in-sync replica to confirm each write, so an acknowledged event is
        # durable; idempotence keeps a write retried after a lost acknowledgement from landing twice.
        acks="all",
        enable_idempotence=True,
        # Refuse an event the brokers would refuse (their `message.max.bytes`) before sending it.
        max_request_size=settings.kafka_max_request_size,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        # A stopping worker finishes its in-flight slide or LN within this time, or releases it
        # uncommitted to the rest of the group.
        graceful_timeout=settings.handler_graceful_timeout_s,
        logger=logging.getLogger(BUS_LOGGER),
        description=description,
    )


def client_kwargs(settings: PathStreamSettings) -> dict[str, Any]:
    """Connection arguments for plain aiokafka clients (admin, tools) matching `build_broker`."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": settings.kafka_client_id,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        **parse_security(kafka_security(settings)),
    }
