"""Which failures are worth trying again, and a bounded retry for the ones that concern the input.

Two kinds of retriable failure are told apart:

- an **outage** (`is_outage`): the database, the brokers or the share holding the tile stores cannot
  be reached. It says nothing about the message. A service consumer never gives up on it: its
  delivery policy (`pathstream.shared.bus.delivery`) pauses and tries the same message again until
  the dependency is back. Handlers running under that policy pass `outages=False` here, so an outage
  reaches the policy at once instead of being retried twice over.
- any other retriable `PathStreamError` (a slide still being copied): tried again with exponential
  back-off up to `PATHSTREAM_HANDLER_MAX_ATTEMPTS` times in all, then reported (a `SlideFailed`
  with `retriable=true`, which `pathstream reprocess` can act on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError
from sqlalchemy.exc import OperationalError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings

T = TypeVar("T")

OUTAGE_CODES = frozenset(
    {ErrorCode.DATABASE_UNAVAILABLE, ErrorCode.BROKER_UNAVAILABLE, ErrorCode.STORE_UNREACHABLE}
)
"""Error codes that name an unreachable dependency rather than a problem of the message."""

_OUTAGE_EXCEPTIONS = (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    OperationalError,
)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says a dependency (database, brokers, store share) cannot be reached now."""
    if isinstance(exc, PathStreamError):
        return exc.code in OUTAGE_CODES
    return isinstance(exc, _OUTAGE_EXCEPTIONS)


def backoff_s(attempt: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait before attempt `attempt + 1`: `base_s * 2**(attempt-1)`, at most `cap_s`."""
    return min(cap_s, base_s * 2 ** max(0, attempt - 1))


def is_retriable(exc: BaseException) -> bool:
    """True for a `PathStreamError` that says trying again later may succeed."""
    return isinstance(exc, PathStreamError) and exc.retriable


def retry_retriable(settings: PathStreamSettings, work: Callable[[], T], *, outages: bool = True) -> T:
    """Return `work()`, retrying retriable failures; the last failure is re-raised unchanged.

    With `outages=False` an outage (`is_outage`) is raised at once, for the caller's policy to wait out.
    """

    def worth_retrying(exc: BaseException) -> bool:
        return is_retriable(exc) and (outages or not is_outage(exc))

    for attempt in Retrying(
        stop=stop_after_attempt(settings.handler_max_attempts),
        wait=wait_exponential(multiplier=settings.handler_retry_wait_s, max=30),
        retry=retry_if_exception(worth_retrying),
        reraise=True,
    ):
        with attempt:
            return work()
    raise AssertionError("unreachable: tenacity either returned or re-raised")  # pragma: no cover
