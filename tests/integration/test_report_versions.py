"""The report lifecycle on a real database (SQLite and PostgreSQL): nothing before the slide set is
complete, then preliminary, amended, final on sign-out and corrected / amended after it -- one
resource id, versions only for real changes, an outbox that loses nothing, and AJCC staging that
keeps isolated tumour cells out of the positive count."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.orders.intake import store_order
from pathstream.services.reporter.orders.model import LabOrder
from pathstream.services.reporter.slide_sets import RUN, close_slide_set, settle_due_studies
from pathstream.services.reporter.store.apply import apply_event
from pathstream.services.reporter.versions import mark_published, record_report_version, unpublished_reports
from pathstream.services.review.amendments import Review
from pathstream.services.review.auth import Principal
from pathstream.shared.db.models import Role, Slide, StudyReport, User
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Event, LnLabel, PnCategory, Specimen
from tests.fhir_schema import assert_fhir_r4_valid
from tests.samples import ITC_LESION, ln_scored, slide_detected, slide_failed, slide_scanned

pytestmark = pytest.mark.integration

STUDY = "ST-001"
DR_X = Principal("drx", Role.PATHOLOGIST)
ORDER = LabOrder(
    accession=STUDY,
    patient_id="MRN-0042",
    patient_id_system="urn:oid:1.2.3.4",
    placer_order_number="PO-77",
    specimen=Specimen.LYMPH_NODE,
    expected_slide_ids=("S-001", "S-002"),
    collected_at=datetime(2026, 11, 20, 7, 30, tzinfo=UTC),
)


def _apply(sessions: sessionmaker[Session], event: Event) -> int | None:
    """Apply the event, then record a version if it made one due."""
    applied = apply_event(sessions, "reporter", event)
    with sessions.begin() as session:
        row = record_report_version(session, STUDY, type(event).__name__) if applied else None
        return None if row is None else row.version


def _close(sessions: sessionmaker[Session]) -> int | None:
    with sessions.begin() as session:
        row = close_slide_set(session, STUDY, RUN)
        return None if row is None else row.version


def _rows(sessions: sessionmaker[Session]) -> list[StudyReport]:
    with sessions() as session:
        return list(
            session.scalars(
                select(StudyReport).where(StudyReport.study_id == STUDY).order_by(StudyReport.version)
            )
        )


def _slide(sessions: sessionmaker[Session], slide_id: str, scores: list[float]) -> None:
    _apply(sessions, slide_detected(slide_id=slide_id, ln_count=len(scores)))
    for index, score in enumerate(scores):
        _apply(sessions, ln_scored(index=index, score=score, slide_id=slide_id))


def test_no_report_until_the_slide_set_closes_then_one_per_change(sessions: sessionmaker[Session]) -> None:
    first_score = ln_scored(index=0, score=0.9)
    assert _apply(sessions, first_score) is None  # a score before its SlideDetected counts, but no report yet
    assert _apply(sessions, slide_detected(ln_count=2)) is None
    assert _apply(sessions, ln_scored(index=1, score=0.1)) is None  # complete, but the set is open
    assert _close(sessions) == 1
    assert _apply(sessions, first_score) is None  # redelivered
    assert _close(sessions) is None  # closing twice changes nothing
    (row,) = _rows(sessions)
    assert (row.status, row.ln_positive, row.ln_negative, row.ln_examined) == ("preliminary", 1, 1, 2)
    assert row.pn_category == PnCategory.N1 and row.below_ajcc_minimum
    assert_fhir_r4_valid(row.fhir)


def test_a_failed_slide_makes_the_report_partial_and_reprocessing_moves_it_on(
    sessions: sessionmaker[Session],
) -> None:
    _slide(sessions, "S-001", [0.1])
    _apply(sessions, slide_failed(slide_id="S-002"))
    assert _close(sessions) == 1
    first = _rows(sessions)[0]
    assert first.fhir["status"] == "partial" and "failed slides: S-002" in first.fhir["conclusion"]
    _slide(sessions, "S-002", [0.2])  # reprocessed: results for the failed slide
    statuses = [r.status for r in _rows(sessions)]
    assert statuses == ["partial", "preliminary"]


def test_an_order_before_the_slides_issues_the_report_when_the_last_expected_slide_completes(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        receipt = store_order(session, ORDER)
    assert receipt.changed and receipt.report_version is None
    _slide(sessions, "S-001", [0.9, 0.1])
    assert _rows(sessions) == []  # S-002 is still expected
    _slide(sessions, "S-002", [0.1])
    (row,) = _rows(sessions)
    assert row.status == "preliminary" and row.slide_count == 2
    assert row.fhir["subject"]["identifier"]["value"] == "MRN-0042"
    assert row.fhir["basedOn"][0]["identifier"]["value"] == "PO-77"
    assert row.fhir["effectiveDateTime"].startswith("2026-11-20T07:30")
    with sessions.begin() as session:
        assert not store_order(session, ORDER).changed  # the same order again


def test_an_order_after_the_slides_issues_the_report_at_once(sessions: sessionmaker[Session]) -> None:
    _slide(sessions, "S-001", [0.9])
    _slide(sessions, "S-002", [0.1])
    assert _rows(sessions) == []
    with sessions.begin() as session:
        receipt = store_order(session, ORDER)
    assert receipt.report_version == 1
    with sessions.begin() as session, pytest.raises(PathStreamError) as refused:
        store_order(session, LabOrder(accession=STUDY, patient_id="MRN-9999"))
    assert refused.value.code == ErrorCode.ORDER_CONFLICT


def test_review_sign_out_and_amendment_after_final(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(User(user_id="drx", display_name="Dr X", role=Role.PATHOLOGIST))
    review = Review(sessions)
    _slide(sessions, "S-001", [0.9, 0.1])
    with pytest.raises(PathStreamError) as early:
        review.sign_out(DR_X, STUDY)
    assert early.value.code == ErrorCode.SIGN_OUT_REFUSED and "slide set" in early.value.message
    assert _close(sessions) == 1
    changed = review.set_label(DR_X, "S-001-ln001", LnLabel.POSITIVE, "metastasis on review")
    assert changed.report_version == 2
    assert review.set_label(DR_X, "S-001-ln001", LnLabel.POSITIVE, "again").report_version is None  # no-op
    signed = review.sign_out(DR_X, STUDY, "agreed")
    assert signed.report_version == 3
    with pytest.raises(PathStreamError) as twice:
        review.sign_out(DR_X, STUDY)
    assert twice.value.code == ErrorCode.SIGN_OUT_REFUSED
    assert (
        _apply(sessions, ln_scored(index=0, score=0.95, at=datetime(2026, 11, 24, tzinfo=UTC))) is None
    )  # held
    corrected = review.set_label(DR_X, "S-001-ln000", LnLabel.POSITIVE, "keep the original call")
    sized = review.set_deposit_size(DR_X, "S-001-ln000", 0.1, "measured: isolated tumour cells only")
    rows = _rows(sessions)
    assert [r.status for r in rows] == ["preliminary", "amended", "final", "amended", "corrected"][
        : len(rows)
    ]
    assert corrected.report_version == 4 and sized.report_version == 5
    ids = {r.fhir["id"] for r in rows}
    assert len(ids) == 1
    assert [r.fhir["meta"]["versionId"] for r in rows] == ["1", "2", "3", "4", "5"]
    final = rows[2].fhir
    assert final["status"] == "final" and final["resultsInterpreter"][0]["display"] == "Dr X"
    last = rows[-1]
    assert last.fhir["status"] == "corrected" and last.reason == "measured: isolated tumour cells only"
    assert (
        "measured: isolated tumour cells only"
        in base64.b64decode(last.fhir["presentedForm"][0]["data"]).decode()
    )
    assert (last.ln_positive, last.ln_examined) == (1, 2)  # the ITC node is examined, not positive
    for row in rows:
        assert_fhir_r4_valid(row.fhir)


def test_itc_only_stages_pn0_i_plus_and_two_micro_with_three_itc_stage_pn1(
    sessions: sessionmaker[Session],
) -> None:
    _apply(sessions, slide_detected(ln_count=3))
    for index in range(3):
        _apply(sessions, ln_scored(index=index, score=0.9, lesion=ITC_LESION))
    assert _close(sessions) == 1
    row = _rows(sessions)[0]
    assert row.pn_category == PnCategory.N0_ITC and (row.ln_positive, row.ln_examined) == (0, 3)
    contained = {r["id"]: r for r in row.fhir["contained"]}
    assert contained["pn"]["valueCodeableConcept"]["coding"][0]["code"] == "1229949000"
    assert contained["ln-itc"]["valueInteger"] == 3
    _apply(sessions, slide_detected(slide_id="S-002", ln_count=2))
    for index in range(2):
        _apply(sessions, ln_scored(index=index, score=0.9, slide_id="S-002"))  # micrometastases
    _close(sessions)
    latest = _rows(sessions)[-1]
    assert latest.pn_category == PnCategory.N1 and (latest.ln_positive, latest.ln_examined) == (2, 5)


def test_a_study_without_an_order_settles(sessions: sessionmaker[Session]) -> None:
    _apply(sessions, slide_scanned())
    _slide(sessions, "S-001", [0.1])
    with sessions.begin() as session:
        assert settle_due_studies(session, settle_s=3600) == []  # the slide arrived just now
        session.execute(update(Slide).values(created_at=datetime.now(UTC) - timedelta(hours=2)))
    with sessions.begin() as session:
        (row,) = settle_due_studies(session, settle_s=3600)
        assert row.trigger == "settled" and row.status == "preliminary"


def test_outbox_holds_every_version_until_marked_published(sessions: sessionmaker[Session]) -> None:
    _slide(sessions, "S-001", [0.9])
    _close(sessions)
    review = Review(sessions)
    review.set_label(DR_X, "S-001-ln000", LnLabel.NEGATIVE, "not tumour")
    with sessions() as session:
        pending = unpublished_reports(session, STUDY)
    assert [e.report_version for e in pending] == [1, 2]
    assert [e.report_status for e in pending] == ["preliminary", "amended"]
    assert pending[0].pn_category == PnCategory.N1 and pending[1].pn_category == PnCategory.N0
    with sessions() as session:
        again = unpublished_reports(session)
    assert [e.event_id for e in again] == [e.event_id for e in pending]  # same version, same event
    with sessions.begin() as session:
        mark_published(session, STUDY, 1)
    with sessions() as session:
        assert [e.report_version for e in unpublished_reports(session)] == [2]
