"""Alembic upgrade head -> downgrade base -> upgrade head on PostgreSQL and SQLite, and the
migrations produce exactly what the models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine
from pathstream.shared.db.models import Base

pytestmark = pytest.mark.integration

TABLES = {
    "studies",
    "slides",
    "lymph_nodes",
    "slide_reports",
    "study_reports",
    "marrow_results",
    "model_versions",
    "processed_events",
    "audit_entries",
    "watched_slides",
    "users",
    "api_tokens",
    "dead_letter_replays",
    "slide_reprocessing",
    "study_orders",
    "browser_sessions",
}


def _tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list[object]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    assert migrate.current_revision(db_url) is None

    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == migrate.head_revision()
    assert _tables(db_url) == TABLES
    assert _schema_diff(db_url) == [], "migrations and models disagree"

    migrate.downgrade(db_url, "base")
    assert migrate.current_revision(db_url) is None
    assert _tables(db_url) == set()

    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == migrate.head_revision()
    assert _tables(db_url) == TABLES
    assert _schema_diff(db_url) == []


def test_each_revision_steps_down_and_up(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.downgrade(db_url, "0001")
    assert "watched_slides" not in _tables(db_url)
    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []


def test_upgrade_is_idempotent(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == migrate.head_revision()
