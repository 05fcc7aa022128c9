"""Dead-letter records: a message that can never be handled moves to `<topic>.dlq`, with why.

`pathstream.shared.bus.delivery` decides *when* a message is dead-lettered; this module says *what* is
written. A DLQ record keeps the original key and value byte for byte and the original headers
(content-type moved to `pathstream.dlq.original_content_type`, so DLQ readers get opaque bytes), and
adds `pathstream.dlq.*` headers naming the error, the attempts, where the message came from
(topic, partition, offset) and the original's size and SHA-256. A message too large for the DLQ
(a producer with a higher limit than ours, or a topic with a raised `max.message.bytes`) is still
dead-lettered: with a bounded excerpt of its value and `truncated=true`; the original stays in its
topic for as long as the topic retains it, and `pathstream dlq replay` reads it back from there.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from faststream.message import StreamMessage
from pydantic import BaseModel, Field, ValidationError

from pathstream.shared.errors import PathStreamError
from pathstream.shared.events.base import utc_now
from pathstream.shared.logs import get_logger
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import dead_letter_topic

log = get_logger(__name__)

HEADER_PREFIX = "pathstream.dlq."
MAX_ERROR_CHARS = 2000
MAX_EXCERPT_BYTES = 65_536
_RECORD_OVERHEAD = 4_096
"""Room kept for the DLQ headers PathStream adds and Kafka's record framing."""


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
    error_code: str = ""
    original_bytes: int | None = None
    original_sha256: str | None = None
    truncated: bool = Field(default=False, description="True when `value` is only an excerpt.")
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
            error_code=meta.get("error_code", ""),
            original_bytes=int(meta["original_bytes"]) if meta.get("original_bytes") else None,
            original_sha256=meta.get("original_sha256") or None,
            truncated=meta.get("truncated") == "true",
            headers=original_headers,
        )


def _record_headers(msg: StreamMessage[Any]) -> dict[str, str]:
    return {k: v for k, v in (msg.headers or {}).items() if isinstance(v, str)}


def dead_letter_record(
    msg: StreamMessage[Any], exc: BaseException, attempts: int, limit: int
) -> tuple[bytes, dict[str, str]]:
    """The DLQ value and headers for `msg` that failed with `exc` after `attempts` attempts.

    When the original (value, key and headers) would not fit in `limit` bytes, the value becomes its
    first `excerpt_bytes(limit)` bytes and the headers say so (`truncated`, `original_bytes`,
    `original_sha256`); `pathstream dlq replay` then reads the original back from its topic,
    partition and offset. Original headers that alone exceed a quarter of `limit` are dropped
    (`original_headers_dropped`).
    """
    record = msg.raw_message
    value = bytes(record.value or b"")
    headers = _record_headers(msg)
    # The DLQ holds opaque bytes: a DLQ reader must not fail decoding what failed here.
    original_content_type = headers.pop("content-type", "")
    meta = {
        "original_content_type": original_content_type,
        "original_topic": record.topic,
        "original_partition": str(record.partition),
        "original_offset": str(record.offset),
        "error": describe_error(exc),
        "error_type": type(exc).__name__,
        "error_code": exc.code.value if isinstance(exc, PathStreamError) else "",
        "attempts": str(attempts),
        "failed_at": utc_now().isoformat(),
        "original_bytes": str(len(value)),
        "original_sha256": hashlib.sha256(value).hexdigest(),
        "truncated": "false",
    }
    header_bytes = sum(len(k) + len(v) for k, v in headers.items())
    if header_bytes > limit // 4:
        headers = {}
        meta["original_headers_dropped"] = str(header_bytes)
    key_bytes = len(record.key or b"")
    if len(value) + key_bytes + header_bytes + _RECORD_OVERHEAD > limit:
        value = value[: excerpt_bytes(limit)]
        meta["truncated"] = "true"
    out = {**headers, "content-type": "application/octet-stream"}
    out.update({f"{HEADER_PREFIX}{k}": v for k, v in meta.items()})
    return value, out


def excerpt_bytes(limit: int) -> int:
    """How much of an oversized message's value its DLQ record keeps."""
    return max(256, min(MAX_EXCERPT_BYTES, limit // 4))


async def dead_letter(
    broker: Any, settings: PathStreamSettings, msg: StreamMessage[Any], exc: BaseException, attempts: int
) -> None:
    """Write `msg` to its topic's DLQ (`dead_letter_record`) and wait for the brokers to confirm.

    Raises what the publish raised (the caller waits and writes again; the original stays
    uncommitted meanwhile, so nothing is lost).
    """
    record = msg.raw_message
    target = dead_letter_topic(record.topic)
    value, headers = dead_letter_record(msg, exc, attempts, settings.kafka_max_request_size)
    try:
        await broker.publish(value, target, key=record.key, headers=headers)
    except MessageSizeTooLargeError:
        # The DLQ topic's own limit is lower than this producer's: a small excerpt fits any broker.
        value, headers = dead_letter_record(msg, exc, attempts, limit=MAX_EXCERPT_BYTES)
        await broker.publish(value, target, key=record.key, headers=headers)
    log.warning(
        "message_dead_lettered",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        dlq_topic=target,
        attempts=attempts,
        error=headers[f"{HEADER_PREFIX}error"],
        truncated=headers[f"{HEADER_PREFIX}truncated"] == "true",
    )
