"""Closing a study's slide set when no order says which slides it has.

With an order, the expected slides close the set (summary.py). Without one, the embedded run closes
the set of every study it processed when it ends (`close_slide_set(..., "run")`: the operator gave
all slides of the run), and the reporter service closes a study once `PATHSTREAM_STUDY_SETTLE_S`
seconds passed since its last slide arrived (`settle_due_studies`). A slide arriving after the set
closed reopens it until the next close, so its results are never left out of the report.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pathstream.services.reporter.versions import DEFAULT_LAB, record_report_version
from pathstream.shared.db.models import Slide, Study, StudyOrder, StudyReport
from pathstream.shared.events.base import utc_now

RUN = "run"
SETTLED = "settled"


def close_slide_set(
    session: Session, study_id: str, by: str, lab: tuple[str, str] = DEFAULT_LAB
) -> StudyReport | None:
    """Declare the study's slide set complete (`by` "run" or "settled") and record the report version
    that makes due; returns it (None if the study was not ready or nothing changed)."""
    study = session.get(Study, study_id, with_for_update=True)
    if study is None:
        return None
    if study.slides_closed_by is None:
        study.slides_closed_at, study.slides_closed_by = utc_now(), by
        session.flush()
    return record_report_version(session, study_id, trigger=by, lab=lab)


def reopen_slide_set(session: Session, study_id: str) -> None:
    """A new slide arrived: the set closes again at the next run end / settle time."""
    study = session.get(Study, study_id)
    if study is not None and study.slides_closed_by is not None:
        study.slides_closed_at, study.slides_closed_by = None, None


def settle_due_studies(
    session: Session, settle_s: float, now: datetime | None = None, lab: tuple[str, str] = DEFAULT_LAB
) -> list[StudyReport]:
    """Close the slide set of every open study without an order whose last slide arrived more than
    `settle_s` seconds ago; return the report versions written."""
    cutoff = (now or utc_now()) - timedelta(seconds=settle_s)
    # Runs every outbox sweep: only open, order-less studies' slides are aggregated, not the archive.
    due = session.scalars(
        select(Study.study_id)
        .join(Slide, Slide.study_id == Study.study_id)
        .outerjoin(StudyOrder, StudyOrder.study_id == Study.study_id)
        .where(Study.slides_closed_by.is_(None), StudyOrder.study_id.is_(None))
        .group_by(Study.study_id)
        .having(func.max(Slide.created_at) <= cutoff)
        .order_by(Study.study_id)
    ).all()
    written = []
    for study_id in due:
        row = close_slide_set(session, study_id, SETTLED, lab)
        if row is not None:
            written.append(row)
    return written
