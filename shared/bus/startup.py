"""Start a broker connection with retries, so a service can start before Kafka is reachable."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaConnectionError, KafkaError
from faststream.kafka import KafkaBroker
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger
from pathstream.shared.settings import PathStreamSettings

log = get_logger(__name__)

_TRANSIENT = (KafkaConnectionError, KafkaError, OSError, TimeoutError)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "kafka_not_reachable_retrying",
        attempt=state.attempt_number,
        next_wait_s=round(state.upcoming_sleep, 2),
        error=str(error),
    )


async def retry_until_reachable(
    connect: Callable[[], Awaitable[object]],
    cleanup: Callable[[], Awaitable[object]],
    settings: PathStreamSettings,
) -> None:
    """Await `connect()` until it succeeds, with exponential back-off for
    `settings.kafka_connect_timeout_s`; `cleanup()` runs after each failed attempt.

    Raises `PathStreamError(BROKER_UNAVAILABLE)` when Kafka stays unreachable.
    """
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(settings.kafka_connect_timeout_s),
            wait=wait_exponential(multiplier=0.5, max=10),
            retry=retry_if_exception_type(_TRANSIENT),
            before_sleep=_log_retry,
            reraise=True,
        ):
            with attempt:
                try:
                    await connect()
                except _TRANSIENT:
                    # A failed start leaves half-built clients behind; close them before retrying.
                    with contextlib.suppress(Exception):
                        await cleanup()
                    raise
    except _TRANSIENT as exc:
        raise PathStreamError(
            ErrorCode.BROKER_UNAVAILABLE,
            f"Kafka at {settings.kafka_bootstrap} did not answer within "
            f"{settings.kafka_connect_timeout_s:g} s ({exc}).",
            hint="Check PATHSTREAM_KAFKA_BOOTSTRAP and the security settings, or start the local "
            "broker with infra/local/kafka-up.sh.",
            retriable=True,
        ) from None


async def connect_with_retry(broker: KafkaBroker, settings: PathStreamSettings) -> None:
    """Connect `broker` to Kafka, retrying as `retry_until_reachable` does."""
    await retry_until_reachable(broker.connect, broker.stop, settings)


async def start_with_retry(broker: KafkaBroker, settings: PathStreamSettings) -> None:
    """Connect with retries (see `connect_with_retry`), then start every subscriber."""
    await connect_with_retry(broker, settings)
    await broker.start()
