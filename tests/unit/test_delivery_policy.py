"""The delivery policy's decisions (outage, permanent, unexpected) and the DLQ record format, on
FastStream's in-memory TestKafkaBroker.

The same behaviour on the real broker, with real partitions, pauses and commits, is covered by
tests/integration/test_dead_letter.py and tests/integration/test_delivery_faults.py.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

from faststream.kafka import KafkaBroker, TestKafkaBroker
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError

from pathstream.shared.bus.dead_letter import (
    HEADER_PREFIX,
    DeadLetter,
    dead_letter_record,
    describe_error,
    excerpt_bytes,
    is_permanent,
)
from pathstream.shared.bus.delivery import DeliveryPolicy, FailureKind, classify
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.retry import backoff_s, is_outage
from pathstream.shared.settings import PathStreamSettings


class Item(BaseModel):
    n: int


def _broker(tmp_path: object, max_attempts: int = 3) -> KafkaBroker:
    settings = PathStreamSettings(
        data_dir=str(tmp_path), handler_max_attempts=max_attempts, handler_retry_wait_s=0.0
    )
    return KafkaBroker(middlewares=[DeliveryPolicy(settings)])


def test_failures_are_classified() -> None:
    try:
        Item.model_validate({"n": "x"})
    except ValidationError as exc:
        assert classify(exc) is FailureKind.PERMANENT
    assert classify(PathStreamError(ErrorCode.SLIDE_CORRUPT, "bad")) is FailureKind.PERMANENT
    down = PathStreamError(ErrorCode.DATABASE_UNAVAILABLE, "down", retriable=True)
    assert is_outage(down) and classify(down) is FailureKind.OUTAGE
    assert (
        classify(PathStreamError(ErrorCode.STORE_UNREACHABLE, "unmounted", retriable=True))
        is FailureKind.OUTAGE
    )
    assert classify(OperationalError("SELECT 1", {}, Exception("connection refused"))) is FailureKind.OUTAGE
    assert not is_permanent(ConnectionError("reset"))
    assert classify(KeyError("bug")) is FailureKind.UNEXPECTED
    # A retriable problem of the input (a slide still copying) is not an outage of a dependency.
    assert (
        classify(PathStreamError(ErrorCode.SLIDE_NOT_FOUND, "copying", retriable=True))
        is FailureKind.UNEXPECTED
    )


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n, 1.0, 5.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_validation_errors_are_described_without_input_values() -> None:
    try:
        Item.model_validate({"n": "patient Jane Doe"})
    except ValidationError as exc:
        text = describe_error(exc)
    assert text.startswith("ValidationError: 1 problem(s): n:")
    assert "Jane" not in text


async def test_an_outage_is_waited_out_and_never_dead_lettered(tmp_path: object) -> None:
    broker = _broker(tmp_path, max_attempts=1)
    calls: list[int] = []

    @broker.subscriber("in", group_id="g")
    async def handle(item: Item) -> None:
        calls.append(item.n)
        if len(calls) < 4:
            raise PathStreamError(ErrorCode.DATABASE_UNAVAILABLE, "PostgreSQL is down", retriable=True)

    dlq_handler = broker.subscriber("in.dlq", group_id="g")(lambda body: None)

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish({"n": 1}, "in")
        dlq_handler.mock.assert_not_called()
    assert calls == [1, 1, 1, 1], "tried until the database was back, although max_attempts is 1"


async def test_unexpected_failures_are_retried_then_succeed(tmp_path: object) -> None:
    broker = _broker(tmp_path)
    calls: list[int] = []

    @broker.subscriber("in", group_id="g")
    async def handle(item: Item) -> None:
        calls.append(item.n)
        if len(calls) < 3:
            raise ConnectionError("flaky")

    dlq_handler = broker.subscriber("in.dlq", group_id="g")(lambda body: None)

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish({"n": 1}, "in")
        dlq_handler.mock.assert_not_called()
    assert calls == [1, 1, 1]


async def test_persistent_unexpected_failure_is_dead_lettered_after_max_attempts(tmp_path: object) -> None:
    broker = _broker(tmp_path, max_attempts=2)
    calls: list[int] = []

    @broker.subscriber("in", group_id="g")
    async def handle(item: Item) -> None:
        calls.append(item.n)
        raise ConnectionError("always")

    dlq_handler = broker.subscriber("in.dlq", group_id="g")(lambda body: None)

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish({"n": 7}, "in")
        assert calls == [7, 7]
        dlq_handler.mock.assert_called_once()


async def test_bad_input_is_not_retried(tmp_path: object) -> None:
    broker = _broker(tmp_path)
    calls: list[int] = []

    @broker.subscriber("in", group_id="g")
    async def handle(item: Item) -> None:
        calls.append(item.n)

    dlq_handler = broker.subscriber("in.dlq", group_id="g")(lambda body: None)

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish({"n": "not a number"}, "in")
        dlq_handler.mock.assert_called_once()
    assert calls == []


def _message(value: bytes, headers: dict[str, str] | None = None) -> SimpleNamespace:
    record = SimpleNamespace(topic="ln.detected", partition=3, offset=41, key=b"S-001-ln001", value=value)
    return SimpleNamespace(raw_message=record, headers=headers or {"content-type": "application/json"})


def _read_back(value: bytes, headers: dict[str, str]) -> DeadLetter:
    return DeadLetter.from_record(b"S-001-ln001", value, headers)


def test_a_small_message_is_kept_byte_for_byte() -> None:
    original = b'{"not": "an event"}'
    value, headers = dead_letter_record(_message(original), ValueError("bad"), 1, limit=1_048_576)  # type: ignore[arg-type]
    dead = _read_back(value, headers)
    assert value == original and not dead.truncated
    assert (dead.original_topic, dead.original_partition, dead.original_offset) == ("ln.detected", 3, 41)
    assert dead.original_sha256 == hashlib.sha256(original).hexdigest()
    assert dead.headers == {"content-type": "application/json"}


def test_an_oversized_message_is_dead_lettered_as_a_bounded_excerpt() -> None:
    original = b"x" * 2_000_000
    limit = 1_048_576
    value, headers = dead_letter_record(_message(original), ValueError("too big"), 0, limit=limit)  # type: ignore[arg-type]
    dead = _read_back(value, headers)
    assert dead.truncated
    assert len(value) == excerpt_bytes(limit) < limit
    assert original.startswith(value)
    assert dead.original_bytes == 2_000_000
    assert dead.original_sha256 == hashlib.sha256(original).hexdigest()
    assert sum(len(k) + len(v) for k, v in headers.items()) < 8_192


def test_hostile_headers_are_dropped_not_copied() -> None:
    message = _message(b"{}", headers={"content-type": "application/json", "junk": "h" * 600_000})
    _, headers = dead_letter_record(message, ValueError("bad"), 1, limit=1_048_576)  # type: ignore[arg-type]
    assert "junk" not in headers
    assert int(headers[f"{HEADER_PREFIX}original_headers_dropped"]) > 600_000
