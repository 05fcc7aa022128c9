"""`pathstream db ...`: apply, revert and inspect schema migrations."""

from __future__ import annotations

import typer
from rich.console import Console

from pathstream.shared.db import migrate
from pathstream.shared.settings import get_settings, mask_database_url

app = typer.Typer(
    help="Database schema migrations (Alembic) for PATHSTREAM_DATABASE_URL.", no_args_is_help=True
)
console = Console(highlight=False)


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision."),
    sql: bool = typer.Option(False, "--sql", help="Print the SQL instead of running it."),
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    url = get_settings().database_url
    migrate.upgrade(url, revision, sql=sql)
    if not sql:
        console.print(f"database {mask_database_url(url)} is at revision {migrate.current_revision(url)}")


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision; 'base' removes all tables."),
) -> None:
    """Revert migrations down to REVISION."""
    url = get_settings().database_url
    migrate.downgrade(url, revision)
    console.print(
        f"database {mask_database_url(url)} is at revision {migrate.current_revision(url) or 'base'}"
    )


@app.command()
def current() -> None:
    """Print the database's revision and the newest one PathStream ships."""
    url = get_settings().database_url
    console.print(
        f"database {mask_database_url(url)}: revision {migrate.current_revision(url) or 'none'} "
        f"(newest: {migrate.head_revision()})"
    )
