"""Applying the same event twice changes nothing; order of arrival does not matter."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.store.apply import apply_event
from pathstream.services.reporter.store.report_inputs import StudyInputs, load_study_inputs
from pathstream.shared.db.models import LymphNode, MarrowResult, ProcessedEvent, Slide, SlideStatus
from pathstream.shared.errors import ErrorCode
from pathstream.shared.events import FailureStage, LnLabel, SlideFailed
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


def _late_failure(stage: FailureStage, ln_id: str | None = None, slide_id: str = "S-001") -> SlideFailed:
    return SlideFailed(
        slide_id=slide_id,
        study_id="ST-001",
        stage=stage,
        error_code=ErrorCode.OUTSIDE_ALLOWED_ROOTS,
        message="Refusing tile store '/etc': outside the allowed roots.",
        retriable=False,
        ln_id=ln_id,
        occurred_at=T0 + timedelta(hours=1),
    )


def test_a_late_failure_of_finished_work_does_not_undo_the_result(sessions: sessionmaker[Session]) -> None:
    """Issue 18: an `ln.detected` copy with a bad store_uri fails *after* the LN was scored; a
    replayed detection failure arrives after the detection. Neither turns the slide failed."""
    for event in [slide_scanned(), slide_detected(ln_count=2), ln_scored(0, 0.9), ln_scored(1, 0.1)]:
        assert apply_event(sessions, CONSUMER, event)
    before = _inputs(sessions)
    assert [s.status for s in before.slides] == [SlideStatus.DETECTED]

    assert apply_event(sessions, CONSUMER, _late_failure(FailureStage.SCORE, ln_id="S-001-ln001"))
    assert apply_event(sessions, CONSUMER, _late_failure(FailureStage.DETECT))
    assert apply_event(sessions, CONSUMER, _late_failure(FailureStage.INGEST))
    assert _inputs(sessions) == before
    with sessions() as session:
        slide = session.get(Slide, "S-001")
        assert slide is not None and slide.failure_code is None


def test_a_failure_of_unfinished_work_still_counts(sessions: sessionmaker[Session]) -> None:
    for event in [slide_scanned(), slide_detected(ln_count=2), ln_scored(0, 0.9)]:
        apply_event(sessions, CONSUMER, event)
    assert apply_event(sessions, CONSUMER, _late_failure(FailureStage.SCORE, ln_id="S-001-ln001"))
    with sessions() as session:
        slide = session.get(Slide, "S-001")
        assert slide is not None
        assert (slide.status, slide.failed_ln_id) == (SlideStatus.FAILED, "S-001-ln001")

    # A slide that never got past ingest fails as before; a reprocess announcement clears it.
    apply_event(sessions, CONSUMER, slide_scanned("S-009"))
    assert apply_event(sessions, CONSUMER, _late_failure(FailureStage.INGEST, slide_id="S-009"))
    with sessions() as session:
        assert session.get(Slide, "S-009").status == SlideStatus.FAILED  # type: ignore[union-attr]
    again = slide_scanned("S-009").model_copy(
        update={"event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(hours=2)}
    )
    assert apply_event(sessions, CONSUMER, again)
    with sessions() as session:
        slide = session.get(Slide, "S-009")
        assert slide is not None and (slide.status, slide.failure_code) == (SlideStatus.PENDING, None)


def test_another_file_or_study_under_a_known_slide_id_changes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """Issue 19: two different scans both named `slide.tif` (or one slide sent under another study)
    must not turn the first, finished slide into a failure or move it."""
    for event in [slide_scanned(), slide_detected(ln_count=2), ln_scored(0, 0.9), ln_scored(1, 0.1)]:
        assert apply_event(sessions, CONSUMER, event)
    before = _inputs(sessions)
    later = {"event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(hours=1)}
    other_file = slide_scanned().model_copy(update={**later, "sha256": "b" * 64, "uri": "/data/b/slide.tif"})
    assert apply_event(sessions, CONSUMER, other_file)
    other_study = slide_scanned(study_id="ST-777").model_copy(update={**later, "event_id": uuid.uuid4()})
    assert apply_event(sessions, CONSUMER, other_study)
    conflict = _late_failure(FailureStage.INGEST).model_copy(
        update={"error_code": ErrorCode.STORE_CONFLICT, "message": "Store already holds a different slide."}
    )
    assert apply_event(sessions, CONSUMER, conflict)
    assert _inputs(sessions) == before
    with sessions() as session:
        slide = session.get(Slide, "S-001")
        assert slide is not None
        assert (slide.sha256, slide.study_id, slide.status) == ("a" * 64, "ST-001", SlideStatus.DETECTED)
        assert slide.failure_code is None
