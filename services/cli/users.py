"""`pathstream users ...`: review-API users and their bearer tokens (stored as hashes only)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Column, Table

from pathstream.services.review.auth import DatabaseTokens
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.migrate import require_current_schema
from pathstream.shared.db.models import Role
from pathstream.shared.settings import get_settings

app = typer.Typer(help="Users of the review API and their bearer tokens.", no_args_is_help=True)
console = Console(highlight=False)


def _tokens() -> DatabaseTokens:
    url = get_settings().database_url
    require_current_schema(url)
    return DatabaseTokens(session_factory(create_db_engine(url)))


@app.command("add")
def add(
    user_id: str = typer.Argument(..., help="Login id, recorded in the audit trail (e.g. jdoe)."),
    role: Role = typer.Option(
        ...,
        "--role",
        help="viewer (read), pathologist (read, amend, sign out) or laboratory (read, post orders).",
    ),
    name: str = typer.Option("", "--name", help="Display name."),
) -> None:
    """Create a user."""
    _tokens().add_user(user_id, role, name)
    console.print(
        f"user {user_id} ({role.value}) created; issue a token with `pathstream users token {user_id}`"
    )


@app.command("list")
def list_users() -> None:
    """List users."""
    table = Table("user", "name", "role", "status")
    for user in _tokens().users():
        table.add_row(
            user.user_id, user.display_name, user.role.value, "disabled" if user.disabled_at else "active"
        )
    console.print(table)


@app.command("disable")
def disable(user_id: str = typer.Argument(...)) -> None:
    """Withdraw a user's access (every token of theirs stops working)."""
    _tokens().set_disabled(user_id, True)
    console.print(f"user {user_id} disabled")


@app.command("enable")
def enable(user_id: str = typer.Argument(...)) -> None:
    """Restore a disabled user's access."""
    _tokens().set_disabled(user_id, False)
    console.print(f"user {user_id} enabled")


@app.command("token")
def token(
    user_id: str = typer.Argument(...),
    days: int = typer.Option(90, "--days", min=0, help="Validity in days; 0: until revoked."),
) -> None:
    """Issue a bearer token. It is printed once (stdout) and only its hash is stored."""
    issued = _tokens().issue(user_id, days or None)
    expiry = issued.expires_at.isoformat() if issued.expires_at else "never (revoke to end it)"
    Console(stderr=True, highlight=False).print(f"token {issued.token_id} for {user_id}, expires {expiry}")
    print(issued.token)


@app.command("tokens")
def tokens(user_id: str | None = typer.Argument(None)) -> None:
    """List tokens (ids and dates, never the secrets)."""
    table = Table("user", "created", "expires", "revoked", "last used")
    table.columns.insert(0, Column("token id", no_wrap=True))
    for row in _tokens().tokens(user_id):
        table.add_row(
            row.token_id,
            row.user_id,
            str(row.created_at)[:19],
            str(row.expires_at)[:19] if row.expires_at else "never",
            str(row.revoked_at)[:19] if row.revoked_at else "",
            str(row.last_used_at)[:19] if row.last_used_at else "",
        )
    console.print(table)


@app.command("revoke")
def revoke(token_id: str = typer.Argument(..., help="The token id (`pathstream users tokens`).")) -> None:
    """Revoke a token; requests with it are refused from now on."""
    _tokens().revoke(token_id)
    console.print(f"token {token_id} revoked")
