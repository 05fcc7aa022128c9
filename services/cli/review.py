"""`pathstream review ...`: the pathologist review on the command line (same rules as the API).

Acts as the user whose token is in PATHSTREAM_REVIEW_TOKEN (or --token-file): viewers read,
pathologists amend, and the audit trail records that user.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from pathstream.services.reporter.versions import lab_of
from pathstream.services.review.amendments import Amendment, Review
from pathstream.services.review.auth import DatabaseTokens, Principal
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.migrate import require_current_schema
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import LnLabel
from pathstream.shared.settings import get_settings

app = typer.Typer(
    help="Pathologist review: list, relabel, edit contours, QuPath export / import.", no_args_is_help=True
)
console = Console(highlight=False)
TokenFile = typer.Option(
    None, "--token-file", help="File holding the bearer token (else PATHSTREAM_REVIEW_TOKEN)."
)


def _session(token_file: Path | None) -> tuple[Review, Principal]:
    settings = get_settings()
    require_current_schema(settings.database_url)
    sessions = session_factory(create_db_engine(settings.database_url))
    if token_file is not None:
        bearer = token_file.read_text().strip()
    elif settings.review_token is not None:
        bearer = settings.review_token.get_secret_value()
    else:
        raise PathStreamError(
            ErrorCode.FORBIDDEN,
            "No token: the review acts as an authenticated user.",
            hint="Set PATHSTREAM_REVIEW_TOKEN or pass --token-file (from `pathstream users token`).",
        )
    principal = DatabaseTokens(sessions).authenticate(bearer)
    if principal is None:
        raise PathStreamError(
            ErrorCode.FORBIDDEN,
            "The token is unknown, revoked or expired, or its user is disabled.",
            hint="Ask for a new token (`pathstream users token USER`).",
        )
    return Review(sessions, lab_of(settings)), principal


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PathStreamError(ErrorCode.INVALID_AMENDMENT, f"Cannot read {path} as JSON: {exc}.") from None


def _first_ring(path: Path) -> list[list[float]]:
    data = _read_json(path)
    features = data.get("features", [data]) if isinstance(data, dict) else data
    for item in features if isinstance(features, list) else []:
        geometry = (item or {}).get("geometry") or {}
        if geometry.get("type") == "Polygon" and geometry.get("coordinates"):
            ring: list[list[float]] = geometry["coordinates"][0]
            return ring
    raise PathStreamError(
        ErrorCode.INVALID_AMENDMENT,
        f"{path} holds no Polygon feature.",
        hint="Export the outline from QuPath.",
    )


def _done(amendment: Amendment) -> None:
    if amendment.actions == ("sign_out",):
        console.print(
            f"study {amendment.study_id} signed out: report version {amendment.report_version} final"
        )
    elif amendment.report_version is None:
        console.print("nothing changed" if not amendment.actions else "recorded; the report is not due yet")
    else:
        console.print(
            f"{', '.join(amendment.actions)} on {', '.join(dict.fromkeys(amendment.ln_ids))}: "
            f"study {amendment.study_id} report version {amendment.report_version}"
        )


@app.command("show")
def show(
    study_id: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
    token_file: Path | None = TokenFile,
) -> None:
    """List a study's slides and LNs with scores and labels."""
    review, _ = _session(token_file)
    result = review.study(study_id)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    from pathstream.services.embedded.report_view import render_study

    console.print(render_study(result))


@app.command("audit")
def audit(study_id: str = typer.Argument(...), token_file: Path | None = TokenFile) -> None:
    """Show a study's audit trail."""
    review, _ = _session(token_file)
    table = Table("at", "user", "action", "LN", "reason")
    for entry in review.audit(study_id):
        table.add_row(entry["at"][:19], entry["actor"], entry["action"], entry["entity_id"], entry["reason"])
    console.print(table)


@app.command("label")
def label(
    ln_id: str = typer.Argument(...),
    new_label: LnLabel = typer.Argument(..., metavar="positive|negative"),
    reason: str = typer.Option(..., "--reason"),
    token_file: Path | None = TokenFile,
) -> None:
    """Change an LN's label."""
    review, principal = _session(token_file)
    _done(review.set_label(principal, ln_id, new_label, reason))


@app.command("contour")
def contour(
    ln_id: str = typer.Argument(...),
    geojson: Path = typer.Option(..., "--geojson", help="GeoJSON with the new outline (first Polygon)."),
    reason: str = typer.Option(..., "--reason"),
    token_file: Path | None = TokenFile,
) -> None:
    """Replace an LN's contour."""
    review, principal = _session(token_file)
    _done(review.set_contour(principal, ln_id, _first_ring(geojson), reason))


@app.command("add")
def add(
    slide_id: str = typer.Argument(...),
    geojson: Path = typer.Option(..., "--geojson", help="GeoJSON with the LN's outline (first Polygon)."),
    new_label: LnLabel = typer.Option(..., "--label"),
    reason: str = typer.Option(..., "--reason"),
    token_file: Path | None = TokenFile,
) -> None:
    """Add an LN the detector missed."""
    review, principal = _session(token_file)
    _done(review.add_lymph_node(principal, slide_id, _first_ring(geojson), new_label, reason))


@app.command("remove")
def remove(
    ln_id: str = typer.Argument(...),
    reason: str = typer.Option(..., "--reason"),
    token_file: Path | None = TokenFile,
) -> None:
    """Remove an LN (it stops counting; the record and audit entry stay)."""
    review, principal = _session(token_file)
    _done(review.remove_lymph_node(principal, ln_id, reason))


@app.command("deposit")
def deposit(
    ln_id: str = typer.Argument(...),
    size_mm: float = typer.Argument(..., help="Largest dimension of the largest deposit, mm."),
    reason: str = typer.Option(..., "--reason"),
    token_file: Path | None = TokenFile,
) -> None:
    """Set an LN's largest tumour deposit (mm): ITC < 0.2, micrometastasis 0.2-2, macro > 2."""
    review, principal = _session(token_file)
    _done(review.set_deposit_size(principal, ln_id, size_mm, reason))


@app.command("sign-out")
def sign_out(
    study_id: str = typer.Argument(...),
    reason: str | None = typer.Option(None, "--reason", help="Optional remark kept in the audit trail."),
    token_file: Path | None = TokenFile,
) -> None:
    """Sign the study's report out: the next version is final, signed by the token's user."""
    review, principal = _session(token_file)
    _done(review.sign_out(principal, study_id, reason))


@app.command("export")
def export(
    slide_id: str = typer.Argument(...),
    out: Path = typer.Option(..., "--out", help="GeoJSON file to write (File > Import objects in QuPath)."),
    token_file: Path | None = TokenFile,
) -> None:
    """Export a slide's LNs as QuPath-importable GeoJSON."""
    review, _ = _session(token_file)
    out.write_text(json.dumps(review.slide_geojson(slide_id), indent=1))
    console.print(f"wrote {out}")


@app.command("import")
def import_(
    slide_id: str = typer.Argument(...),
    geojson: Path = typer.Argument(..., help="The exported file after editing in QuPath."),
    reason: str = typer.Option(..., "--reason"),
    token_file: Path | None = TokenFile,
) -> None:
    """Import a QuPath-edited GeoJSON back as amendments (one report version)."""
    review, principal = _session(token_file)
    _done(review.import_geojson(principal, slide_id, _read_json(geojson), reason))
