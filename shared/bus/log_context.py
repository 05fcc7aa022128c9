"""Bind the ids of each consumed message (event_id, slide_id, study_id, ln_id) to its log lines."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from faststream import BaseMiddleware
from faststream.message import StreamMessage

from pathstream.shared.logs import context_ids


def ids_from_body(body: bytes) -> dict[str, str]:
    """Return the log-context ids found in a JSON event body; {} for anything unparsable."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return {}
    return context_ids(data) if isinstance(data, dict) else {}


class LogContextMiddleware(BaseMiddleware):
    """Broker middleware: every log line emitted while a message is handled carries its ids."""

    async def consume_scope(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
    ) -> Any:
        body = msg.body if isinstance(msg.body, (bytes, bytearray)) else b""
        with structlog.contextvars.bound_contextvars(**ids_from_body(bytes(body))):
            return await call_next(msg)
