"""Every report version to the LIS as an HL7 v2 ORU^R01 over MLLP, with nothing lost across restarts.

Each `study_reports` row is its own outbox entry: `hl7_sent_at` stays NULL until the LIS answered
the ORU with an accepting ACK (MSA-1 AA or CA). A study's versions go out in order: only its
oldest unsent version is due, so the LIS never receives version 3 before version 2. A refused
delivery (no connection, timeout, AE / AR) is recorded on the row with the LIS's words and tried
again after an exponential back-off capped at `PATHSTREAM_LIS_RETRY_MAX_S`; the back-off lives in
the database rather than in a retry loop (tenacity) because it has to survive a restart.
Nothing is sent when `PATHSTREAM_LIS_MLLP_HOST` is unset.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.hl7v2.mllp import send_mllp
from pathstream.services.reporter.hl7v2.oru import oru_r01, parse_ack
from pathstream.shared.db.models import StudyReport
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events.base import utc_now
from pathstream.shared.logs import get_logger
from pathstream.shared.settings import PathStreamSettings

log = get_logger(__name__)

_CONTROL_NAMESPACE = uuid.UUID("2f9d3c61-7b0e-4f5a-a8d4-93e1b6c0d7aa")
ACCEPTED = frozenset({"AA", "CA"})


def control_id(study_id: str, version: int) -> str:
    """MSH-10 of a version's ORU: the same on every attempt, so the LIS can recognise a resend
    (at most 20 characters, as HL7 v2.5.1 allows)."""
    return f"{uuid.uuid5(_CONTROL_NAMESPACE, study_id).hex[:12]}.{version}"[:20]


@dataclass(frozen=True)
class Delivery:
    """The outcome of one ORU attempt."""

    study_id: str
    version: int
    accepted: bool
    detail: str


def due_versions(session: Session, now: datetime, limit: int = 50) -> list[StudyReport]:
    """The oldest unsent version of each study whose back-off has passed, oldest study first."""
    oldest = (
        select(StudyReport.study_id, func.min(StudyReport.version).label("version"))
        .where(StudyReport.hl7_sent_at.is_(None))
        .group_by(StudyReport.study_id)
        .subquery()
    )
    return list(
        session.scalars(
            select(StudyReport)
            .join(
                oldest,
                and_(StudyReport.study_id == oldest.c.study_id, StudyReport.version == oldest.c.version),
            )
            .where(or_(StudyReport.hl7_next_attempt_at.is_(None), StudyReport.hl7_next_attempt_at <= now))
            .order_by(StudyReport.created_at)
            .limit(limit)
        )
    )


def back_off_s(attempts: int, cap_s: float) -> float:
    """Seconds to wait after `attempts` failed attempts: 2, 4, 8, ... capped at `cap_s`."""
    return float(min(cap_s, 2.0 ** min(attempts, 30)))


class LisSender:
    """Sends due report versions to the configured LIS, one at a time, recording each outcome."""

    def __init__(self, settings: PathStreamSettings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions

    @property
    def configured(self) -> bool:
        """Whether an LIS endpoint is configured (PATHSTREAM_LIS_MLLP_HOST)."""
        return self.settings.lis_mllp_host is not None

    async def send_due(self) -> list[Delivery]:
        """Try every due version once; return what happened (empty when no LIS is configured)."""
        if not self.configured:
            return []
        deliveries: list[Delivery] = []
        while True:
            batch = await asyncio.to_thread(self._due)
            if not batch:
                return deliveries
            for study_id, version, fhir in batch:
                delivery = await self._send(study_id, version, fhir)
                deliveries.append(delivery)
            if any(not d.accepted for d in deliveries[-len(batch) :]):
                return deliveries  # the LIS is refusing: wait for the back-off, do not spin

    def _due(self) -> list[tuple[str, int, dict[str, object]]]:
        with self.sessions() as session:
            return [(r.study_id, r.version, r.fhir) for r in due_versions(session, utc_now())]

    async def _send(self, study_id: str, version: int, fhir: dict[str, object]) -> Delivery:
        settings = self.settings
        assert settings.lis_mllp_host is not None
        sent_id = control_id(study_id, version)
        try:
            message = oru_r01(
                fhir,
                sending_facility=settings.lab_id,
                receiving_application=settings.lis_receiving_application,
                receiving_facility=settings.lis_receiving_facility,
                control_id=sent_id,
                now=datetime.now(UTC),
            )
            ack = await send_mllp(
                settings.lis_mllp_host, settings.lis_mllp_port, message, settings.lis_ack_timeout_s
            )
            code, acked_id, text = parse_ack(ack)
        except PathStreamError as exc:
            code, text = "", f"{exc.code.value}: {exc.message}"
        else:
            if acked_id != sent_id:
                # An ACK for another message (a late answer to an earlier attempt) confirms nothing.
                code, text = "", f"the LIS acknowledged message {acked_id!r}, not {sent_id!r}"
        accepted = code in ACCEPTED
        detail = "accepted" if accepted else (f"ACK {code}: {text}" if code else text)
        await asyncio.to_thread(self._record, study_id, version, accepted, detail)
        if accepted:
            log.info("oru_sent", study_id=study_id, report_version=version)
        else:
            error = ErrorCode.LIS_REJECTED if code else ErrorCode.LIS_UNAVAILABLE
            # The LIS's own words may name the patient: they go to the row, not to the log.
            log.warning(
                "oru_not_sent",
                study_id=study_id,
                report_version=version,
                error_code=error.value,
                ack_code=code or None,
            )
        return Delivery(study_id, version, accepted, detail)

    def _record(self, study_id: str, version: int, accepted: bool, detail: str) -> None:
        with self.sessions.begin() as session:
            row = session.get(StudyReport, (study_id, version))
            assert row is not None
            now = utc_now()
            if accepted:
                row.hl7_sent_at, row.hl7_last_error = now, None
            else:
                row.hl7_attempts = (row.hl7_attempts or 0) + 1
                row.hl7_last_error = detail[:2000]
                row.hl7_next_attempt_at = now + timedelta(
                    seconds=back_off_s(row.hl7_attempts, self.settings.lis_retry_max_s)
                )
