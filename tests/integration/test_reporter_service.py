"""The reporter: its handler on SQLite and PostgreSQL, and its FastStream app on the real broker."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.app import build_reporter_app
from pathstream.services.reporter.handler import ReporterHandler
from pathstream.services.review.amendments import Review
from pathstream.services.review.auth import DatabaseTokens, Principal
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import LymphNode, Role, StudyReport
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
        return row.content


def test_any_order_and_duplicates_give_the_same_report(
    sessions: sessionmaker[Session], settings: PathStreamSettings
) -> None:
    handler = ReporterHandler(settings, sessions)
    events = _study_events()
    shuffled = events + events[4:6]  # two redelivered scores
    random.Random(7).shuffle(shuffled)
    for event in shuffled:
        handler.handle(event)
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
    first = handler.handle(slide_detected("S-001", ln_count=1))
    assert [r.report_version for r in first] == [1]
    # The publish of version 1 "crashed": the next event still returns it, before version 2.
    second = handler.handle(ln_scored(0, 0.9, slide_id="S-001"))
    assert [r.report_version for r in second] == [1, 2]
    assert second[1].pn_category == PnCategory.N1 and second[1].ln_positive == 1
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
    content = _final(sessions)
    assert content["slide_count"] == 2 and content["slides_failed"] == 1 and content["status"] == "partial"
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
    bus_settings = bus_settings.model_copy(update={"report_outbox_poll_s": 0.2})
    migrate.upgrade(pg_url)
    engine = create_db_engine(pg_url)
    sessions = session_factory(engine)
    # A version committed by an earlier run that never got published: the service sends it first.
    ReporterHandler(bus_settings, sessions).handle(slide_scanned("S-001"))

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

    app, _ = build_reporter_app(bus_settings, sessions)
    producer = build_broker(bus_settings)
    await start_with_retry(producer, bus_settings)
    await start_with_retry(watcher, bus_settings)
    try:
        await app.start()
        await wait_until(lambda: [r.report_version for r in reports] == [1], 30, "the backlog report")
        await producer.publish(b'{"ln_id": "broken"}', bus_settings.topic(Topic.LN_SCORED), key=b"S-001")
        events = _study_events()
        for event in events[1:] + events[4:5]:
            await publish_event(producer, bus_settings, event)
        await wait_until(
            lambda: bool(reports) and reports[-1].slides_complete == 2, 60, "the complete report"
        )
        await wait_until(lambda: bool(dead), 30, "the malformed message in the DLQ")
        # An amendment commits a version without any event; the outbox sweep publishes it.
        DatabaseTokens(sessions).add_user("paula", Role.PATHOLOGIST)
        amended = Review(sessions).set_label(
            Principal("paula", Role.PATHOLOGIST), "S-001-ln002", LnLabel.POSITIVE, "deeper levels"
        )
        await wait_until(
            lambda: reports[-1].report_version == amended.report_version, 30, "the amended report"
        )
    finally:
        await app.stop()
        await producer.stop()
        await watcher.stop()
    final = next(r for r in reports if r.slides_complete == 2)
    assert (final.ln_positive, final.ln_negative, final.pn_category) == (2, 2, PnCategory.N1)
    assert final.fhir_report["status"] == "preliminary"
    assert (reports[-1].ln_positive, reports[-1].pn_category) == (3, PnCategory.N2)
    assert reports[-1].fhir_report["status"] == "amended"
    versions = [r.report_version for r in reports]
    assert versions == sorted(set(versions)) == list(range(1, len(versions) + 1))
    with sessions() as session:
        assert session.scalar(select(func.count()).where(StudyReport.published_at.is_(None))) == 0
    engine.dispose()
