"""Storage faults from Python, SQLite and TileDB are named as what they are."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from pathstream.shared.db.engine import database_unavailable
from pathstream.shared.errors import ErrorCode
from pathstream.shared.events import FailureStage, SlideFailed
from pathstream.shared.storage_faults import storage_fault


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/stores/S1"), ErrorCode.DISK_FULL),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), ErrorCode.DISK_FULL),
        (OSError(errno.EFBIG, "File too large"), ErrorCode.DISK_FULL),
        (
            RuntimeError("[TileDB::IO] Error: Cannot write to file; No space left on device"),
            ErrorCode.DISK_FULL,
        ),
        (PermissionError(errno.EACCES, "Permission denied", "/out"), ErrorCode.PERMISSION_DENIED),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro"), ErrorCode.PERMISSION_DENIED),
        (OSError(errno.ELOOP, "Too many levels of symbolic links", "/in/a.svs"), ErrorCode.SLIDE_NOT_FOUND),
        (RuntimeError("Symlink loop from '/in/a.svs'"), ErrorCode.SLIDE_NOT_FOUND),
    ],
)
def test_each_fault_gets_its_code_and_names_the_place(exc: BaseException, code: ErrorCode) -> None:
    fault = storage_fault(exc, "the tile store")
    assert fault is not None and fault.code == code
    where = getattr(exc, "filename", None) or "the tile store"
    assert where in fault.message and fault.hint


def test_a_fault_deep_in_the_cause_chain_is_found() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise ValueError("write failed") from inner
    except ValueError as outer:
        fault = storage_fault(outer)
    assert fault is not None and fault.code == ErrorCode.DISK_FULL and fault.retriable


def test_other_errors_are_not_storage_faults() -> None:
    assert storage_fault(ValueError("bad pixel")) is None
    assert storage_fault(OSError(errno.ECONNREFUSED, "Connection refused")) is None


def test_a_full_sqlite_disk_is_not_a_database_that_is_down() -> None:
    wrapped = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full"))
    error = database_unavailable("sqlite:////data/pathstream.db", wrapped)
    assert error.code == ErrorCode.DISK_FULL and "running" not in error.hint
    down = OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database file"))
    assert database_unavailable("sqlite:////data/pathstream.db", down).code == ErrorCode.DATABASE_UNAVAILABLE


def test_a_failure_event_carries_the_storage_code() -> None:
    event = SlideFailed.from_exception("S1", "ST1", FailureStage.INGEST, OSError(errno.ENOSPC, "No space"))
    assert event.error_code == ErrorCode.DISK_FULL and event.retriable
