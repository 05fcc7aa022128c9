"""Subscriber options every PathStream consumer uses: at-least-once delivery in a consumer group."""

from __future__ import annotations

from typing import Any

from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from faststream import AckPolicy

from pathstream.shared.bus.delivery import InFlightListener
from pathstream.shared.settings import PathStreamSettings


def consumer_options(settings: PathStreamSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `broker.subscriber(topic, **consumer_options(...))`.

    Offsets are committed only after the handler returned (or the message was dead-lettered), so a
    worker that dies mid-message leaves it for the next member of the group; a new group starts at
    the earliest retained message, so a service started after a scan still sees it. The sticky
    assignor and the in-flight listener keep work in progress through rebalances
    (`pathstream.shared.bus.delivery`).
    """
    group = settings.topic(group_id)
    options: dict[str, Any] = {
        # Environments sharing a cluster (PATHSTREAM_TOPIC_PREFIX) must not share consumer groups,
        # or one environment's workers would take part in the other's rebalances.
        "group_id": group,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_poll_interval_ms": settings.kafka_max_poll_interval_ms,
        "partition_assignment_strategy": (StickyPartitionAssignor,),
        "listener": InFlightListener(group, settings.kafka_rebalance_wait_s),
        # How long the group waits for a member to rejoin: the in-flight wait plus one session, so
        # a member finishing its LN in the rebalance listener is not taken out of the group.
        "rebalance_timeout_ms": (
            int(settings.kafka_rebalance_wait_s * 1000) + settings.kafka_session_timeout_ms
        ),
        # Reads at least the largest message a consumer accepts, so an oversized one is dead-lettered
        # rather than fetched piecemeal.
        "max_partition_fetch_bytes": max(1_048_576, settings.kafka_max_event_bytes + 65_536),
    }
    options.update(overrides)
    return options
