"""Report versions on a real database: one per change, none for duplicates, an outbox that loses nothing."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.store.apply import apply_event
from pathstream.services.reporter.versions import mark_published, record_report_version, unpublished_reports
from pathstream.shared.db.models import SlideReport, StudyReport
from pathstream.shared.events import Event, PnCategory
from tests.samples import ln_scored, slide_detected, slide_failed

pytestmark = pytest.mark.integration


def _apply(sessions: sessionmaker[Session], event: Event) -> int | None:
    """Apply the event, then record a version if it changed the report."""
    applied = apply_event(sessions, "reporter", event)
    with sessions.begin() as session:
        row = record_report_version(session, "ST-001", type(event).__name__) if applied else None
        return None if row is None else row.version


def test_each_change_is_one_version_and_duplicates_are_none(sessions: sessionmaker[Session]) -> None:
    first_score = ln_scored(index=0, score=0.9)
    assert _apply(sessions, first_score) == 1  # a score before its SlideDetected still counts
    assert _apply(sessions, first_score) is None  # redelivered
    assert _apply(sessions, slide_detected(ln_count=2)) == 2
    assert _apply(sessions, ln_scored(index=1, score=0.1)) == 3
    with sessions() as session:
        latest = session.scalars(select(StudyReport).order_by(StudyReport.version.desc())).first()
        assert latest is not None
        assert (latest.ln_positive, latest.ln_negative, latest.ln_examined) == (1, 1, 2)
        assert latest.pn_category == PnCategory.N1 and latest.below_ajcc_minimum
        assert DiagnosticReport.model_validate(latest.fhir).status == "preliminary"
        assert session.scalar(select(func.count()).select_from(SlideReport)) == 3


def test_a_failed_slide_is_reported_as_failed(sessions: sessionmaker[Session]) -> None:
    _apply(sessions, slide_detected(ln_count=1))
    _apply(sessions, ln_scored(index=0, score=0.1))
    _apply(sessions, slide_failed(slide_id="S-002"))
    with sessions() as session:
        latest = session.scalars(select(StudyReport).order_by(StudyReport.version.desc())).first()
        assert latest is not None and latest.slides_failed == 1 and latest.slide_count == 2
        assert latest.fhir["status"] == "partial" and "failed slides: S-002" in latest.fhir["conclusion"]


def test_outbox_holds_every_version_until_marked_published(sessions: sessionmaker[Session]) -> None:
    _apply(sessions, slide_detected(ln_count=1))
    _apply(sessions, ln_scored(index=0, score=0.9))
    with sessions() as session:
        pending = unpublished_reports(session, "ST-001")
    assert [e.report_version for e in pending] == [1, 2]
    assert (
        pending[1].pn_category == PnCategory.N1
        and pending[1].fhir_report["resourceType"] == "DiagnosticReport"
    )
    with sessions() as session:
        again = unpublished_reports(session)
    assert [e.event_id for e in again] == [e.event_id for e in pending]  # same version, same event
    with sessions.begin() as session:
        mark_published(session, "ST-001", 1)
    with sessions() as session:
        assert [e.report_version for e in unpublished_reports(session)] == [2]
