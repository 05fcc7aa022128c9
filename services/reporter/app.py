"""The reporter as a FastStream service: consumer group `reporter` on every result topic.

`pathstream serve reporter` runs it against PostgreSQL. One subscriber reads `slides.scanned`,
`slides.detected`, `ln.scored`, `marrow.classified` and `slides.failed`; each message is parsed by
its topic's event type (a body that does not validate goes to the DLQ), applied in one transaction
and its offset committed only after the resulting `ReportReady` events were acknowledged by the
brokers and marked published. On start the reporter first publishes any version an earlier run
committed but did not get out, and every `PATHSTREAM_REPORT_OUTBOX_POLL_S` seconds it closes the
slide sets of order-less studies idle for `PATHSTREAM_STUDY_SETTLE_S`, publishes the versions that
orders, amendments and sign-outs (review API and CLI) committed, and sends every version to the LIS
as an ORU^R01 when `PATHSTREAM_LIS_MLLP_HOST` is set (hl7_outbox.py). With
`PATHSTREAM_ORDER_MLLP_PORT` set it also takes the laboratory's HL7 v2 orders over MLLP
(order_listener.py). Run more than one reporter for availability; the study row lock keeps version
numbers unique (only one of them should listen for orders, or put them behind one address).
"""

from __future__ import annotations

import asyncio
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.handler import CONSUMER, REPORTER_INPUTS, ReporterHandler
from pathstream.services.reporter.hl7_outbox import LisSender
from pathstream.services.reporter.loader import reporter_handler
from pathstream.services.reporter.order_listener import start_order_listener
from pathstream.services.reporter.orders.intake import OrderIntake
from pathstream.services.reporter.versions import lab_of
from pathstream.shared.bus.app import service_app
from pathstream.shared.bus.broker import build_broker
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.bus.subscribe import consumer_options
from pathstream.shared.events import Event, ReportReady
from pathstream.shared.logs import get_logger
from pathstream.shared.settings import PathStreamSettings

log = get_logger(__name__)

GROUP_ID = CONSUMER


async def publish_reports(
    broker: KafkaBroker, settings: PathStreamSettings, handler: ReporterHandler, reports: list[ReportReady]
) -> None:
    """Publish each report version in order and mark it published once the brokers have it."""
    for report in reports:
        await publish_event(broker, settings, report)
        await asyncio.to_thread(handler.published, report)
        log.info(
            "report_published",
            study_id=report.study_id,
            report_version=report.report_version,
            pn_category=None if report.pn_category is None else report.pn_category.value,
        )


def build_reporter_app(
    settings: PathStreamSettings, sessions: sessionmaker[Session] | None = None
) -> tuple[FastStream, KafkaBroker]:
    """The reporter's FastStream app and broker; `sessions` defaults to `PATHSTREAM_DATABASE_URL`."""
    handler = reporter_handler(settings, sessions)
    handler.wait_out_outages = True  # the delivery policy waits outages out (shared/bus/delivery.py)
    broker = build_broker(settings, description="PathStream reporter")
    event_types: dict[str, type[Event]] = {settings.topic(t.TOPIC): t for t in REPORTER_INPUTS}
    # One publisher at a time, so versions leave in order and none is sent twice by this process.
    publishing = asyncio.Lock()

    async def reporter_consume(body: dict[str, Any], message: KafkaMessage) -> None:
        topic = message.raw_message.topic  # type: ignore[union-attr]
        # A ValidationError here sends the message to the DLQ (see pathstream.shared.bus.dead_letter).
        event = event_types[topic].model_validate(body)
        await asyncio.to_thread(handler.handle, event)
        async with publishing:
            # Re-read under the lock: the outbox sweeper may have published some meanwhile.
            reports = await asyncio.to_thread(handler.pending, event.study_id)  # type: ignore[attr-defined]
            await publish_reports(broker, settings, handler, reports)

    broker.subscriber(*event_types, **consumer_options(settings, GROUP_ID))(reporter_consume)
    app = service_app(broker, settings, GROUP_ID)

    sweeper: list[asyncio.Task[None]] = []

    lis = LisSender(settings, handler.sessions)
    listeners: list[asyncio.base_events.Server] = []

    async def sweep_outbox() -> None:
        # Amendments, sign-outs and orders (review API, CLI, MLLP) commit report versions without a
        # pipeline event, and order-less studies close after the settle time; this loop publishes
        # those versions (and anything an earlier publish left behind) and sends them to the LIS.
        while True:
            try:
                await asyncio.to_thread(handler.settle)
                async with publishing:
                    await publish_reports(broker, settings, handler, await asyncio.to_thread(handler.pending))
                await lis.send_due()
            except Exception:  # a broker or database outage: log it and try again next sweep
                log.warning("outbox_sweep_failed", exc_info=True)
            await asyncio.sleep(settings.report_outbox_poll_s)

    @app.after_startup
    async def start_outbox_sweeper() -> None:
        if settings.order_mllp_port is not None:
            intake = OrderIntake(handler.sessions, lab_of(settings))
            listeners.append(
                await start_order_listener(settings.order_mllp_host, settings.order_mllp_port, intake)
            )
        sweeper.append(asyncio.create_task(sweep_outbox()))

    @app.on_shutdown
    async def stop_outbox_sweeper() -> None:
        for task in sweeper:
            task.cancel()
        for server in listeners:
            server.close()
            await server.wait_closed()

    return app, broker
