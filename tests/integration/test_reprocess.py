"""`pathstream reprocess` (issue 18): a slide that failed MPP_MISSING is announced again with the
corrected mpp and a new event id; a slide that did not fail needs --force; each request is recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pathstream.services.operations.reprocess import publish_reprocess, request_reprocess
from pathstream.services.reporter.handler import ReporterHandler
from pathstream.shared.bus.admin import ensure_topics
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.startup import start_with_retry
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import SlideReprocess
from pathstream.shared.errors import PathStreamError
from pathstream.shared.events import SlideScanned
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.topics import Topic
from tests.integration.bus_helpers import collected, wait_until
from tests.samples import slide_detected, slide_failed, slide_scanned

pytestmark = pytest.mark.integration


async def test_a_failed_slide_is_announced_again_with_the_corrected_mpp(
    bus_settings: PathStreamSettings, pg_url: str
) -> None:
    settings = bus_settings.model_copy(update={"allowed_roots": ["/data/slides"]})
    migrate.upgrade(pg_url)
    engine = create_db_engine(pg_url)
    sessions = session_factory(engine)
    reporter = ReporterHandler(settings, sessions)
    reporter.handle(slide_scanned("S-002"))
    reporter.handle(slide_failed("S-002"))  # MPP_MISSING at ingest
    reporter.handle(slide_scanned("S-001"))
    reporter.handle(slide_detected("S-001"))
    await ensure_topics(settings, [settings.topic(Topic.SLIDES_SCANNED)])
    broker = build_broker(settings)
    await start_with_retry(broker, settings)
    try:
        async with collected(settings, {"scanned": (Topic.SLIDES_SCANNED, SlideScanned)}) as seen:
            first = request_reprocess(
                sessions, settings, "S-002", mpp=0.5, force=False, requested_by="ops", reason="scanner: 0.5"
            )
            await publish_reprocess(broker, settings, sessions, first)
            await wait_until(lambda: len(seen["scanned"]) == 1, 60, "the new announcement")
        announced = seen["scanned"][0]
        assert (announced.slide_id, announced.mpp, announced.uri) == ("S-002", 0.5, "/data/slides/S-002.svs")
        assert announced.event_id != slide_scanned("S-002").event_id

        with pytest.raises(PathStreamError, match="not failed"):
            request_reprocess(
                sessions, settings, "S-001", mpp=None, force=False, requested_by="ops", reason="x"
            )
        forced = request_reprocess(
            sessions, settings, "S-001", mpp=None, force=True, requested_by="ops", reason="new model"
        )
        again = request_reprocess(
            sessions, settings, "S-002", mpp=0.25, force=False, requested_by="ops", reason="2"
        )
        assert (forced.attempt, again.attempt) == (1, 2)
        assert again.event.event_id != first.event.event_id
        with pytest.raises(PathStreamError, match="No slide"):
            request_reprocess(
                sessions, settings, "NOPE", mpp=None, force=True, requested_by="ops", reason="x"
            )
        outside = settings.model_copy(update={"allowed_roots": ["/elsewhere"]})
        with pytest.raises(PathStreamError, match="outside the allowed roots"):
            request_reprocess(
                sessions, outside, "S-002", mpp=0.5, force=False, requested_by="ops", reason="x"
            )
    finally:
        await broker.stop()

    with sessions() as session:
        rows = session.scalars(select(SlideReprocess).order_by(SlideReprocess.requested_at)).all()
        assert [(r.slide_id, r.attempt, r.previous_failure_code) for r in rows] == [
            ("S-002", 1, "MPP_MISSING"),
            ("S-001", 1, None),
            ("S-002", 2, "MPP_MISSING"),
        ]
        assert rows[0].published_at is not None and rows[1].published_at is None
    engine.dispose()
