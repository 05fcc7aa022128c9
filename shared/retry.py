"""Retry a piece of work while it fails with a retriable `PathStreamError` (tenacity).

A slide still being copied, a store on a share that blinked: such failures say `retriable=True`
and are tried again with exponential back-off, up to `PATHSTREAM_HANDLER_MAX_ATTEMPTS` times in all.
Anything else is raised at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from pathstream.shared.errors import PathStreamError
from pathstream.shared.settings import PathStreamSettings

T = TypeVar("T")


def is_retriable(exc: BaseException) -> bool:
    """True for a `PathStreamError` that says trying again later may succeed."""
    return isinstance(exc, PathStreamError) and exc.retriable


def retry_retriable(settings: PathStreamSettings, work: Callable[[], T]) -> T:
    """Return `work()`, retrying retriable failures; the last failure is re-raised unchanged."""
    for attempt in Retrying(
        stop=stop_after_attempt(settings.handler_max_attempts),
        wait=wait_exponential(multiplier=settings.handler_retry_wait_s, max=30),
        retry=retry_if_exception(is_retriable),
        reraise=True,
    ):
        with attempt:
            return work()
    raise AssertionError("unreachable: tenacity either returned or re-raised")  # pragma: no cover
