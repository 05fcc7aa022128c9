"""`pathstream serve SERVICE`: run one service as a FastStream consumer-group member on Kafka."""

from __future__ import annotations

import asyncio
from enum import StrEnum

import typer
from faststream import FastStream

from pathstream.shared.bus.admin import ensure_topics
from pathstream.shared.logs import get_logger
from pathstream.shared.settings import PathStreamSettings, get_settings

log = get_logger(__name__)


class Service(StrEnum):
    """Services that can run on the bus (more join as they land)."""

    DETECTOR = "detector"
    ESCNN = "escnn"
    MARROW = "marrow"
    REPORTER = "reporter"


def _build(service: Service, settings: PathStreamSettings) -> FastStream:
    # Imported here so `pathstream --help` does not pay for loading torch.
    if service == Service.DETECTOR:
        from pathstream.services.detector.app import build_detector_app

        return build_detector_app(settings)[0]
    if service == Service.ESCNN:
        from pathstream.services.escnn.app import build_escnn_app

        return build_escnn_app(settings)[0]
    if service == Service.MARROW:
        from pathstream.services.marrow.app import build_marrow_app

        return build_marrow_app(settings)[0]
    if service == Service.REPORTER:
        from pathstream.services.reporter.app import build_reporter_app
        from pathstream.shared.db.migrate import require_current_schema

        require_current_schema(settings.database_url)
        return build_reporter_app(settings)[0]
    raise AssertionError(f"unhandled service {service}")  # pragma: no cover - the enum is exhaustive


def serve(
    service: Service = typer.Argument(..., help="Which service this worker runs."),
    create_topics: bool = typer.Option(
        True, "--create-topics/--no-create-topics", help="Create missing pipeline topics first."
    ),
) -> None:
    """Join the service's consumer group and process events until SIGTERM / Ctrl-C.

    Add workers (on this or other machines) to share the work; each topic needs at least as
    many partitions as there are workers.
    """
    settings = get_settings()
    app = _build(service, settings)

    async def run() -> None:
        if create_topics:
            await ensure_topics(settings)
        log.info("service_starting", service=service.value, group_id=service.value)
        await app.run()

    asyncio.run(run())
