"""`pathstream api ...`: serve the review API, or print its OpenAPI document."""

from __future__ import annotations

import json
from datetime import timedelta

import typer

from pathstream.shared.settings import get_settings

app = typer.Typer(help="The pathologist review API (FastAPI).", no_args_is_help=True)


def _build():  # type: ignore[no-untyped-def]
    from pathstream.services.reporter.orders.intake import OrderIntake
    from pathstream.services.reporter.versions import lab_of
    from pathstream.services.review.amendments import Review
    from pathstream.services.review.api import build_api
    from pathstream.services.review.auth import DatabaseTokens
    from pathstream.services.review.web.routes import Workstation
    from pathstream.services.review.web.sessions import BrowserSessions
    from pathstream.services.review.web.tiles import SlideTiles
    from pathstream.shared.db.engine import create_db_engine, session_factory

    settings = get_settings()
    sessions = session_factory(create_db_engine(settings.database_url))
    lab = lab_of(settings)
    workstation = Workstation(
        BrowserSessions(sessions, timedelta(hours=settings.ui_session_hours)),
        SlideTiles(sessions, settings.allowed_roots),
        [settings.artifact_root],
        settings.ui_cookie_secure,
    )
    return build_api(
        Review(sessions, lab),
        DatabaseTokens(sessions),
        settings.api_max_body_bytes,
        OrderIntake(sessions, lab),
        workstation,
    )


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 in a container)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535),
) -> None:
    """Serve the API with uvicorn (behind the hospital's TLS-terminating proxy)."""
    import uvicorn

    from pathstream.shared.db.migrate import require_current_schema

    require_current_schema(get_settings().database_url)
    uvicorn.run(_build(), host=host, port=port, log_config=None, proxy_headers=True)


@app.command("openapi")
def openapi() -> None:
    """Print the API's OpenAPI document (JSON)."""
    print(json.dumps(_build().openapi(), indent=2))
