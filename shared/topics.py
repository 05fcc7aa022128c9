"""Kafka topic names: the one place they are written down.

Services never spell a topic as a string literal; they use these base names and let
`PathStreamSettings.topic()` add the deployment's prefix.
"""

from __future__ import annotations

from enum import StrEnum

DLQ_SUFFIX = ".dlq"


class Topic(StrEnum):
    """Base names of PathStream's topics (shared/README.md, Events)."""

    SLIDES_SCANNED = "slides.scanned"
    SLIDES_DETECTED = "slides.detected"
    LN_DETECTED = "ln.detected"
    LN_SCORED = "ln.scored"
    MARROW_CLASSIFIED = "marrow.classified"
    REPORTS_READY = "reports.ready"
    SLIDES_FAILED = "slides.failed"


def dead_letter_topic(topic: str) -> str:
    """Return the dead-letter topic for a concrete topic name: `<topic>.dlq`."""
    return f"{topic}{DLQ_SUFFIX}"


def is_dead_letter_topic(topic: str) -> bool:
    """True when `topic` is itself a dead-letter topic (its failures must not be dead-lettered again)."""
    return topic.endswith(DLQ_SUFFIX)
