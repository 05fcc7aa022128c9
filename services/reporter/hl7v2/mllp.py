"""MLLP (HL7's Minimal Lower Layer Protocol, release 2) over TCP: each message travels as
0x0B <message> 0x1C 0x0D, UTF-8 encoded.

`send_mllp` sends one message and waits for one answer (the ACK); `serve_mllp` answers every
framed message on a connection with the handler's reply. Frames larger than `MAX_FRAME_BYTES`
close the connection rather than grow a buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger

log = get_logger(__name__)

START = b"\x0b"
END = b"\x1c\x0d"
MAX_FRAME_BYTES = 4 * 1024 * 1024


def frame(message: str) -> bytes:
    """HL7 ER7 text (segments separated by CR) -> one MLLP frame of UTF-8 bytes."""
    return START + message.encode("utf-8") + END


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = MAX_FRAME_BYTES) -> str | None:
    """The next framed message from `reader` as text, or None when the peer closed cleanly.

    Bytes before the start byte are skipped (MLLP allows none, but some senders send a newline).
    Raises ValueError on a frame over `max_bytes` or one cut off by the peer.
    """
    buffer = bytearray()
    started = False
    while True:
        try:
            chunk = await reader.readuntil(END) if started else await reader.readuntil(START)
        except asyncio.IncompleteReadError as exc:
            if not started and not exc.partial.strip():
                return None
            raise ValueError("the peer closed the connection inside an MLLP frame") from None
        except asyncio.LimitOverrunError as exc:
            # The stream buffer filled before the delimiter: move what is there and read on.
            chunk = await reader.readexactly(exc.consumed)
            if started:
                buffer += chunk
                if len(buffer) > max_bytes:
                    raise ValueError(f"MLLP frame larger than {max_bytes} bytes") from None
            continue
        if not started:
            started = True
            continue
        buffer += chunk[: -len(END)]
        if len(buffer) > max_bytes:
            raise ValueError(f"MLLP frame larger than {max_bytes} bytes")
        return buffer.decode("utf-8", errors="replace")


async def send_mllp(host: str, port: int, message: str, timeout_s: float) -> str:
    """Send `message` (ER7 text) to host:port over MLLP and return the framed answer's text.

    Raises PathStreamError(LIS_UNAVAILABLE, retriable=True) when the peer cannot be reached, does
    not answer within `timeout_s` seconds, or closes the connection without an answer.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(frame(message))
            await writer.drain()
            answer = await read_frame(reader)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise PathStreamError(
            ErrorCode.LIS_UNAVAILABLE,
            f"The LIS at {host}:{port} did not take the message: {reason}.",
            hint="PathStream retries with back-off; check PATHSTREAM_LIS_MLLP_HOST/PORT and the LIS.",
            retriable=True,
        ) from None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
    if answer is None:
        raise PathStreamError(
            ErrorCode.LIS_UNAVAILABLE,
            f"The LIS at {host}:{port} closed the connection without an acknowledgement.",
            hint="PathStream retries with back-off.",
            retriable=True,
        )
    return answer


async def serve_mllp(
    host: str, port: int, handle: Callable[[str], Awaitable[str]], max_bytes: int = MAX_FRAME_BYTES
) -> asyncio.Server:
    """Start an MLLP server on host:port that answers each message with `await handle(text)`.

    A connection sending a malformed or oversized frame is closed; the server keeps serving.
    Returns the started `asyncio.Server` (close it to stop).
    """

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    text = await read_frame(reader, max_bytes)
                except ValueError as exc:
                    log.warning("mllp_frame_refused", peer=str(peer), error=str(exc))
                    return
                if text is None:
                    return
                writer.write(frame(await handle(text)))
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.info("mllp_connection_lost", peer=str(peer), error=str(exc))
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    return await asyncio.start_server(connection, host, port, limit=256 * 1024)
