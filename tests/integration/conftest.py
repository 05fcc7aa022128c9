"""Fixtures shared by integration tests of several modules."""

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from tests.integration.detector_cohort import trained_detector

__all__ = ["sessions", "trained_detector"]


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database, once on SQLite and once on PostgreSQL (`db_url`)."""
    migrate.upgrade(db_url)
    engine = create_db_engine(db_url)
    yield session_factory(engine)
    engine.dispose()
