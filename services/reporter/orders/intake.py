"""An order opens (or completes) its study: stored in one transaction with the report version it
makes due.

An order may arrive before or after the study's slides. Stored, it tells the reporter which slides
(or how many) make up the study, so the first report is issued exactly when they are all complete
or failed; an order arriving after the last slide issues that report at once. The same order sent
again changes nothing. An order that names another patient for a known accession is refused
(ORDER_CONFLICT) and changes nothing: a study never silently moves to another patient. A change of
the expected slides or specimen details is accepted until the report is signed out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.orders.model import LabOrder
from pathstream.services.reporter.store.upserts import ensure_study
from pathstream.services.reporter.versions import DEFAULT_LAB, record_report_version
from pathstream.shared.db.models import Study, StudyOrder
from pathstream.shared.db.timestamps import stored_utc
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger

log = get_logger(__name__)

ORDER_TRIGGER = "order"


@dataclass(frozen=True)
class OrderReceipt:
    """What storing an order did."""

    study_id: str
    changed: bool
    """False when the same order had been stored before."""
    report_version: int | None
    """The report version the order made due (its study was complete), else None."""


def _columns(order: LabOrder) -> dict[str, object]:
    return {
        "patient_id": order.patient_id,
        "patient_id_system": order.patient_id_system,
        "placer_order_number": order.placer_order_number,
        "placer_system": order.placer_system,
        "specimen_id": order.specimen_id,
        "specimen": order.specimen,
        "expected_slide_ids": list(order.expected_slide_ids),
        "expected_slide_count": order.expected_slide_count
        if order.expected_slide_count is not None
        else (len(order.expected_slide_ids) or None),
        "ordered_at": order.ordered_at,
        "collected_at": order.collected_at,
        "ordering_provider": order.ordering_provider,
        "source": order.source,
        "message_id": order.message_id,
    }


def _comparable(value: object) -> object:
    return stored_utc(value) if isinstance(value, datetime) else value


def _same(row: StudyOrder, values: dict[str, object]) -> bool:
    """Whether the stored order already says what `values` say (the message id may differ)."""
    return all(
        _comparable(getattr(row, key)) == _comparable(value)
        for key, value in values.items()
        if key not in ("message_id", "source")
    )


def store_order(session: Session, order: LabOrder, lab: tuple[str, str] = DEFAULT_LAB) -> OrderReceipt:
    """Store `order` inside the caller's transaction and record the report version it makes due.

    Raises ORDER_CONFLICT when the accession is already ordered for another patient, or when the
    study was signed out and the order would change what it expects.
    """
    study_id = order.accession
    ensure_study(session, study_id)
    study = session.get(Study, study_id, with_for_update=True)
    assert study is not None
    values = _columns(order)
    row = session.get(StudyOrder, study_id)
    if row is not None:
        if (row.patient_id, row.patient_id_system) != (order.patient_id, order.patient_id_system):
            raise PathStreamError(
                ErrorCode.ORDER_CONFLICT,
                f"Accession {study_id} is already ordered for another patient; the order was not applied.",
                hint="Check the accession number; a change of patient needs the laboratory to cancel "
                "the first order and correct the study by hand.",
            )
        if _same(row, values):
            return OrderReceipt(study_id, changed=False, report_version=None)
        if study.signed_out_at is not None:
            raise PathStreamError(
                ErrorCode.ORDER_CONFLICT,
                f"Study {study_id} was signed out; a changed order is not applied to it.",
                hint="Amend the signed report through the review instead.",
            )
        for key, value in values.items():
            setattr(row, key, value)
    else:
        session.add(StudyOrder(study_id=study_id, **values))
    session.flush()
    version = record_report_version(session, study_id, trigger=ORDER_TRIGGER, lab=lab)
    return OrderReceipt(study_id, changed=True, report_version=None if version is None else version.version)


class OrderIntake:
    """Stores orders arriving over MLLP or the API, one transaction each."""

    def __init__(self, sessions: sessionmaker[Session], lab: tuple[str, str] = DEFAULT_LAB) -> None:
        self.sessions = sessions
        self.lab = lab

    def receive(self, order: LabOrder) -> OrderReceipt:
        """Store `order`; see `store_order`. Logs the accession and source, never the patient."""
        with self.sessions.begin() as session:
            receipt = store_order(session, order, self.lab)
        log.info(
            "order_received",
            study_id=receipt.study_id,
            source=order.source,
            changed=receipt.changed,
            expected_slides=order.expected_slide_count or len(order.expected_slide_ids) or None,
            report_version=receipt.report_version,
        )
        return receipt
