"""The reporter's handler from settings, for `pathstream serve reporter` and the embedded run."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.handler import ReporterHandler
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.settings import PathStreamSettings


def reporter_handler(
    settings: PathStreamSettings, sessions: sessionmaker[Session] | None = None
) -> ReporterHandler:
    """The reporter's handler on `sessions`, by default sessions of `PATHSTREAM_DATABASE_URL`."""
    return ReporterHandler(settings, sessions or session_factory(create_db_engine(settings.database_url)))
