"""The reporter's handler: pipeline events in, report versions in the database, `ReportReady` out.

Transport-free like the other services' handlers: the FastStream app (`pathstream.services.reporter.app`) and
the embedded run call the same `ReporterHandler`. One transaction per event claims it (so a
redelivery changes nothing), writes what it says (natural-key upserts, so an LN score that arrives
before its slide's detection counts once), and records a new report version when the study's
report changed. The `ReportReady` events returned are every version of that study still waiting to
be published (the outbox), so a crash between commit and publish is repaired by the next event or
the next start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.slide_sets import close_slide_set, reopen_slide_set, settle_due_studies
from pathstream.services.reporter.store.apply import APPLIERS, claim_event
from pathstream.services.reporter.store.upserts import ensure_study
from pathstream.services.reporter.versions import (
    lab_of,
    mark_published,
    record_report_version,
    unpublished_reports,
)
from pathstream.shared.db.engine import database_unavailable
from pathstream.shared.db.models import Slide
from pathstream.shared.events import (
    Event,
    LymphNodeScored,
    MarrowClassified,
    ReportReady,
    SlideDetected,
    SlideFailed,
    SlideScanned,
)
from pathstream.shared.logs import get_logger
from pathstream.shared.retry import retry_retriable
from pathstream.shared.settings import PathStreamSettings, mask_database_url

log = get_logger(__name__)

CONSUMER = "reporter"
"""The reporter's name in `processed_events` (and its Kafka consumer group)."""

REPORTER_INPUTS: tuple[type[Event], ...] = (
    SlideScanned,
    SlideDetected,
    LymphNodeScored,
    MarrowClassified,
    SlideFailed,
)
"""The event types the reporter consumes, one topic each."""

ReporterInput = SlideScanned | SlideDetected | LymphNodeScored | MarrowClassified | SlideFailed

T = TypeVar("T")


class ReporterHandler:
    """Applies pipeline events to the report database and hands back the reports to publish."""

    wait_out_outages: bool = False
    """True under a service consumer: an outage is raised to its delivery policy, which waits it out
    (`pathstream.shared.bus.delivery`), instead of being retried here and reported as a failure."""

    def __init__(self, settings: PathStreamSettings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.lab = lab_of(settings)

    def handle(self, event: ReporterInput | Event) -> list[ReportReady]:
        """Apply one event; return the study's unpublished `ReportReady` events, oldest first.

        A duplicate (same event id) or an event that changes nothing yields no new version, but
        versions left unpublished by an earlier crash are still returned. A database outage is raised
        as `PathStreamError(DATABASE_UNAVAILABLE)` (after `PATHSTREAM_HANDLER_MAX_ATTEMPTS` tries
        unless `wait_out_outages`), so the message stays uncommitted; under the service consumer it is
        tried again until the database is back, never dead-lettered. Raises `TypeError` for an event
        type the reporter does not consume.
        """
        if not isinstance(
            event, SlideScanned | SlideDetected | LymphNodeScored | MarrowClassified | SlideFailed
        ):
            raise TypeError(f"the reporter does not consume {type(event).__name__}")
        study_id = event.study_id
        bound = log.bind(slide_id=event.slide_id, study_id=study_id)

        def apply() -> int | None:
            with self.sessions.begin() as session:
                if not claim_event(session, CONSUMER, event):
                    return None
                ensure_study(session, study_id)
                if isinstance(event, SlideScanned) and session.get(Slide, event.slide_id) is None:
                    reopen_slide_set(session, study_id)
                APPLIERS[type(event)](session, event)
                row = record_report_version(session, study_id, trigger=type(event).__name__, lab=self.lab)
                return None if row is None else row.version

        version = self._with_database(apply)
        if version is not None:
            bound.info("report_version", trigger=type(event).__name__, report_version=version)
        return self._with_database(lambda: self._unpublished(study_id))

    def close_slide_set(self, study_id: str, by: str) -> list[ReportReady]:
        """Declare the study's slide set complete (`by`: "run", "settled"); return its unpublished
        `ReportReady` events (the first report, when every slide is complete or failed)."""

        def close() -> None:
            with self.sessions.begin() as session:
                row = close_slide_set(session, study_id, by, self.lab)
                if row is not None:
                    log.info("report_version", study_id=study_id, trigger=by, report_version=row.version)

        self._with_database(close)
        return self._with_database(lambda: self._unpublished(study_id))

    def settle(self) -> int:
        """Close the slide sets of order-less studies idle for `PATHSTREAM_STUDY_SETTLE_S`; return
        how many report versions that wrote (publish them with `pending`)."""

        def settle() -> int:
            with self.sessions.begin() as session:
                rows = settle_due_studies(session, self.settings.study_settle_s, lab=self.lab)
                for row in rows:
                    log.info(
                        "report_version", study_id=row.study_id, trigger="settled", report_version=row.version
                    )
                return len(rows)

        return self._with_database(settle)

    def pending(self, study_id: str | None = None) -> list[ReportReady]:
        """Unpublished `ReportReady` events of one study, or of every study, oldest first."""
        return self._with_database(lambda: self._unpublished(study_id))

    def published(self, report: ReportReady) -> None:
        """Record that the broker (or the embedded run's report writer) accepted `report`."""

        def mark() -> None:
            with self.sessions.begin() as session:
                mark_published(session, report.study_id, report.report_version)

        self._with_database(mark)

    def _unpublished(self, study_id: str | None) -> list[ReportReady]:
        with self.sessions() as session:
            return unpublished_reports(session, study_id)

    def _database_name(self) -> str:
        bind = self.sessions.kw.get("bind")
        url = (
            bind.url.render_as_string(hide_password=False) if bind is not None else self.settings.database_url
        )
        return mask_database_url(url)

    def _with_database(self, work: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return work()
            except DBAPIError as exc:
                # Unreachable server, lost connection, deadlock or serialisation conflict: the whole
                # transaction rolled back, so trying it again is safe.
                if isinstance(exc, OperationalError) or exc.connection_invalidated or _is_transient(exc):
                    raise database_unavailable(self._database_name(), exc) from exc
                raise

        return retry_retriable(self.settings, attempt, outages=not self.wait_out_outages)


_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "08000", "08001", "08003", "08006", "57P01"})


def _is_transient(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return True
    # SQLite: another writer holds the lock past busy_timeout.
    return "database is locked" in str(exc.orig)
