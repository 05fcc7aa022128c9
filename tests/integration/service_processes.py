"""PathStream services as child processes (`python -m pathstream.services.cli ...`), for end-to-end tests and
the pipeline benchmark: each logs to its own file and is stopped with SIGTERM, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


class Processes:
    """Child `pathstream` processes, stopped (SIGTERM, then SIGKILL) at the end of the test."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start `pathstream ARGS...` as `name`, logging to `<logs>/<name>.log`."""
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "pathstream.services.cli", *args], env=self.env, stdout=log, stderr=log
        )
        self.running[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL `name` (no chance to finish or release anything) and wait for it."""
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def assert_alive(self) -> None:
        """Fail when a started process has exited."""
        dead = {n: p.returncode for n, p in self.running.items() if p.poll() is not None}
        assert not dead, f"processes exited early: {dead}; logs in {self.logs}"

    def stop(self) -> None:
        """SIGTERM every process; SIGKILL what has not exited within 60 s."""
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
