"""Alembic environment: runs PathStream's migrations against the URL given by
`pathstream.shared.db.migrate`."""

from __future__ import annotations

from alembic import context

from pathstream.shared.db.engine import create_db_engine
from pathstream.shared.db.models import Base
from pathstream.shared.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    # The URL travels as an attribute, not through alembic.ini, so passwords with '%' survive.
    return config.attributes.get("database_url") or get_settings().database_url


def run_migrations_offline() -> None:
    """Emit SQL for the migrations without connecting (`pathstream db upgrade --sql`)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply the migrations over a real connection, each in its own transaction."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
