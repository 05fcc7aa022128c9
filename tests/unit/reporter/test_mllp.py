"""MLLP framing over real loopback sockets: PathStream's sender against the independent test
receiver, PathStream's server against a raw socket, and every way a peer can fail."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pathstream.services.reporter.hl7v2.mllp import END, START, send_mllp, serve_mllp
from pathstream.shared.errors import ErrorCode, PathStreamError
from tests.mllp_receiver import MllpReceiver, refused

MESSAGE = "MSH|^~\\&|PathStream|LAB|LIS|HOSP|20261203||ORU^R01^ORU_R01|c1|P|2.5.1\rOBX|1|ST|x||Ünïcode\r"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_send_waits_for_the_receivers_ack_and_the_text_arrives_intact() -> None:
    with MllpReceiver() as lis:
        ack = asyncio.run(send_mllp("127.0.0.1", lis.port, MESSAGE, timeout_s=5))
        assert "MSA|AA|c1|" in ack
        assert lis.raw == [MESSAGE]


def test_an_unreachable_a_silent_and_a_hanging_up_receiver_are_retriable_lis_unavailable() -> None:
    port = _free_port()
    assert refused(port)
    with pytest.raises(PathStreamError) as caught:
        asyncio.run(send_mllp("127.0.0.1", port, MESSAGE, timeout_s=2))
    assert caught.value.code == ErrorCode.LIS_UNAVAILABLE and caught.value.retriable
    with MllpReceiver() as lis:
        lis.ack_code = None  # hangs up without answering
        with pytest.raises(PathStreamError, match=r"without an acknowledgement|closed"):
            asyncio.run(send_mllp("127.0.0.1", lis.port, MESSAGE, timeout_s=2))

    async def silent() -> None:
        async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(10)

        server = await asyncio.start_server(never, "127.0.0.1", 0)
        silent_port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(PathStreamError, match="no answer in time"):
                await send_mllp("127.0.0.1", silent_port, MESSAGE, timeout_s=0.5)
        finally:
            server.close()

    asyncio.run(silent())


def _raw_exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(payload)
        received = b""
        while not received.endswith(END):
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_the_server_answers_each_frame_skips_noise_and_drops_an_oversized_frame() -> None:
    async def scenario() -> None:
        seen: list[str] = []

        async def handle(text: str) -> str:
            seen.append(text)
            return f"ACK for {len(seen)}"

        server = await serve_mllp("127.0.0.1", 0, handle, max_bytes=1024)
        port = server.sockets[0].getsockname()[1]
        try:
            answer = await asyncio.to_thread(_raw_exchange, port, b"\n" + START + MESSAGE.encode() + END)
            assert answer == START + b"ACK for 1" + END
            assert seen == [MESSAGE]
            dropped = await asyncio.to_thread(_raw_exchange, port, START + b"x" * 5000 + END)
            assert dropped == b""  # closed, not answered
            answer = await asyncio.to_thread(_raw_exchange, port, START + b"again" + END)
            assert answer == START + b"ACK for 2" + END  # still serving
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_the_receiver_can_go_down_and_come_back_on_the_same_port() -> None:
    lis = MllpReceiver().start()
    port = lis.port
    lis.stop()
    assert refused(port)
    lis.start()
    try:
        assert lis.port == port
        assert "MSA|AA" in asyncio.run(send_mllp("127.0.0.1", port, MESSAGE, timeout_s=5))
    finally:
        lis.stop()
