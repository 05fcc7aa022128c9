"""One embedded run at a time per database: a second `pathstream run` on the same database waits.

Two runs at once on one database (and its tile stores) used to break each other: both migrating
("table model_versions already exists"), both creating a slide's store ("Array already exists"),
and a slide left failed afterwards. The run holds an exclusive lock for its whole length: for a
SQLite database a `flock` on a file beside it, for PostgreSQL a session advisory lock. A run that
finds the lock taken says so and waits; the lock goes with the process, even when it is killed.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from pathstream.shared.db.engine import create_db_engine, database_unavailable
from pathstream.shared.settings import mask_database_url


def _advisory_key(url: str) -> int:
    """A stable signed 64-bit PostgreSQL advisory-lock key for embedded runs on `url`'s database."""
    digest = hashlib.sha256(f"pathstream-embedded-run/{make_url(url).database}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def exclusive_run(database_url: str, waiting: Callable[[str], None]) -> Iterator[None]:
    """Hold the embedded-run lock of `database_url` for the block; `waiting(message)` is called once
    when another run holds it (then this one waits until it ends)."""
    url = make_url(database_url)
    message = (
        f"Another `pathstream run` is using {mask_database_url(database_url)}; waiting for it to finish."
    )
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            yield
            return
        lock = Path(url.database).with_name(Path(url.database).name + ".run-lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                waiting(message)
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    engine = create_db_engine(database_url, pool_size=1, max_overflow=0)
    key = _advisory_key(database_url)
    try:
        try:
            conn = engine.connect()
        except DBAPIError as exc:
            raise database_unavailable(database_url, exc) from None
        with conn:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                waiting(message)
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()
