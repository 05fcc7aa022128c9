"""Report versions in the database, and the outbox they are published from.

`record_report_version` runs inside the transaction that applied an event, an order, an amendment
or a sign-out. A version is written only when what a reader acts on changed (`reader_content`) or
the report's status moves on, so a duplicate, a no-op event or an amendment that changes no call
makes no version. The lifecycle, never going backwards:

- nothing is issued until the study is ready (its slide set closed and every slide complete or
  failed; summary.py) -- progress stays in the database and the API, not on `reports.ready`;
- then "preliminary" ("partial" while a slide of the set failed);
- "amended" once a pathologist changed something before sign-out;
- "final" on sign-out by a pathologist;
- after final, "corrected" when a change alters the counts or the pN category, else "amended",
  each with the pathologist's reason; results the pipeline delivers after sign-out are held until a
  pathologist amends the report (the signed report never changes silently).

Every version of a study is the same FHIR resource (one id) with `meta.versionId` = version.
`ReportReady` is not sent inside the transaction; each version waits in `study_reports` with
`published_at` NULL until the broker accepted it (`unpublished_reports` / `mark_published`), and
with `hl7_sent_at` NULL until the LIS acknowledged its ORU^R01 (hl7_outbox.py). Its event id is
derived from study and version, so a version published twice is recognisably the same event.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pathstream.services.reporter.fhir import ReportContext, diagnostic_report
from pathstream.services.reporter.store.report_inputs import load_study_inputs
from pathstream.services.reporter.summary import StudySummary, summarise
from pathstream.shared.db.models import SlideReport, SlideStatus, Study, StudyReport, User
from pathstream.shared.db.timestamps import stored_utc
from pathstream.shared.events import ReportReady, ReportStatus
from pathstream.shared.events.base import utc_now
from pathstream.shared.logs import get_logger
from pathstream.shared.settings import PathStreamSettings

log = get_logger(__name__)

_EVENT_NAMESPACE = uuid.UUID("6a1c52e4-2f0b-4d8e-9b7a-3e5d1c8f0a24")

SIGN_OUT = "sign_out"
"""The trigger of the version a pathologist's sign-out makes."""
REVIEW_PREFIX = "review:"

DEFAULT_LAB = ("PATHSTREAM", "Pathology laboratory")
"""(id, name) of the performing laboratory when none is configured (PATHSTREAM_LAB_ID / _NAME)."""

_RANK: dict[str, int] = {"partial": 1, "preliminary": 2, "amended": 3, "final": 4, "corrected": 5}


def latest_report(session: Session, study_id: str) -> StudyReport | None:
    """The study's newest report version (row), or None before its first."""
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
            "itc": slide.itc,
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


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def version_status(row: StudyReport) -> str:
    """A stored version's FHIR status (versions written before migration 0007 have no status
    column; their FHIR document has it)."""
    return row.status or str(row.fhir.get("status", "partial"))


def _after_final_status(latest: StudyReport, summary: StudySummary) -> ReportStatus:
    before = (latest.content or {}).get("reader", {})
    now = _jsonable(summary.reader_content())
    staging_changed = before.get("counts") != now["counts"] or before.get("pn_category") != now["pn_category"]
    return "corrected" if staging_changed else "amended"


def _signed(latest: StudyReport | None) -> bool:
    return latest is not None and bool((latest.content or {}).get("signed_out"))


def next_status(latest: StudyReport | None, summary: StudySummary, trigger: str) -> ReportStatus | None:
    """The status the next version would have, or None when no version may be written now."""
    if trigger == SIGN_OUT:
        return "final"
    if _signed(latest):
        if not trigger.startswith(REVIEW_PREFIX):
            return None  # held: a signed report changes only through a pathologist
        assert latest is not None
        return _after_final_status(latest, summary)
    if not summary.ready:
        return None
    status: ReportStatus = "partial" if summary.slides_failed else "preliminary"
    if trigger.startswith(REVIEW_PREFIX):
        status = "amended"
    if latest is not None and _RANK[version_status(latest)] > _RANK[status]:
        status = version_status(latest)  # type: ignore[assignment]
    return status


def lab_of(settings: PathStreamSettings) -> tuple[str, str]:
    """The performing laboratory (id, name) reports name, from PATHSTREAM_LAB_ID / PATHSTREAM_LAB_NAME."""
    return settings.lab_id, settings.lab_name


def display_name(session: Session, user_id: str | None) -> str | None:
    """The display name of user `user_id` (the id itself for an unknown user; None for None)."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user_id if user is None else user.display_name


def record_report_version(
    session: Session,
    study_id: str,
    trigger: str,
    *,
    reason: str | None = None,
    actor: str | None = None,
    lab: tuple[str, str] = DEFAULT_LAB,
) -> StudyReport | None:
    """Write the study's next report version if it is due; return it (None when nothing changed, the
    study is not ready yet, or a signed report would change without a pathologist).

    `trigger` says what caused it (an event type, "order", "settled", "run", "review:<action>",
    "sign_out"); `reason` and `actor` (user id) come with amendments and sign-out; `lab` is the
    performing laboratory (id, name). Takes a row lock on the study, so two writers never give two
    versions the same number (PostgreSQL; SQLite has a single writer anyway).
    """
    session.execute(select(Study.study_id).where(Study.study_id == study_id).with_for_update())
    summary = summarise(load_study_inputs(session, study_id))
    latest = latest_report(session, study_id)
    status = next_status(latest, summary, trigger)
    if status is None:
        if _signed(latest) and not trigger.startswith(REVIEW_PREFIX):
            log.info("signed_report_change_held", study_id=study_id, trigger=trigger)
        return None
    reader = _jsonable(summary.reader_content())
    if (
        latest is not None
        and version_status(latest) == status
        and (latest.content or {}).get("reader") == reader
    ):
        return None
    version = 1 if latest is None else latest.version + 1
    now = utc_now()
    _record_slide_versions(session, summary, now)
    amendments = [] if latest is None else list((latest.content or {}).get("amendments", []))
    if status in ("amended", "corrected") and reason:
        amendments.append({"at": now.isoformat(), "by": display_name(session, actor), "reason": reason})
    context = ReportContext(
        version=version,
        status=status,
        issued=now,
        lab_id=lab[0],
        lab_name=lab[1],
        signer_id=summary.signed_out_by,
        signer_name=display_name(session, summary.signed_out_by),
        amendments=tuple((a["at"], a["by"], a["reason"]) for a in amendments),
    )
    content = {
        **summary.to_json(),
        "reader": reader,
        "amendments": amendments,
        "signed_out": summary.signed_out_by is not None,
    }
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
        status=status,
        reason=reason,
        fhir=diagnostic_report(summary, context),
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
        occurred_at=stored_utc(row.created_at),
        study_id=row.study_id,
        report_version=row.version,
        slide_count=row.slide_count,
        slides_complete=row.slides_complete,
        slides_failed=row.slides_failed,
        ln_positive=row.ln_positive,
        ln_negative=row.ln_negative,
        ln_examined=row.ln_examined,
        ln_itc=row.ln_examined - row.ln_positive - row.ln_negative,
        report_status=row.status,
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
