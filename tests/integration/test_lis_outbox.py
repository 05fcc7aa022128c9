"""Report versions to the LIS as ORU^R01 over MLLP (a real socket to the independent test
receiver) on a real database, SQLite and PostgreSQL: ACKed versions are marked sent, a receiver
that is down or refusing costs nothing (the version is tried again after its back-off, also after
a restart), versions go out in order; and orders arrive over the MLLP order listener."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.hl7_outbox import LisSender, control_id
from pathstream.services.reporter.hl7v2.mllp import send_mllp
from pathstream.services.reporter.order_listener import start_order_listener
from pathstream.services.reporter.orders.intake import OrderIntake
from pathstream.services.reporter.slide_sets import RUN, close_slide_set
from pathstream.services.reporter.store.apply import apply_event
from pathstream.services.reporter.versions import record_report_version
from pathstream.services.review.amendments import Review
from pathstream.services.review.auth import Principal
from pathstream.shared.db.models import Role, StudyOrder, StudyReport
from pathstream.shared.events import Event, LnLabel
from pathstream.shared.settings import PathStreamSettings
from tests.mllp_receiver import MllpReceiver
from tests.samples import ln_scored, slide_detected

pytestmark = pytest.mark.integration

STUDY = "ST-001"


def _apply(sessions: sessionmaker[Session], event: Event) -> None:
    if apply_event(sessions, "reporter", event):
        with sessions.begin() as session:
            record_report_version(session, STUDY, type(event).__name__)


def _two_versions(sessions: sessionmaker[Session]) -> None:
    """Version 1 (preliminary, one positive node) and version 2 (amended by review)."""
    _apply(sessions, slide_detected(slide_id="S-001", ln_count=1))
    _apply(sessions, ln_scored(index=0, score=0.9, slide_id="S-001"))
    with sessions.begin() as session:
        close_slide_set(session, STUDY, RUN)
    Review(sessions).set_label(Principal("drx", Role.PATHOLOGIST), "S-001-ln000", LnLabel.NEGATIVE, "fat")


def _settings(tmp_path: Path, port: int) -> PathStreamSettings:
    return PathStreamSettings(
        data_dir=tmp_path,
        lis_mllp_host="127.0.0.1",
        lis_mllp_port=port,
        lis_ack_timeout_s=3,
        lis_retry_max_s=60,
        lab_id="LAB-1",
    )


def _rows(sessions: sessionmaker[Session]) -> list[StudyReport]:
    with sessions() as session:
        return list(session.scalars(select(StudyReport).order_by(StudyReport.version)))


def _due_now(sessions: sessionmaker[Session]) -> None:
    """Let every back-off pass (the clock moving on, without waiting in the test)."""
    with sessions.begin() as session:
        session.execute(update(StudyReport).values(hl7_next_attempt_at=None))


def test_versions_are_acked_in_order_and_resent_after_the_receiver_was_down(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    _two_versions(sessions)
    lis = MllpReceiver().start()
    port = lis.port
    lis.stop()  # the LIS is down when the first versions are due
    sender = LisSender(_settings(tmp_path, port), sessions)
    deliveries = asyncio.run(sender.send_due())
    assert [(d.version, d.accepted) for d in deliveries] == [(1, False)]  # v2 waits behind v1
    first, second = _rows(sessions)
    assert first.hl7_sent_at is None and first.hl7_attempts == 1 and first.hl7_next_attempt_at is not None
    assert "LIS_UNAVAILABLE" in (first.hl7_last_error or "")
    assert second.hl7_attempts in (None, 0)
    assert asyncio.run(sender.send_due()) == []  # still backing off: nothing is tried

    # The reporter restarts (a new sender on the same database) and the LIS is back on its port.
    lis.start()
    try:
        _due_now(sessions)
        restarted = LisSender(_settings(tmp_path, port), sessions)
        deliveries = asyncio.run(restarted.send_due())
        assert [(d.version, d.accepted) for d in deliveries] == [(1, True), (2, True)]
        assert all(row.hl7_sent_at is not None and row.hl7_last_error is None for row in _rows(sessions))
        assert [str(m.segment("MSH")[10]) for m in lis.messages] == [
            control_id(STUDY, 1),
            control_id(STUDY, 2),
        ]
        assert [str(m.segment("OBR")[25]) for m in lis.messages] == ["P", "P"]  # not signed out yet
        assert [str(m.segment("OBR")[3][0][0]) for m in lis.messages] == [STUDY, STUDY]
        assert asyncio.run(restarted.send_due()) == []  # nothing is sent twice
    finally:
        lis.stop()


def test_a_refusing_lis_keeps_the_version_with_its_words_and_takes_it_later(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    _two_versions(sessions)
    with MllpReceiver() as lis:
        lis.ack_code, lis.ack_text = "AE", "Unknown accession"
        sender = LisSender(_settings(tmp_path, lis.port), sessions)
        (delivery,) = asyncio.run(sender.send_due())
        assert not delivery.accepted and delivery.detail == "ACK AE: Unknown accession"
        row = _rows(sessions)[0]
        assert row.hl7_sent_at is None and row.hl7_last_error == "ACK AE: Unknown accession"
        lis.ack_code = None  # now it hangs up without answering
        _due_now(sessions)
        (delivery,) = asyncio.run(sender.send_due())
        assert not delivery.accepted and _rows(sessions)[0].hl7_attempts == 2
        lis.ack_code = "AA"
        _due_now(sessions)
        assert [d.accepted for d in asyncio.run(sender.send_due())] == [True, True]
        assert len(lis.messages) == 4  # the same v1 three times (same control id), then v2
        assert len({str(m.segment("MSH")[10]) for m in lis.messages[:3]}) == 1


def test_nothing_is_sent_without_a_configured_lis(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    _two_versions(sessions)
    assert asyncio.run(LisSender(PathStreamSettings(data_dir=tmp_path), sessions).send_due()) == []
    assert all(row.hl7_attempts in (None, 0) for row in _rows(sessions))


ORDER = "\r".join(
    [
        "MSH|^~\\&|HIS|HOSP|PATHSTREAM|LAB|20261203101010||OML^O21^OML_O21|MSG-9|P|2.5.1",
        "PID|1||MRN-0042^^^HOSP^MR||Doe^Jane",
        "ORC|NW|PO-77^HIS|ST-001^LAB",
        "OBR|1|PO-77^HIS|ST-001^LAB|60567-5^Pathology report^LN",
        "OBX|1|ST|PATHSTREAM-SLIDE^Slide^L||S-001",
    ]
)


def test_an_order_over_mllp_is_stored_and_acked_and_a_bad_one_is_refused_storing_nothing(
    sessions: sessionmaker[Session],
) -> None:
    async def scenario() -> tuple[str, str, str]:
        server = await start_order_listener("127.0.0.1", 0, OrderIntake(sessions))
        port = server.sockets[0].getsockname()[1]
        try:
            bad = await send_mllp("127.0.0.1", port, ORDER.replace("PID|1||MRN-0042^^^HOSP^MR", "PID|1||"), 5)
            good = await send_mllp("127.0.0.1", port, ORDER, 5)
            other = ORDER.replace("MRN-0042", "MRN-9999").replace("MSG-9", "MSG-10")
            conflict = await send_mllp("127.0.0.1", port, other, 5)
        finally:
            server.close()
            await server.wait_closed()
        return bad, good, conflict

    bad, good, conflict = asyncio.run(scenario())
    assert "MSA|AE|MSG-9|" in bad and "PID-3" in bad
    assert "MSA|AA|MSG-9|" in good
    assert "MSA|AE|MSG-10|" in conflict  # another patient for a known accession
    with sessions() as session:
        (order,) = session.scalars(select(StudyOrder)).all()
    assert (
        order.study_id == STUDY and order.patient_id == "MRN-0042" and order.expected_slide_ids == ["S-001"]
    )
    # The order names the study's only slide; once it completes, the report is due at once.
    _apply(sessions, slide_detected(slide_id="S-001", ln_count=1))
    _apply(sessions, ln_scored(index=0, score=0.9, slide_id="S-001"))
    (row,) = _rows(sessions)
    assert row.fhir["subject"]["identifier"]["value"] == "MRN-0042"
