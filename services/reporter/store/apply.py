"""Apply an event to the database exactly once per consumer, in one transaction.

`processed_events` holds (consumer, event_id) for every event a consumer has applied. The claim and
the writes commit together, so a crash between them leaves neither, and a redelivered event finds
its claim and changes nothing. Writes are natural-key upserts as well, so even a duplicate with a
new event_id (a producer that retried) does not double-count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.store.upserts import (
    apply_ln_scored,
    apply_marrow_classified,
    apply_slide_detected,
    apply_slide_failed,
    apply_slide_scanned,
    dialect_insert,
)
from pathstream.shared.db.models import ProcessedEvent
from pathstream.shared.events import (
    Event,
    LymphNodeScored,
    MarrowClassified,
    SlideDetected,
    SlideFailed,
    SlideScanned,
)

APPLIERS: dict[type[Event], Callable[[Session, Any], None]] = {
    SlideScanned: apply_slide_scanned,
    SlideDetected: apply_slide_detected,
    SlideFailed: apply_slide_failed,
    LymphNodeScored: apply_ln_scored,
    MarrowClassified: apply_marrow_classified,
}
"""How each event type that lands in the database is written."""


def claim_event(session: Session, consumer: str, event: Event) -> bool:
    """Record that `consumer` applies `event`; False when it already has (then apply nothing)."""
    statement = (
        dialect_insert(session, ProcessedEvent)
        .values(consumer=consumer, event_id=event.event_id, topic=event.TOPIC.value)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(ProcessedEvent.event_id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def apply_event(sessions: sessionmaker[Session], consumer: str, event: Event) -> bool:
    """Apply `event` for `consumer` in one transaction; return False if it was applied before.

    Raises KeyError for an event type that has no database effect.
    """
    applier = APPLIERS[type(event)]
    with sessions.begin() as session:
        if not claim_event(session, consumer, event):
            return False
        applier(session, event)
    return True
