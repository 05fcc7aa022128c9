"""Applying the same event twice changes nothing; order of arrival does not matter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.store.apply import apply_event
from pathstream.services.reporter.store.report_inputs import StudyInputs, load_study_inputs
from pathstream.shared.db.models import LymphNode, MarrowResult, ProcessedEvent, Slide, SlideStatus
from pathstream.shared.events import LnLabel
from tests.samples import (
    T0,
    ln_scored,
    marrow_classified,
    slide_detected,
    slide_failed,
    slide_scanned,
)

pytestmark = pytest.mark.integration

CONSUMER = "reporter"


def _inputs(sessions: sessionmaker[Session], study_id: str = "ST-001") -> StudyInputs:
    with sessions() as session:
        return load_study_inputs(session, study_id)


def _count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_same_ln_scored_twice_gives_one_row_and_same_inputs(
    sessions: sessionmaker[Session],
) -> None:
    apply_event(sessions, CONSUMER, slide_detected(ln_count=2))
    event = ln_scored(index=0, score=0.83)

    assert apply_event(sessions, CONSUMER, event) is True
    rows_after_first = _count(sessions, LymphNode)
    inputs_after_first = _inputs(sessions)

    assert apply_event(sessions, CONSUMER, event) is False, "second delivery must be recognised"
    assert _count(sessions, LymphNode) == rows_after_first == 1
    assert _inputs(sessions) == inputs_after_first
    assert inputs_after_first.ln_positive == 1 and inputs_after_first.ln_negative == 0
    assert _count(sessions, ProcessedEvent) == 2


def test_duplicate_with_new_event_id_still_counts_once(sessions: sessionmaker[Session]) -> None:
    first = ln_scored(index=0, score=0.83)
    # A producer that retried after a lost acknowledgement sends the same result as a new event.
    resent = first.model_copy(update={"event_id": ln_scored().event_id})
    assert resent.event_id != first.event_id

    apply_event(sessions, CONSUMER, first)
    before = _inputs(sessions)
    assert apply_event(sessions, CONSUMER, resent) is True
    assert _count(sessions, LymphNode) == 1
    assert _inputs(sessions) == before


def test_score_before_detection_and_older_score_after_newer(
    sessions: sessionmaker[Session],
) -> None:
    newer = ln_scored(index=0, score=0.05, at=T0 + timedelta(hours=2))
    older = ln_scored(index=0, score=0.9, at=T0 + timedelta(hours=1))

    # The score overtakes its SlideDetected: the slide row is created, counted once.
    apply_event(sessions, CONSUMER, newer)
    apply_event(sessions, CONSUMER, slide_detected(ln_count=1))
    apply_event(sessions, CONSUMER, older)

    inputs = _inputs(sessions)
    (slide,) = inputs.slides
    assert slide.ln_count == 1 and slide.ln_scored == 1
    assert (slide.ln_positive, slide.ln_negative) == (0, 1), "the newer (negative) score stands"
    (finding,) = inputs.lymph_nodes
    assert finding.label == LnLabel.NEGATIVE and finding.score == pytest.approx(0.05)


def test_slide_status_follows_event_time_not_arrival(sessions: sessionmaker[Session]) -> None:
    failed_later = slide_failed(slide_id="S-001").model_copy(update={"occurred_at": T0 + timedelta(hours=1)})
    apply_event(sessions, CONSUMER, failed_later)
    apply_event(sessions, CONSUMER, slide_scanned())  # at T0, older: must not reset the failure
    apply_event(sessions, CONSUMER, slide_detected())  # at T0 + 1 min, older as well

    with sessions() as session:
        slide = session.get(Slide, "S-001")
        assert slide is not None
        assert slide.status == SlideStatus.FAILED
        assert slide.failure_code == "MPP_MISSING"
        assert slide.ln_count == 2, "data columns are still recorded"
        assert slide.sha256 == "a" * 64


def test_marrow_result_upserts_on_slide_id(sessions: sessionmaker[Session]) -> None:
    event = marrow_classified()
    apply_event(sessions, CONSUMER, event)
    apply_event(sessions, CONSUMER, event.model_copy(update={"event_id": ln_scored().event_id}))
    assert _count(sessions, MarrowResult) == 1
    with sessions() as session:
        assert session.get(Slide, "M-001").status == SlideStatus.COMPLETE  # type: ignore[union-attr]
