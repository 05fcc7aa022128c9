"""The dead-letter middleware's decisions, on FastStream's in-memory TestKafkaBroker.

The same behaviour on the real broker is covered by tests/integration/test_dead_letter.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from pydantic import BaseModel, ValidationError

from pathstream.shared.bus.dead_letter import DeadLetterPolicy, describe_error, is_permanent
from pathstream.shared.errors import ErrorCode, PathStreamError


class Item(BaseModel):
    n: int


def _broker(max_attempts: int = 3) -> KafkaBroker:
    return KafkaBroker(middlewares=[DeadLetterPolicy(max_attempts=max_attempts, retry_wait_s=0)])


def test_permanent_and_transient_errors() -> None:
    try:
        Item.model_validate({"n": "x"})
    except ValidationError as exc:
        assert is_permanent(exc)
    assert is_permanent(PathStreamError(ErrorCode.SLIDE_CORRUPT, "bad"))
    assert not is_permanent(PathStreamError(ErrorCode.DATABASE_UNAVAILABLE, "down", retriable=True))
    assert not is_permanent(ConnectionError("reset"))


def test_validation_errors_are_described_without_input_values() -> None:
    try:
        Item.model_validate({"n": "patient Jane Doe"})
    except ValidationError as exc:
        text = describe_error(exc)
    assert text.startswith("ValidationError: 1 problem(s): n:")
    assert "Jane" not in text


async def test_transient_failures_are_retried_then_succeed() -> None:
    broker = _broker()
    calls: list[int] = []
    dead: list[bytes] = []

    @broker.subscriber("in", group_id="g")
    async def handle(item: Item) -> None:
        calls.append(item.n)
        if len(calls) < 3:
            raise ConnectionError("flaky")

    @broker.subscriber("in.dlq", group_id="g")
    async def on_dead(body: bytes) -> None:
        dead.append(body)

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish({"n": 1}, "in")
    assert calls == [1, 1, 1]
    assert dead == []


async def test_persistent_failure_is_dead_lettered_after_max_attempts() -> None:
    broker = _broker(max_attempts=2)
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


async def test_bad_input_is_not_retried() -> None:
    broker = _broker()
    calls: list[int] = []

    @broker.subscriber("in", group_id="g")
    async def handle(item: Item) -> None:
        calls.append(item.n)

    dlq_handler = broker.subscriber("in.dlq", group_id="g")(lambda body: None)

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish({"n": "not a number"}, "in")
        dlq_handler.mock.assert_called_once()
    assert calls == []


async def test_a_failed_dlq_write_is_raised_so_the_message_is_not_acknowledged() -> None:
    class BrokenBroker:
        async def publish(self, *args: object, **kwargs: object) -> None:
            raise ConnectionError("DLQ topic unreachable")

    class Context:
        def get(self, name: str) -> object:
            assert name == "broker"
            return BrokenBroker()

    record = SimpleNamespace(topic="ln.scored", partition=0, offset=41, key=b"S-001")
    msg = SimpleNamespace(raw_message=record, headers={}, body=b"{}")
    middleware = DeadLetterPolicy(max_attempts=1, retry_wait_s=0)(msg, context=Context())

    async def handler(_: object) -> None:
        Item.model_validate({"n": "x"})

    with pytest.raises(ConnectionError, match="DLQ topic unreachable"):
        await middleware.consume_scope(handler, msg)  # type: ignore[arg-type]
