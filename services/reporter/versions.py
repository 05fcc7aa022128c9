"""Report versions in the database, and the outbox they are published from.

`record_report_version` runs inside the transaction that applied an event (or an amendment): it
recomputes the study's report and writes a new immutable version only when the content changed, so
a duplicate or a no-op event makes no version. `ReportReady` is not sent inside the transaction;
each version waits in `study_reports` with `published_at` NULL until the broker accepted it
(`unpublished_reports` / `mark_published`). A crash between commit and publish therefore loses no
report: the next start (or the next event) publishes it. Its event id is derived from study and
version, so a version published twice is recognisably the same event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pathstream.services.reporter.fhir import diagnostic_report
from pathstream.services.reporter.store.report_inputs import load_study_inputs
from pathstream.services.reporter.summary import StudySummary, summarise
from pathstream.shared.db.models import SlideReport, SlideStatus, Study, StudyReport
from pathstream.shared.events import ReportReady
from pathstream.shared.events.base import utc_now

_EVENT_NAMESPACE = uuid.UUID("6a1c52e4-2f0b-4d8e-9b7a-3e5d1c8f0a24")


def _latest(session: Session, study_id: str) -> StudyReport | None:
    return session.scalars(
        select(StudyReport)
        .where(StudyReport.study_id == study_id)
        .order_by(StudyReport.version.desc())
        .limit(1)
    ).first()


def _record_slide_versions(session: Session, summary: StudySummary, at: datetime) -> None:
    """A new `slide_reports` version for every slide whose line in the report changed."""
    for slide in summary.slides:
        content = {
            "specimen": slide.specimen,
            "status": slide.status,
            "ln_count": slide.ln_count,
            "ln_scored": slide.ln_scored,
            "positive": slide.positive,
            "negative": slide.negative,
        }
        latest = session.scalars(
            select(SlideReport)
            .where(SlideReport.slide_id == slide.slide_id)
            .order_by(SlideReport.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.content == content:
            continue
        session.add(
            SlideReport(
                slide_id=slide.slide_id,
                version=1 if latest is None else latest.version + 1,
                status=SlideStatus(slide.status),
                ln_count=slide.ln_count,
                ln_positive=slide.positive,
                ln_negative=slide.negative,
                content=content,
                created_at=at,
            )
        )


def record_report_version(session: Session, study_id: str, trigger: str) -> StudyReport | None:
    """Write the study's next report version if its content changed; return it (None if unchanged).

    `trigger` says what caused it (an event type, or "review:<action>"). Takes a row lock on the
    study, so that two reporters never give two versions the same number (PostgreSQL; SQLite has a
    single writer anyway).
    """
    session.execute(select(Study.study_id).where(Study.study_id == study_id).with_for_update())
    summary = summarise(load_study_inputs(session, study_id))
    content = summary.to_json()
    latest = _latest(session, study_id)
    if latest is not None and latest.content == content:
        return None
    version = 1 if latest is None else latest.version + 1
    now = utc_now()
    _record_slide_versions(session, summary, now)
    row = StudyReport(
        study_id=study_id,
        version=version,
        slide_count=summary.slide_count,
        slides_complete=summary.slides_complete,
        slides_failed=summary.slides_failed,
        ln_positive=summary.positive,
        ln_negative=summary.negative,
        ln_examined=summary.examined,
        pn_category=summary.pn_category,
        below_ajcc_minimum=summary.below_ajcc_minimum,
        trigger=trigger[:64],
        fhir=diagnostic_report(summary, version, now),
        content=content,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def report_ready(row: StudyReport) -> ReportReady:
    """The `ReportReady` event of a stored report version (same version -> same event id)."""
    return ReportReady(
        event_id=uuid.uuid5(_EVENT_NAMESPACE, f"{row.study_id}/{row.version}"),
        # SQLite hands datetimes back without a zone; they were written in UTC.
        occurred_at=row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC),
        study_id=row.study_id,
        report_version=row.version,
        slide_count=row.slide_count,
        slides_complete=row.slides_complete,
        slides_failed=row.slides_failed,
        ln_positive=row.ln_positive,
        ln_negative=row.ln_negative,
        ln_examined=row.ln_examined,
        pn_category=row.pn_category,
        below_ajcc_minimum=row.below_ajcc_minimum,
        fhir_report=row.fhir,
    )


def unpublished_reports(session: Session, study_id: str | None = None) -> list[ReportReady]:
    """`ReportReady` of every version not yet published (one study's, or all), oldest first."""
    query = select(StudyReport).where(StudyReport.published_at.is_(None))
    if study_id is not None:
        query = query.where(StudyReport.study_id == study_id)
    rows = session.scalars(query.order_by(StudyReport.study_id, StudyReport.version)).all()
    return [report_ready(row) for row in rows]


def mark_published(session: Session, study_id: str, version: int) -> None:
    """Record that the broker accepted `ReportReady` for this version."""
    session.execute(
        update(StudyReport)
        .where(StudyReport.study_id == study_id, StudyReport.version == version)
        .values(published_at=utc_now())
    )
