"""`pathstream dlq list|show|replay` and `pathstream reprocess`: operators repair what failed."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.operations.dead_letters import (
    DlqEntry,
    dead_letter_topics,
    parse_coordinates,
    read_dead_letters,
    replay,
    replayed,
)
from pathstream.services.operations.reprocess import publish_reprocess, request_reprocess
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.startup import connect_with_retry
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings, get_settings

app = typer.Typer(
    help="Dead-letter topics: what could not be handled, why, and replaying it.", no_args_is_help=True
)
console = Console(highlight=False)


def _sessions(settings: PathStreamSettings) -> sessionmaker[Session]:
    migrate.upgrade(settings.database_url)
    return session_factory(create_db_engine(settings.database_url))


def _entries(settings: PathStreamSettings, topic: str | None) -> list[DlqEntry]:
    return asyncio.run(read_dead_letters(settings, dead_letter_topics(settings, topic)))


def _find(settings: PathStreamSettings, coordinates: str) -> DlqEntry:
    topic, partition, offset = parse_coordinates(coordinates)
    for entry in asyncio.run(read_dead_letters(settings, [topic])):
        if (entry.partition, entry.offset) == (partition, offset):
            return entry
    raise PathStreamError(
        ErrorCode.UNKNOWN_ENTITY,
        f"There is no DLQ record {coordinates}.",
        hint="List them with `pathstream dlq list` (records past the topic's retention are gone).",
    )


@app.command("list")
def list_dead_letters(
    topic: str | None = typer.Option(None, "--topic", help="Only this topic's DLQ (e.g. ln.detected)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per record instead of a table."),
) -> None:
    """List every dead-lettered message: where it came from, why, and whether it was replayed."""
    settings = get_settings()
    entries = _entries(settings, topic)
    done = replayed(_sessions(settings), entries)
    if as_json:
        for e in entries:
            row = {
                "coordinates": e.coordinates,
                "original": e.origin,
                "error_type": e.record.error_type,
                "error_code": e.record.error_code,
                "error": e.record.error,
                "failed_at": e.record.failed_at.isoformat(),
                "bytes": e.record.original_bytes,
                "truncated": e.record.truncated,
                "replayed_at": done[e.coordinates].replayed_at.isoformat() if e.coordinates in done else None,
            }
            typer.echo(json.dumps(row))
        return
    table = Table("record", "from", "error", "failed at", "bytes", "replayed")
    for e in entries:
        r = e.record
        table.add_row(
            e.coordinates,
            e.origin,
            f"{r.error_code or r.error_type}: {r.error[:120]}",
            r.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.original_bytes or len(r.value):,}" + (" (excerpt)" if r.truncated else ""),
            done[e.coordinates].replayed_at.strftime("%Y-%m-%d %H:%M") if e.coordinates in done else "",
        )
    console.print(table)
    console.print(f"{len(entries)} dead-lettered message(s), {len(done)} replayed.")


@app.command("show")
def show_dead_letter(
    record: str = typer.Argument(..., help="DLQ_TOPIC:PARTITION:OFFSET, as `dlq list` prints it."),
    out: Path | None = typer.Option(None, "--out", help="Write the stored value's bytes to this file."),
) -> None:
    """Show one DLQ record: its origin, error, headers and (if it is text) its value."""
    settings = get_settings()
    entry = _find(settings, record)
    dead = entry.record
    description = dead.model_dump(mode="json", exclude={"key", "value"})
    description["key"] = None if dead.key is None else dead.key.decode(errors="replace")
    description["record"] = entry.coordinates
    try:
        description["value"] = json.loads(dead.value) if not dead.truncated else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        description["value"] = None
    if description["value"] is None:
        description["value_excerpt"] = dead.value[:512].decode(errors="replace")
    typer.echo(json.dumps(description, indent=2, default=str))
    if out is not None:
        out.write_bytes(dead.value)
        console.print(f"{len(dead.value):,} bytes written to {out}")


@app.command("replay")
def replay_dead_letters(
    records: list[str] = typer.Argument(None, help="DLQ_TOPIC:PARTITION:OFFSET of each record to replay."),
    all_records: bool = typer.Option(False, "--all", help="Replay every record not replayed yet."),
    topic: str | None = typer.Option(None, "--topic", help="With --all: only this topic's DLQ."),
    reason: str = typer.Option(..., "--reason", help="What was fixed (kept with the replay)."),
    by: str = typer.Option("", "--by", help="Who replays (default: the login name)."),
) -> None:
    """Send dead-lettered messages back to their topics once their cause is fixed (each once only)."""
    settings = get_settings()
    if bool(records) == all_records:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            "Name the records to replay, or pass --all (not both).",
            hint="See them with `pathstream dlq list`.",
        )
    if not reason.strip():
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION, "--reason is empty.", hint="Say what was fixed."
        )
    entries = _entries(settings, topic) if all_records else [_find(settings, r) for r in records]
    sessions = _sessions(settings)
    who = by or getpass.getuser()

    async def send() -> tuple[int, int]:
        broker = build_broker(settings)
        await connect_with_retry(broker, settings)
        sent = skipped = 0
        try:
            for entry in entries:
                if await replay(broker, settings, sessions, entry, replayed_by=who, reason=reason):
                    sent += 1
                    console.print(f"replayed {entry.coordinates} -> {entry.record.original_topic}")
                else:
                    skipped += 1
                    console.print(f"{entry.coordinates} was replayed before; not sent again")
        finally:
            await broker.stop()
        return sent, skipped

    sent, skipped = asyncio.run(send())
    console.print(f"{sent} replayed, {skipped} already replayed.")


def reprocess(
    slide_id: str = typer.Argument(..., help="The slide to process again (as reports and logs name it)."),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the request)."),
    mpp: float | None = typer.Option(None, "--mpp", min=0.05, max=20.0, help="Corrected level-0 um/px."),
    force: bool = typer.Option(False, "--force", help="Reprocess a slide that did not fail."),
    by: str = typer.Option("", "--by", help="Who asks (default: the login name)."),
) -> None:
    """Announce a failed slide again (e.g. with a corrected --mpp) so the services process it anew."""
    settings = get_settings()
    sessions = _sessions(settings)
    request = request_reprocess(
        sessions,
        settings,
        slide_id,
        mpp=mpp,
        force=force,
        requested_by=by or getpass.getuser(),
        reason=reason,
    )

    async def send() -> None:
        broker = build_broker(settings)
        await connect_with_retry(broker, settings)
        try:
            await publish_reprocess(broker, settings, sessions, request)
        finally:
            await broker.stop()

    asyncio.run(send())
    console.print(
        f"slide {slide_id} ({request.previous_status}) announced again as attempt {request.attempt}"
        + (f" at {mpp:g} um/px" if mpp is not None else "")
        + f"; event {request.event.event_id}"
    )
