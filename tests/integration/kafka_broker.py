"""A private Apache Kafka broker for tests that stop, restart or start it late.

It is the same broker `infra/local/kafka-up.sh` starts for the whole suite, on free loopback ports,
with its state (data, log, pid) in a test's own folder, started and stopped by the same scripts.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from pathstream.shared.settings import PathStreamSettings

REPO = Path(__file__).resolve().parents[2]
KAFKA_UP = REPO / "infra" / "local" / "kafka-up.sh"
KAFKA_DOWN = REPO / "infra" / "local" / "kafka-down.sh"


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateKafka:
    """One single-node KRaft broker on 127.0.0.1:`port`, its state under `state_dir`."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.controller_port = free_port()
        self.state_dir = state_dir
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._starting: subprocess.Popen[str] | None = None

    def settings(self, data_dir: Path, session_timeout_ms: int = 2000) -> PathStreamSettings:
        """Client settings for this broker: topics under `restart.`, quick group liveness."""
        return PathStreamSettings(
            data_dir=data_dir,
            kafka_bootstrap=self.bootstrap,
            topic_prefix="restart.",
            kafka_session_timeout_ms=session_timeout_ms,
            kafka_heartbeat_interval_ms=500,
            kafka_connect_timeout_s=30,
        )

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATHSTREAM_RUN_DIR": str(self.state_dir),
            "PATHSTREAM_LOCAL_KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }

    def start(self) -> str:
        """Start (or restart on its kept data) and wait until it answers; returns kafka-up's line."""
        done = subprocess.run(
            [str(KAFKA_UP), str(self.port)], env=self._env(), capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            # A broker that began but did not answer in time would outlive the test.
            self.stop()
            raise RuntimeError(f"kafka-up.sh failed ({done.returncode}): {done.stderr}{done.stdout}")
        return done.stdout.strip()

    def start_in_background(self) -> None:
        """Begin starting it without waiting (for clients that must wait for a late broker)."""
        self._starting = subprocess.Popen(
            [str(KAFKA_UP), str(self.port)],
            env=self._env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop it by pid (clean shutdown); without `keep_data` its storage is deleted too."""
        if self._starting is not None:
            # Reading its output to the end also keeps kafka-up from blocking on a full pipe.
            self._starting.communicate(timeout=120)
            self._starting = None
        args = [str(KAFKA_DOWN), str(self.port)] + (["--keep-data"] if keep_data else [])
        subprocess.run(args, env=self._env(), capture_output=True, text=True, timeout=60, check=True)
