"""Datetimes read back from the database, in one time zone."""

from __future__ import annotations

from datetime import UTC, datetime


def stored_utc(value: datetime) -> datetime:
    """A datetime read from a `DateTime(timezone=True)` column -> aware, in UTC.

    SQLite hands datetimes back without a zone; PathStream writes them in UTC, so a naive value is
    UTC. PostgreSQL's aware values are converted to UTC.
    """
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
