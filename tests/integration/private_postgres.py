"""A private PostgreSQL server for tests that stop and start the database mid-study.

The suite's shared server (`infra/local/postgres-up.sh`) must not go down under other tests, so fault
drills get their own: Debian's PostgreSQL binaries, a fresh data directory (`initdb`), loopback only,
trust authentication for the `pathstream` role (no password on a test server nothing else reaches).
As root, PostgreSQL refuses to run, so the server runs as the `postgres` user the Debian package made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.integration.kafka_broker import free_port

ROLE = "pathstream"


def _bin_dir() -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: run infra/local/postgres-up.sh (it installs it)")
    return versions[-1].parent


class PrivatePostgres:
    """One PostgreSQL server on 127.0.0.1:`port` with its data in a private temporary folder."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bin = _bin_dir()
        # Not under pytest's tmp_path: that is private to root (0700) and the server runs as postgres.
        self.home = Path(tempfile.mkdtemp(prefix="pathstream-pg-"))
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.home, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-sync")
        self.admin_url = f"postgresql+psycopg://{ROLE}@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr}{done.stdout}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.home} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop it: `fast` (clients disconnected, clean shutdown) or `immediate` (as a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create database `name`; returns its SQLAlchemy URL."""
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def remove(self) -> None:
        """Stop the server if it runs and delete its data."""
        with contextlib.suppress(RuntimeError):  # it was not running
            self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)
