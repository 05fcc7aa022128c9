"""Create PathStream's topics (and their DLQs) with enough partitions for horizontal scaling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from pathstream.shared.bus.broker import client_kwargs
from pathstream.shared.bus.startup import retry_until_reachable
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic, dead_letter_topic


def pipeline_topics(settings: PathStreamSettings) -> list[str]:
    """Every concrete topic of the pipeline and its dead-letter topic, prefix applied."""
    names = [settings.topic(t) for t in Topic]
    return names + [dead_letter_topic(n) for n in names]


async def topic_partitions(settings: PathStreamSettings, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of those `topics` that exist, asked of the brokers (a new consumer's metadata
    knows no topic yet, so `partitions_for_topic` would say none)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return sorted(
        (TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]),
        key=lambda tp: (tp.topic, tp.partition),
    )


async def ensure_topics(
    settings: PathStreamSettings,
    topics: Iterable[str] | None = None,
    partitions: int | None = None,
) -> dict[str, int]:
    """Create the missing `topics` (default: the whole pipeline) and return topic -> partitions.

    Existing topics are left as they are (their partition count is reported, never changed).
    """
    wanted = list(topics) if topics is not None else pipeline_topics(settings)
    count = partitions or settings.kafka_topic_partitions
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await retry_until_reachable(admin.start, admin.close, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            # Another worker may create one between our list and create: that is success too.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, count, settings.kafka_replication_factor) for t in missing]
                )
        return await _settled_partitions(admin, wanted)
    finally:
        await admin.close()


class _NotSettled(Exception):
    pass


async def _settled_partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """topic -> partitions once every topic has its partitions and leaders in the metadata.

    Just after `create_topics` a broker may still describe a new topic with no partitions (its
    metadata has not caught up); reading that as "0 partitions" was seen on a loaded machine."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(_NotSettled),
        wait=wait_fixed(0.2),
        stop=stop_after_delay(30),
        reraise=True,
    ):
        with attempt:
            described = await admin.describe_topics(topics)
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            unsettled = [
                d["topic"] for d in described if d.get("error_code", 0) != 0 or not d["partitions"]
            ] + [t for t in topics if t not in counts]
            if unsettled:
                raise _NotSettled(f"no partitions described yet for {', '.join(sorted(unsettled))}")
    return counts
