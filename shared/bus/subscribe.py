"""Subscriber options every PathStream consumer uses: at-least-once delivery in a consumer group."""

from __future__ import annotations

from typing import Any

from faststream import AckPolicy

from pathstream.shared.settings import PathStreamSettings


def consumer_options(settings: PathStreamSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `broker.subscriber(topic, **consumer_options(...))`.

    Offsets are committed only after the handler returned (or the message was dead-lettered), so a
    worker that dies mid-message leaves it for the next member of the group; a new group starts at
    the earliest retained message, so a service started after a scan still sees it.
    """
    options: dict[str, Any] = {
        # Environments sharing a cluster (PATHSTREAM_TOPIC_PREFIX) must not share consumer groups,
        # or one environment's workers would take part in the other's rebalances.
        "group_id": settings.topic(group_id),
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_poll_interval_ms": settings.kafka_max_poll_interval_ms,
    }
    options.update(overrides)
    return options
