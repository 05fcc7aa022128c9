"""Dead-letter path: a message that cannot be parsed, or keeps failing, moves to `<topic>.dlq`.

The middleware wraps every handler call. A message whose body does not validate, or a handler that
raises a non-retriable `PathStreamError`, goes to the DLQ at once; any other exception is retried
(tenacity, exponential back-off) up to `handler_max_attempts` times first. The DLQ record keeps the
original key and value byte for byte and the original headers (content-type moved to
`pathstream.dlq.original_content_type`, so DLQ readers get opaque bytes), so it can be replayed, and
adds headers naming the error, the attempts and where the message came from. Once the DLQ write
is confirmed the original is acknowledged and the consumer moves on; if the DLQ write itself
fails, the message is not acknowledged and will be delivered again, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from faststream import BaseMiddleware
from faststream.exceptions import HandlerException
from faststream.message import StreamMessage
from pydantic import BaseModel, Field, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from pathstream.shared.errors import PathStreamError
from pathstream.shared.events.base import utc_now
from pathstream.shared.logs import get_logger
from pathstream.shared.topics import dead_letter_topic, is_dead_letter_topic

log = get_logger(__name__)

HEADER_PREFIX = "pathstream.dlq."
MAX_ERROR_CHARS = 2000


def is_permanent(exc: BaseException) -> bool:
    """True for failures that retrying the same message cannot fix (bad input, not bad luck)."""
    if isinstance(exc, (ValidationError, json.JSONDecodeError, UnicodeDecodeError)):
        return True
    return isinstance(exc, PathStreamError) and not exc.retriable


def describe_error(exc: BaseException) -> str:
    """A one-line description of `exc` for the DLQ header: type and message, never input values.

    Pydantic's default text echoes the offending input, which may hold anything; only field paths
    and messages are kept.
    """
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        text = f"ValidationError: {exc.error_count()} problem(s): {problems}"
    elif isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        text = f"{type(exc).__name__}: the message body is not UTF-8 JSON ({exc})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


class DeadLetter(BaseModel):
    """A DLQ record as read back: the original message and why it was dead-lettered."""

    original_topic: str
    original_partition: int
    original_offset: int
    key: bytes | None
    value: bytes
    error: str
    error_type: str
    attempts: int
    failed_at: datetime
    headers: dict[str, str] = Field(description="The original message's headers, content-type restored.")

    @classmethod
    def from_record(cls, key: bytes | None, value: bytes, headers: dict[str, str]) -> DeadLetter:
        """Build from a consumed DLQ record's key, value and decoded headers."""
        meta = {k[len(HEADER_PREFIX) :]: v for k, v in headers.items() if k.startswith(HEADER_PREFIX)}
        original_headers = {
            k: v for k, v in headers.items() if not k.startswith(HEADER_PREFIX) and k != "content-type"
        }
        if meta.get("original_content_type"):
            original_headers["content-type"] = meta["original_content_type"]
        return cls(
            original_topic=meta["original_topic"],
            original_partition=int(meta["original_partition"]),
            original_offset=int(meta["original_offset"]),
            key=key,
            value=value,
            error=meta["error"],
            error_type=meta["error_type"],
            attempts=int(meta["attempts"]),
            failed_at=datetime.fromisoformat(meta["failed_at"]),
            headers=original_headers,
        )


class DeadLetterPolicy:
    """Broker middleware factory: pass an instance in `KafkaBroker(middlewares=[...])`."""

    def __init__(self, max_attempts: int = 3, retry_wait_s: float = 1.0) -> None:
        self.max_attempts = max_attempts
        self.retry_wait_s = retry_wait_s

    def __call__(self, msg: Any, /, **kwargs: Any) -> _DeadLetterMiddleware:
        return _DeadLetterMiddleware(msg, policy=self, **kwargs)


class _DeadLetterMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, policy: DeadLetterPolicy, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self.policy = policy

    async def consume_scope(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
    ) -> Any:
        record = msg.raw_message
        if isinstance(record, tuple) or is_dead_letter_topic(getattr(record, "topic", "")):
            # Batches have no single message to move, and a DLQ's own failures must not loop.
            return await call_next(msg)

        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.policy.max_attempts),
                wait=wait_exponential(multiplier=self.policy.retry_wait_s, max=30),
                retry=retry_if_exception(lambda e: not is_permanent(e) and not _is_control(e)),
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return await call_next(msg)
        except Exception as exc:
            if _is_control(exc):
                raise
            await self._dead_letter(msg, exc, attempts)
            return None
        return None  # pragma: no cover - the loop always returns or raises

    async def _dead_letter(self, msg: StreamMessage[Any], exc: Exception, attempts: int) -> None:
        record = msg.raw_message
        target = dead_letter_topic(record.topic)
        error = describe_error(exc)
        headers = {k: v for k, v in (msg.headers or {}).items() if isinstance(v, str)}
        # The DLQ holds opaque bytes: a DLQ reader must not fail decoding what failed here.
        original_content_type = headers.pop("content-type", "")
        headers.update(
            {
                "content-type": "application/octet-stream",
                f"{HEADER_PREFIX}original_content_type": original_content_type,
                f"{HEADER_PREFIX}original_topic": record.topic,
                f"{HEADER_PREFIX}original_partition": str(record.partition),
                f"{HEADER_PREFIX}original_offset": str(record.offset),
                f"{HEADER_PREFIX}error": error,
                f"{HEADER_PREFIX}error_type": type(exc).__name__,
                f"{HEADER_PREFIX}attempts": str(attempts),
                f"{HEADER_PREFIX}failed_at": utc_now().isoformat(),
            }
        )
        where = log.bind(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            dlq_topic=target,
            attempts=attempts,
            error=error,
        )
        broker = self.context.get("broker")
        try:
            await broker.publish(msg.body, target, key=record.key, headers=headers)
        except Exception:
            where.error("dead_letter_write_failed", exc_info=True)
            # Not acknowledging the original means it is delivered again: slower, but not lost.
            await asyncio.sleep(self.policy.retry_wait_s)
            raise
        where.warning("message_dead_lettered")


def _is_control(exc: BaseException) -> bool:
    """FastStream's own ack/nack/reject signals and cancellation pass through untouched."""
    return isinstance(exc, (HandlerException, asyncio.CancelledError))
