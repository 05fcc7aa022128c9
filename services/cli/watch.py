"""`pathstream watch`: the scanner bridge from a watch folder to `slides.scanned`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer

from pathstream.services.scanner.bridge import BridgeConfig, ScannerBridge
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.startup import connect_with_retry
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.events import Specimen
from pathstream.shared.naming import DEFAULT_STUDY_PATTERN
from pathstream.shared.settings import get_settings


def watch(
    folder: Path = typer.Argument(
        ..., help="Folder the scanner writes into (must lie under PATHSTREAM_ALLOWED_ROOTS)."
    ),
    specimen: Specimen = typer.Option(
        Specimen.LYMPH_NODE, "--specimen", help="Specimen of slides in this folder."
    ),
    settle: float = typer.Option(5.0, "--settle", min=0.0, help="Seconds a slide must stay unchanged."),
    poll: float = typer.Option(2.0, "--poll", min=0.05, help="Seconds between looks at the folder."),
    mpp: float | None = typer.Option(
        None, "--mpp", help="Level-0 um/px to announce for scanners without it."
    ),
    study_pattern: str = typer.Option(
        DEFAULT_STUDY_PATTERN, "--study-pattern", help="Regex with group 'study' on the file name."
    ),
    once: bool = typer.Option(False, "--once", help="Look twice (settle apart) and exit, for cron jobs."),
) -> None:
    """Publish SlideScanned once per completed slide; remembered in the database across restarts."""
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    asyncio.run(_run(folder.resolve(), specimen, settle, poll, mpp, study_pattern, once))


async def _run(
    folder: Path, specimen: Specimen, settle: float, poll: float, mpp: float | None, pattern: str, once: bool
) -> None:
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    broker = build_broker(settings)
    config = BridgeConfig(folder, specimen, settle, poll, mpp, pattern)
    bridge = ScannerBridge(config, settings, broker, session_factory(engine))
    await connect_with_retry(broker, settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, bridge.stop)
    try:
        if once:
            await bridge.resume()
            await bridge.poll_once()
            await asyncio.sleep(settle)
            await bridge.poll_once()
        else:
            await bridge.run()
    finally:
        await broker.stop()
        engine.dispose()
