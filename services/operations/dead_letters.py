"""Operators' view of the dead-letter topics: list what was dead-lettered and why, replay it once fixed.

A DLQ record is named by its coordinates `DLQ_TOPIC:PARTITION:OFFSET` (what `pathstream dlq list`
prints). Replaying sends the original key, value and headers back to the topic it came from, with a
`pathstream.replay_of` header naming the DLQ record; the consumers then handle it like any message
(they are idempotent on event ids). Each replay is recorded in `dead_letter_replays`, so replaying
the same record again sends nothing. A record that only holds an excerpt (the original was too
large for the DLQ) is replayed from its original topic, partition and offset, checked against the
SHA-256 the DLQ kept; when the topic no longer retains it, replay says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.shared.bus.admin import pipeline_topics, topic_partitions
from pathstream.shared.bus.broker import client_kwargs
from pathstream.shared.bus.dead_letter import DeadLetter
from pathstream.shared.db.models import DeadLetterReplay
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import is_dead_letter_topic

REPLAY_OF_HEADER = "pathstream.replay_of"


@dataclass(frozen=True)
class DlqEntry:
    """One DLQ record: where it is and what it says."""

    topic: str
    partition: int
    offset: int
    record: DeadLetter

    @property
    def coordinates(self) -> str:
        """`TOPIC:PARTITION:OFFSET`, the name operators use for it."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def origin(self) -> str:
        """`TOPIC:PARTITION:OFFSET` of the original message."""
        return f"{self.record.original_topic}:{self.record.original_partition}:{self.record.original_offset}"


def parse_coordinates(text: str) -> tuple[str, int, int]:
    """`TOPIC:PARTITION:OFFSET` -> (topic, partition, offset); a clear error for anything else."""
    topic, _, rest = text.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    if not topic or not partition.isdigit() or not rest.isdigit() or not is_dead_letter_topic(topic):
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"{text!r} does not name a DLQ record.",
            hint="Give DLQ_TOPIC:PARTITION:OFFSET as `pathstream dlq list` prints it "
            "(e.g. ln.detected.dlq:0:12).",
        )
    return topic, int(partition), int(rest)


def dead_letter_topics(settings: PathStreamSettings, only: str | None = None) -> list[str]:
    """The pipeline's DLQ topics (prefix applied); `only` picks one by its base or full name."""
    topics = [t for t in pipeline_topics(settings) if is_dead_letter_topic(t)]
    if only is None:
        return topics
    wanted = [t for t in topics if only in (t, t.removeprefix(settings.topic_prefix), t.removesuffix(".dlq"))]
    if not wanted:
        wanted = [t for t in topics if t.removesuffix(".dlq").endswith(only)]
    if not wanted:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"{only!r} is not a PathStream topic or DLQ.",
            hint=f"Use one of: {', '.join(topics)}.",
        )
    return wanted


def _headers(record: Any) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in (record.headers or ())}


async def _reader(settings: PathStreamSettings) -> AIOKafkaConsumer:
    # No group: reading the DLQ must not move anybody's offsets.
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    return consumer


async def read_dead_letters(settings: PathStreamSettings, topics: Sequence[str]) -> list[DlqEntry]:
    """Every record now in `topics` (DLQ topics), oldest first per partition."""
    partitions = await topic_partitions(settings, topics)
    if not partitions:
        return []
    consumer = await _reader(settings)
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        entries: list[DlqEntry] = []
        pending = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=2000)
            if not batch:
                break
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    entry = DeadLetter.from_record(r.key, r.value or b"", _headers(r))
                    entries.append(DlqEntry(r.topic, r.partition, r.offset, entry))
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return sorted(entries, key=lambda e: (e.topic, e.partition, e.offset))
    finally:
        await consumer.stop()


async def read_original(settings: PathStreamSettings, entry: DlqEntry) -> bytes:
    """The full original value of a truncated DLQ record, read back from its topic and checked.

    Raises `PathStreamError(STORE_MISSING)` when the topic no longer holds it (retention) or it
    does not match the SHA-256 the DLQ recorded.
    """
    dead = entry.record
    consumer = await _reader(settings)
    try:
        tp = TopicPartition(dead.original_topic, dead.original_partition)
        consumer.assign([tp])
        consumer.seek(tp, dead.original_offset)
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
    finally:
        await consumer.stop()
    records = batch.get(tp, [])
    found = records[0] if records and records[0].offset == dead.original_offset else None
    value = bytes(found.value or b"") if found is not None else None
    if value is None or hashlib.sha256(value).hexdigest() != dead.original_sha256:
        raise PathStreamError(
            ErrorCode.STORE_MISSING,
            f"{entry.coordinates} holds only an excerpt, and {dead.original_topic} partition "
            f"{dead.original_partition} no longer holds offset {dead.original_offset} as it was.",
            hint="The original is past the topic's retention; have its producer send it again.",
        )
    return value


def replayed(sessions: sessionmaker[Session], entries: Iterable[DlqEntry]) -> dict[str, DeadLetterReplay]:
    """Coordinates -> replay row for the entries that were already replayed."""
    wanted = {(e.topic, e.partition, e.offset): e.coordinates for e in entries}
    if not wanted:
        return {}
    with sessions() as session:
        rows = session.scalars(
            select(DeadLetterReplay).where(DeadLetterReplay.dlq_topic.in_({t for t, _, _ in wanted}))
        ).all()
    return {
        wanted[key]: row
        for row in rows
        if (key := (row.dlq_topic, row.dlq_partition, row.dlq_offset)) in wanted
    }


async def replay(
    broker: KafkaBroker,
    settings: PathStreamSettings,
    sessions: sessionmaker[Session],
    entry: DlqEntry,
    *,
    replayed_by: str,
    reason: str,
) -> bool:
    """Send `entry`'s original back to its topic once; False when it had been replayed before.

    The replay row is written in the same transaction that is committed only after the brokers
    confirmed the message, so a failed send leaves no row (and can be tried again).
    """
    dead = entry.record
    value = await read_original(settings, entry) if dead.truncated else dead.value
    with sessions.begin() as session:
        exists = session.get(DeadLetterReplay, (entry.topic, entry.partition, entry.offset))
        if exists is not None:
            return False
        session.add(
            DeadLetterReplay(
                dlq_topic=entry.topic,
                dlq_partition=entry.partition,
                dlq_offset=entry.offset,
                original_topic=dead.original_topic,
                original_offset=dead.original_offset,
                error=dead.error,
                replayed_by=replayed_by,
                reason=reason,
            )
        )
        session.flush()  # a concurrent replay of the same record fails here, before sending
        headers = {**dead.headers, REPLAY_OF_HEADER: entry.coordinates}
        await broker.publish(value, dead.original_topic, key=dead.key, headers=headers)
    return True
