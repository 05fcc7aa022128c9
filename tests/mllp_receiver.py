"""A test LIS: an MLLP receiver written independently of PathStream's MLLP code (plain sockets,
python-hl7 to read what arrives), answering each message with a configurable ACK.

    with MllpReceiver() as lis:            # listens on a free loopback port
        ... send to lis.port ...
        lis.messages                       # every message received (python-hl7 parsed)
        lis.ack_code = "AE"                # answer the next ones with AE
        lis.stop(); lis.start()            # down and back up on the same port
"""

from __future__ import annotations

import socket
import socketserver
import threading
from datetime import UTC, datetime
from typing import Any

import hl7

START, END = b"\x0b", b"\x1c\x0d"


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self.request.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while END in buffer:
                framed, buffer = buffer.split(END, 1)
                text = framed[framed.index(START) + 1 :].decode("utf-8")
                answer = self.server.owner.receive(text)
                if answer is None:
                    return  # hang up without answering
                self.request.sendall(START + answer.encode("utf-8") + END)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    owner: MllpReceiver


class MllpReceiver:
    """A threaded MLLP listener on 127.0.0.1 that records messages and answers with `ack_code`
    ("AA", "AE", "AR", or None to close the connection without answering)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.ack_code: str | None = "AA"
        self.ack_text = "filed"
        self.messages: list[Any] = []
        self.raw: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def receive(self, text: str) -> str | None:
        """Record `text` and return the ACK to send (None: send none)."""
        message = hl7.parse(text)
        with self._lock:
            self.raw.append(text)
            self.messages.append(message)
            code = self.ack_code
        if code is None:
            return None
        control = str(message.segment("MSH")[10])
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        msh = f"MSH|^~\\&|TESTLIS|HOSP|PathStream|LAB|{stamp}||ACK^R01^ACK|A{stamp}|P|2.5.1"
        return f"{msh}\rMSA|{code}|{control}|{self.ack_text}\r"

    def start(self) -> MllpReceiver:
        """Listen (again) on `port` (a free one the first time when 0)."""
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; connecting to `port` is refused until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MllpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def refused(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0
