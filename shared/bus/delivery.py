"""What happens to a consumed message between its poll and its commit: every PathStream consumer's policy.

Three kinds of failure are told apart (`classify`):

- **Outage** (`pathstream.shared.retry.is_outage`: the database, the brokers or a store's share cannot
  be reached). Retrying the same message later will work, so it is never dead-lettered: the consumer
  keeps its partitions paused, waits with capped exponential back-off
  (`PATHSTREAM_HANDLER_OUTAGE_MAX_WAIT_S`) and tries the same message again, as long as it takes.
  Nothing behind it on those partitions is taken meanwhile, and its offset is committed only after
  the attempt that worked.
- **Permanent** (a body that is not JSON or not the event, a non-retriable `PathStreamError`, a
  message over `PATHSTREAM_KAFKA_MAX_EVENT_BYTES`): dead-lettered at once (`dead_letter`), then
  committed, so the partition moves on.
- **Anything else** (a bug, a fault nobody foresaw): tried `PATHSTREAM_HANDLER_MAX_ATTEMPTS` times with
  back-off, then dead-lettered.

**Long handlers.** A lymph node can take longer to score than `max.poll.interval.ms`. While a message
is handled, every partition of its consumer is paused and a keep-alive poll runs beside the
handler: aiokafka counts time spent inside `getmany` as polling, so the member never misses its poll
interval and is never taken out of the group, however long the LN takes; paused partitions return
nothing, so no other message is started and none is fetched twice. A partition assigned during that
time is paused too (a record already fetched from it is rewound).

**Rebalances.** Consumers use the sticky assignor, so a rebalance leaves most partitions where they
were. When a partition whose message is in flight is revoked, the rebalance listener
(`InFlightListener`) waits up to `PATHSTREAM_KAFKA_REBALANCE_WAIT_S` for that message to finish and be
committed before the member rejoins, so the work is neither thrown away nor repeated by the next
owner. A message waiting out an outage is released at once (nothing is lost: it is uncommitted).
Every success commits exactly that message's offset, explicitly, before the next message is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faststream import BaseMiddleware
from faststream.exceptions import HandlerException
from faststream.message import StreamMessage

from pathstream.shared.bus.dead_letter import dead_letter, describe_error, is_permanent
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger
from pathstream.shared.retry import backoff_s, is_outage
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import is_dead_letter_topic

log = get_logger(__name__)

KEEPALIVE_POLL_MS = 250
"""How long each keep-alive `getmany` waits for records (none come: every partition is paused)."""

KEEPALIVE_AFTER_S = 0.5
"""A handler that finishes sooner than this never starts a keep-alive poller (most reporter events)."""


class FailureKind(enum.Enum):
    """How a failed attempt is treated (see the module docstring)."""

    OUTAGE = "outage"
    PERMANENT = "permanent"
    UNEXPECTED = "unexpected"


def classify(exc: BaseException) -> FailureKind:
    """The kind of failure `exc` is: an outage, a permanent problem of the message, or unexpected."""
    if is_outage(exc):
        return FailureKind.OUTAGE
    if is_permanent(exc):
        return FailureKind.PERMANENT
    return FailureKind.UNEXPECTED


@dataclass
class InFlight:
    """The message a consumer is handling now (one at a time per consumer)."""

    group_id: str
    consumer: AIOKafkaConsumer | None
    partition: TopicPartition
    offset: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    waiting_out_outage: bool = False
    released: bool = False
    """Set when a rebalance took the partition away: the message is left to its next owner."""


_IN_FLIGHT: dict[tuple[str, str, int], InFlight] = {}
"""(group id, topic, partition) -> the message in flight there, for the rebalance listener."""


def in_flight(group_id: str) -> list[InFlight]:
    """The messages consumer group `group_id` is handling in this process now."""
    return [f for (group, _, _), f in _IN_FLIGHT.items() if group == group_id]


class InFlightListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Rebalance listener of one subscriber: lets in-flight work finish before a partition moves."""

    def __init__(self, group_id: str, wait_s: float) -> None:
        self.group_id = group_id
        self.wait_s = wait_s

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Wait (bounded) for the messages in flight on `revoked` partitions to be committed."""
        for tp in revoked:
            flight = _IN_FLIGHT.get((self.group_id, tp.topic, tp.partition))
            if flight is None:
                continue
            if flight.waiting_out_outage:
                flight.released = True
                continue
            try:
                await asyncio.wait_for(flight.done.wait(), self.wait_s)
                log.info("in_flight_finished_before_rebalance", topic=tp.topic, partition=tp.partition)
            except TimeoutError:
                flight.released = True
                log.warning(
                    "in_flight_released_to_rebalance",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=flight.offset,
                    waited_s=self.wait_s,
                    hint="The message is still handled here; its next owner handles it again and the "
                    "reporter stores the result once. Raise PATHSTREAM_KAFKA_REBALANCE_WAIT_S for long LNs.",
                )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """While a message is in flight, newly assigned partitions stay paused until it is done."""
        busy = in_flight(self.group_id)
        consumer = busy[0].consumer if busy else None
        if consumer is not None and assigned:
            consumer.pause(*assigned)


class DeliveryPolicy:
    """Broker middleware factory: pass an instance in `KafkaBroker(middlewares=[...])`."""

    def __init__(self, settings: PathStreamSettings) -> None:
        self.settings = settings

    def __call__(self, msg: Any, /, **kwargs: Any) -> _DeliveryMiddleware:
        return _DeliveryMiddleware(msg, policy=self, **kwargs)


class _DeliveryMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, policy: DeliveryPolicy, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self.settings = policy.settings

    async def consume_scope(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
    ) -> Any:
        record = msg.raw_message
        if isinstance(record, tuple) or is_dead_letter_topic(getattr(record, "topic", "")):
            # Batches have no single message to move, and a DLQ's own failures must not loop.
            return await call_next(msg)
        consumer = getattr(msg, "consumer", None)
        if not isinstance(consumer, AIOKafkaConsumer):
            consumer = None  # FastStream's in-memory test broker: the same decisions, no real partitions
        # aiokafka keeps the group id only privately; the rebalance listener is keyed by it.
        group_id = str(getattr(consumer, "_group_id", "") or "")
        flight = InFlight(group_id, consumer, TopicPartition(record.topic, record.partition), record.offset)
        key = (group_id, record.topic, record.partition)
        if consumer is not None:
            _IN_FLIGHT[key] = flight
            consumer.pause(*consumer.assignment())
        try:
            return await self._deliver(call_next, msg, flight)
        finally:
            if _IN_FLIGHT.get(key) is flight:
                del _IN_FLIGHT[key]
            flight.done.set()
            if consumer is not None:
                consumer.resume(*consumer.assignment())

    async def _deliver(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
        flight: InFlight,
    ) -> Any:
        record = msg.raw_message
        where = log.bind(topic=record.topic, partition=record.partition, offset=record.offset)
        size = len(record.value or b"") + len(record.key or b"")
        if size > self.settings.kafka_max_event_bytes:
            too_large = PathStreamError(
                ErrorCode.EVENT_TOO_LARGE,
                f"The message is {size:,} bytes, over PATHSTREAM_KAFKA_MAX_EVENT_BYTES "
                f"({self.settings.kafka_max_event_bytes:,}); PathStream never sends events this large.",
                hint="Find the producer that sent it; replay it from the DLQ once it is fixed.",
            )
            return await self._give_up(msg, flight, too_large, attempts=0)

        unexpected = 0
        outages = 0
        while True:
            try:
                result = await self._attempt(call_next, msg, flight)
            except Exception as exc:
                if _is_control(exc):
                    raise
                kind = classify(exc)
                if kind is FailureKind.OUTAGE:
                    outages += 1
                    wait = backoff_s(
                        outages,
                        self.settings.handler_retry_wait_s or 0.1,
                        self.settings.handler_outage_max_wait_s,
                    )
                    where.warning(
                        "dependency_unavailable_waiting",
                        error=describe_error(exc),
                        attempt=outages,
                        next_try_in_s=round(wait, 2),
                    )
                    flight.waiting_out_outage = True
                    try:
                        await self._sleep_polling(wait, flight)
                    finally:
                        flight.waiting_out_outage = False
                    if flight.released:
                        where.warning("outage_wait_released_to_rebalance")
                        return None
                    continue
                unexpected += 1
                if kind is FailureKind.PERMANENT or unexpected >= self.settings.handler_max_attempts:
                    if kind is FailureKind.UNEXPECTED:
                        where.error("handler_failed", attempts=unexpected, exc_info=exc)
                    return await self._give_up(msg, flight, exc, attempts=unexpected)
                wait = backoff_s(unexpected, self.settings.handler_retry_wait_s, 30.0)
                where.warning(
                    "handler_failed_retrying",
                    error=describe_error(exc),
                    attempt=unexpected,
                    next_try_in_s=wait,
                )
                await self._sleep_polling(wait, flight)
                continue
            if outages:
                where.info("dependency_back", outage_attempts=outages)
            await self._commit(flight)
            return result

    async def _give_up(
        self, msg: StreamMessage[Any], flight: InFlight, exc: BaseException, attempts: int
    ) -> None:
        broker = self.context.get("broker")
        # A DLQ write that fails (the brokers are down) is itself an outage: wait and write again.
        tries = 0
        while True:
            try:
                await dead_letter(broker, self.settings, msg, exc, attempts)
                break
            except Exception as write_error:
                if _is_control(write_error):
                    raise
                tries += 1
                log.error("dead_letter_write_failed", attempt=tries, error=describe_error(write_error))
                await self._sleep_polling(
                    backoff_s(tries, 0.5, self.settings.handler_outage_max_wait_s), flight
                )
                if flight.released:
                    return None
        await self._commit(flight)
        return None

    async def _attempt(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
        flight: InFlight,
    ) -> Any:
        """Run one handler attempt; from `KEEPALIVE_AFTER_S` (or a quarter of the poll interval) on, poll
        beside it (module docstring)."""
        task = asyncio.ensure_future(call_next(msg))
        # A quarter of the poll interval at most: the member has already used some of it fetching.
        after_s = min(KEEPALIVE_AFTER_S, self.settings.kafka_max_poll_interval_ms / 4000)
        try:
            done, _ = await asyncio.wait({task}, timeout=after_s)
            if not done:
                stop = asyncio.Event()
                poller = asyncio.create_task(self._keep_alive(flight, stop))
                try:
                    await asyncio.wait({task})
                finally:
                    await _stop(poller, stop)
            return task.result()
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _sleep_polling(self, seconds: float, flight: InFlight) -> None:
        """Wait `seconds` while staying in the group (paused partitions, keep-alive polls)."""
        stop = asyncio.Event()
        poller = asyncio.create_task(self._keep_alive(flight, stop))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_released(flight), seconds)
        finally:
            await _stop(poller, stop)

    async def _keep_alive(self, flight: InFlight, stop: asyncio.Event) -> None:
        """Poll the paused consumer until `stop` is set (see `_stop`)."""
        consumer = flight.consumer
        if consumer is None:
            await stop.wait()
            return
        while not stop.is_set():
            try:
                records = await consumer.getmany(timeout_ms=KEEPALIVE_POLL_MS)
            except KafkaError as exc:  # the brokers are down: the coordinator reconnects on its own
                log.debug("keep_alive_poll_failed", error=str(exc))
                await asyncio.sleep(KEEPALIVE_POLL_MS / 1000)
                continue
            for tp, fetched in records.items():
                # A partition assigned mid-message: give its records back and hold it until done.
                consumer.seek(tp, min(r.offset for r in fetched))
                consumer.pause(tp)

    async def _commit(self, flight: InFlight) -> None:
        if flight.released or flight.consumer is None:
            return
        try:
            await flight.consumer.commit({flight.partition: flight.offset + 1})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on (the member was away too long): the next owner handles the message
            # again, and every consumer is idempotent on event ids.
            log.warning(
                "commit_after_rebalance_failed",
                topic=flight.partition.topic,
                partition=flight.partition.partition,
                offset=flight.offset,
                error=str(exc),
            )


async def _stop(poller: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Let the keep-alive poller finish its current `getmany`; cancel it only when that `getmany`
    is waiting for a new assignment (a rebalance), which comes only after the rebalance listener,
    which may be waiting for this very message."""
    stop.set()
    done, _ = await asyncio.wait({poller}, timeout=2 * KEEPALIVE_POLL_MS / 1000)
    if not done:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller


async def _released(flight: InFlight) -> None:
    while not flight.released:
        await asyncio.sleep(0.1)


def _is_control(exc: BaseException) -> bool:
    """FastStream's own ack/nack/reject signals and cancellation pass through untouched."""
    return isinstance(exc, (HandlerException, asyncio.CancelledError))
