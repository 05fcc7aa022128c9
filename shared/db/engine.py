"""Engines and sessions for PostgreSQL (production) and SQLite (embedded), from one URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import mask_database_url, normalise_database_url
from pathstream.shared.storage_faults import storage_fault

SUPPORTED_DIALECTS = ("postgresql", "sqlite")


def _enable_sqlite_safety(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # SQLite ignores foreign keys unless asked, per connection.
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the reporter write while the review API reads.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """Return an Engine for a PostgreSQL or SQLite URL; the SQLite file's folder is created.

    Raises `PathStreamError(INVALID_CONFIGURATION)` for an unparsable URL or another dialect.
    """
    url = normalise_database_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"PATHSTREAM_DATABASE_URL is not a database URL: {exc}.",
            hint="Use postgresql+psycopg://user:password@host:5432/dbname or sqlite:///path/to/file.db.",
        ) from None
    if parsed.get_backend_name() not in SUPPORTED_DIALECTS:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"Database {mask_database_url(url)} uses {parsed.get_backend_name()}, which PathStream "
            "does not support.",
            hint="Use PostgreSQL (production) or SQLite (embedded).",
        )
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _enable_sqlite_safety)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def database_unavailable(url: str, exc: DBAPIError) -> PathStreamError:
    """Wrap a connection failure into a retriable error that names the (masked) database; a full
    disk or a refused permission (SQLite) is named as such (`storage_fault`)."""
    fault = storage_fault(exc, f"the database {mask_database_url(url)}")
    if fault is not None:
        return fault
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return PathStreamError(
        ErrorCode.DATABASE_UNAVAILABLE,
        f"Cannot use the database {mask_database_url(url)}: {reason}.",
        hint="Check that it is running and that PATHSTREAM_DATABASE_URL is right.",
        retriable=True,
    )
