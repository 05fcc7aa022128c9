"""The reporter: its handler on SQLite and PostgreSQL, and its FastStream app on the real broker."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.app import build_reporter_app
from pathstream.services.reporter.handler import ReporterHandler
from pathstream.services.reporter.orders.intake import OrderIntake
from pathstream.services.reporter.orders.model import LabOrder
from pathstream.services.reporter.slide_sets import RUN
from pathstream.services.review.amendments import Review
from pathstream.services.review.auth import DatabaseTokens, Principal
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import LymphNode, Role, Study, StudyReport
from pathstream.shared.errors import PathStreamError
from pathstream.shared.events import Event, LnLabel, PnCategory, ReportReady
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic, dead_letter_topic
from tests.integration.bus_helpers import wait_until
from tests.samples import ln_scored, report_ready, slide_detected, slide_failed, slide_scanned

pytestmark = pytest.mark.integration


def _study_events() -> list[Event]:
    """Two slides: S-001 with 3 LNs (2 positive), S-002 with 1 LN (negative)."""
    return [
        slide_scanned("S-001"),
        slide_scanned("S-002"),
        slide_detected("S-001", ln_count=3),
        slide_detected("S-002", ln_count=1),
        ln_scored(0, 0.9, slide_id="S-001"),
        ln_scored(1, 0.7, slide_id="S-001"),
        ln_scored(2, 0.1, slide_id="S-001"),
        ln_scored(0, 0.05, slide_id="S-002"),
    ]


def _final(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as session:
        row = session.scalars(select(StudyReport).order_by(StudyReport.version.desc())).first()
        assert row is not None and row.content is not None
        return {**row.content, "status": row.status}  # the newest version's content and status


def _order(study_id: str, *slides: str) -> LabOrder:
    return LabOrder(accession=study_id, patient_id="MRN-1", expected_slide_ids=slides)


def test_any_order_and_duplicates_give_one_report_once_the_ordered_slides_are_in(
    sessions: sessionmaker[Session], settings: PathStreamSettings
) -> None:
    handler = ReporterHandler(settings, sessions)
    OrderIntake(sessions).receive(_order("ST-001", "S-001", "S-002"))
    events = _study_events()
    shuffled = events + events[4:6]  # two redelivered scores
    random.Random(7).shuffle(shuffled)
    published = []
    for event in shuffled:
        for report in handler.handle(event):
            published.append(report)
            handler.published(report)
    assert [r.report_version for r in published] == [1]  # nothing until both slides are complete
    content = _final(sessions)
    assert (content["positive"], content["negative"], content["examined"]) == (2, 2, 4)
    assert content["pn_category"] == "N1" and content["below_ajcc_minimum"] is True
    assert content["status"] == "preliminary" and content["slides_complete"] == 2
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LymphNode)) == 4


def test_handle_returns_the_outbox_until_published(
    sessions: sessionmaker[Session], settings: PathStreamSettings
) -> None:
    handler = ReporterHandler(settings, sessions)
    OrderIntake(sessions).receive(_order("ST-001", "S-001"))
    assert handler.handle(slide_detected("S-001", ln_count=1)) == []  # its LN is not scored yet
    first = handler.handle(ln_scored(0, 0.9, slide_id="S-001"))
    assert [r.report_version for r in first] == [1]
    assert first[0].pn_category == PnCategory.N1 and first[0].report_status == "preliminary"
    # The publish of version 1 "crashed"; a review commits version 2 meanwhile: the next event
    # still returns version 1, before version 2.
    DatabaseTokens(sessions).add_user("paula", Role.PATHOLOGIST)
    Review(sessions).set_label(Principal("paula", Role.PATHOLOGIST), "S-001-ln000", LnLabel.NEGATIVE, "fat")
    second = handler.handle(ln_scored(0, 0.9, slide_id="S-001"))
    assert [(r.report_version, r.report_status) for r in second] == [(1, "preliminary"), (2, "amended")]
    for report in second:
        handler.published(report)
    assert handler.handle(ln_scored(0, 0.9, slide_id="S-001")) == []  # duplicate: no version
    assert handler.pending() == []


def test_a_failed_slide_stays_in_the_report(
    sessions: sessionmaker[Session], settings: PathStreamSettings
) -> None:
    handler = ReporterHandler(settings, sessions)
    for event in [slide_detected("S-001", ln_count=1), ln_scored(0, 0.2), slide_failed("S-002")]:
        handler.handle(event)
    assert handler.pending() == []  # no order: the slide set is open until the run ends or it settles
    (report,) = handler.close_slide_set("ST-001", RUN)
    content = _final(sessions)
    assert content["slide_count"] == 2 and content["slides_failed"] == 1 and content["status"] == "partial"
    assert report.report_status == "partial"
    assert [s["status"] for s in content["slides"]] == ["complete", "failed"]


def test_an_unreachable_database_is_a_retriable_error(tmp_path: Any) -> None:
    settings = PathStreamSettings(data_dir=tmp_path, handler_max_attempts=2, handler_retry_wait_s=0.01)
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    handler = ReporterHandler(settings, session_factory(create_db_engine(url)))
    with pytest.raises(PathStreamError) as caught:
        handler.handle(ln_scored())
    assert caught.value.retriable and "127.0.0.1:1" in str(caught.value)
    with pytest.raises(TypeError, match="does not consume ReportReady"):
        handler.handle(report_ready())


@pytest.fixture
def settings(tmp_path: Any) -> PathStreamSettings:
    return PathStreamSettings(data_dir=tmp_path)


async def test_reporter_service_publishes_versions_and_dead_letters_bad_messages(
    bus_settings: PathStreamSettings, pg_url: str
) -> None:
    bus_settings = bus_settings.model_copy(update={"report_outbox_poll_s": 0.2, "study_settle_s": 2.0})
    migrate.upgrade(pg_url)
    engine = create_db_engine(pg_url)
    sessions = session_factory(engine)
    # A version committed by an earlier run that never got published: the service sends it first.
    earlier = ReporterHandler(bus_settings, sessions)
    earlier.handle(slide_detected("S-900", "ST-900", ln_count=1))
    earlier.handle(ln_scored(0, 0.1, "S-900", "ST-900"))
    assert [r.report_version for r in earlier.close_slide_set("ST-900", RUN)] == [1]
    # ST-001 is ordered with its two slides; ST-777 comes without an order and settles.
    OrderIntake(sessions).receive(_order("ST-001", "S-001", "S-002"))

    reports: list[ReportReady] = []
    dead: list[bytes] = []
    watcher = build_broker(bus_settings)

    @watcher.subscriber(
        bus_settings.topic(Topic.REPORTS_READY), **consumer_options(bus_settings, "reports-watch")
    )
    async def on_report(event: ReportReady) -> None:
        reports.append(event)

    @watcher.subscriber(
        dead_letter_topic(bus_settings.topic(Topic.LN_SCORED)), **consumer_options(bus_settings, "dlq-watch")
    )
    async def on_dead(body: bytes) -> None:
        dead.append(body)

    def of(study_id: str) -> list[ReportReady]:
        return [r for r in reports if r.study_id == study_id]

    app, _ = build_reporter_app(bus_settings, sessions)
    producer = build_broker(bus_settings)
    await start_with_retry(producer, bus_settings)
    await start_with_retry(watcher, bus_settings)
    try:
        await app.start()
        await wait_until(lambda: [r.report_version for r in of("ST-900")] == [1], 30, "the backlog report")
        await producer.publish(b'{"ln_id": "broken"}', bus_settings.topic(Topic.LN_SCORED), key=b"S-001")
        events = _study_events()
        for event in events + events[4:5]:
            await publish_event(producer, bus_settings, event)
        for event in (slide_detected("S-777", "ST-777", ln_count=1), ln_scored(0, 0.95, "S-777", "ST-777")):
            await publish_event(producer, bus_settings, event)
        await wait_until(lambda: bool(of("ST-001")), 60, "the complete report")
        await wait_until(lambda: bool(dead), 30, "the malformed message in the DLQ")
        await wait_until(lambda: bool(of("ST-777")), 60, "the settled study's report")
        # An amendment commits a version without any event; the outbox sweep publishes it.
        DatabaseTokens(sessions).add_user("paula", Role.PATHOLOGIST)
        amended = Review(sessions).set_label(
            Principal("paula", Role.PATHOLOGIST), "S-001-ln002", LnLabel.POSITIVE, "deeper levels"
        )
        await wait_until(
            lambda: of("ST-001")[-1].report_version == amended.report_version, 30, "the amended report"
        )
    finally:
        await app.stop()
        await producer.stop()
        await watcher.stop()
    first, second = of("ST-001")  # one preliminary when both slides were in, one amendment
    assert (first.report_version, first.report_status, first.slides_complete) == (1, "preliminary", 2)
    assert (first.ln_positive, first.ln_negative, first.pn_category) == (2, 2, PnCategory.N1)
    assert first.fhir_report["subject"]["identifier"]["value"] == "MRN-1"
    assert (second.report_version, second.report_status) == (2, "amended")
    assert (second.ln_positive, second.pn_category) == (3, PnCategory.N2)
    (settled,) = of("ST-777")
    assert settled.report_status == "preliminary" and settled.ln_positive == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).where(StudyReport.published_at.is_(None))) == 0
        closed_by = session.scalar(select(Study.slides_closed_by).where(Study.study_id == "ST-777"))
    assert closed_by == "settled"
    engine.dispose()
