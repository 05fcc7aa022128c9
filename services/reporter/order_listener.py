"""HL7 v2 orders over MLLP into the reporter: each OML^O21 / OML^O33 / ORM^O01 is stored (one
transaction) and answered with an ACK: AA when stored, AE naming the problem when the order is
invalid or contradicts the stored one, AR when the message cannot be read at all. Nothing about
the patient is logged."""

from __future__ import annotations

import asyncio

from pathstream.services.reporter.hl7v2.mllp import serve_mllp
from pathstream.services.reporter.hl7v2.orders import order_ack, parse_order_message
from pathstream.services.reporter.orders.intake import OrderIntake
from pathstream.shared.errors import PathStreamError
from pathstream.shared.logs import get_logger

log = get_logger(__name__)


def order_handler(intake: OrderIntake):  # type: ignore[no-untyped-def]
    """The MLLP message handler: HL7 v2 order text in, ACK text out (never raises for bad input)."""

    async def handle(text: str) -> str:
        try:
            order = parse_order_message(text)
            await asyncio.to_thread(intake.receive, order)
        except PathStreamError as exc:
            log.warning("order_refused", error_code=exc.code.value, error=exc.message)
            return order_ack(text, exc)
        return order_ack(text, None)

    return handle


async def start_order_listener(host: str, port: int, intake: OrderIntake) -> asyncio.base_events.Server:
    """Listen for HL7 v2 orders on host:port (MLLP); returns the started server."""
    server = await serve_mllp(host, port, order_handler(intake))
    log.info("order_listener_started", host=host, port=server.sockets[0].getsockname()[1])
    return server
