"""Apply, revert and inspect Alembic migrations for a database URL (`pathstream db ...`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from pathstream.shared.db.engine import create_db_engine, database_unavailable
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import mask_database_url, normalise_database_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    """Return an Alembic Config for PathStream's migrations aimed at `database_url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = normalise_database_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head", sql: bool = False) -> None:
    """Migrate `database_url` up to `revision`; with `sql`, print the SQL instead of running it."""
    _run(lambda cfg: command.upgrade(cfg, revision, sql=sql), database_url)


def downgrade(database_url: str, revision: str) -> None:
    """Migrate `database_url` down to `revision` (`base` removes every PathStream table)."""
    _run(lambda cfg: command.downgrade(cfg, revision), database_url)


def current_revision(database_url: str) -> str | None:
    """Return the revision the database is at, or None when no migration was applied."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise database_unavailable(database_url, exc) from None
    finally:
        engine.dispose()


def head_revision() -> str:
    """Return the newest revision PathStream ships."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "no migrations found"
    return head


def require_current_schema(database_url: str) -> None:
    """Raise `PathStreamError(INVALID_CONFIGURATION)` unless the database is at the newest revision.

    Services call this at start: writing to an older schema would fail on every message.
    """
    current, head = current_revision(database_url), head_revision()
    if current != head:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"Database {mask_database_url(database_url)} is at schema revision {current or 'none'}; "
            f"this PathStream needs {head}.",
            hint="Run `pathstream db upgrade` (with the same PATHSTREAM_DATABASE_URL) first.",
        )


def _run(action, database_url: str) -> None:  # type: ignore[no-untyped-def]
    try:
        action(alembic_config(database_url))
    except OperationalError as exc:
        raise database_unavailable(database_url, exc) from None
