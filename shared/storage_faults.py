"""Faults of the machine's storage, named as what they are: a full disk, a refused permission, a
read-only file system, a symbolic-link loop.

Python, SQLite and TileDB each report these their own way (an `OSError` errno, "database or disk
is full", "No space left on device" in a TileDB message). `storage_fault` recognises all of them,
anywhere in an exception's cause chain, so the CLI and the failure events say "the disk is full"
instead of an internal error or "check that the database is running".
"""

from __future__ import annotations

import errno

from pathstream.shared.errors import ErrorCode, PathStreamError

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM}
_FULL_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded", "file too large")
_DENIED_WORDS = ("permission denied", "read-only file system", "attempt to write a readonly database")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
        orig = getattr(seen[-1], "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(orig, BaseException) and orig not in seen:
            seen.append(orig)
    return seen


def _where(exc: BaseException, subject: str) -> str:
    filename = getattr(exc, "filename", None)
    return f"{filename}" if filename else subject


def storage_fault(exc: BaseException, subject: str = "PathStream's data") -> PathStreamError | None:
    """The `PathStreamError` for a storage fault anywhere in `exc`'s chain, or None when there is
    none. `subject` names what was being written or read when the fault has no file name.
    Codes: DISK_FULL (retriable: freeing space fixes it), PERMISSION_DENIED, SLIDE_NOT_FOUND
    (symbolic-link loop)."""
    for link in _chain(exc):
        number = getattr(link, "errno", None) if isinstance(link, OSError) else None
        text = str(link).lower()
        where = _where(link, subject)
        if number in _FULL_ERRNOS or any(words in text for words in _FULL_WORDS):
            return PathStreamError(
                ErrorCode.DISK_FULL,
                f"The disk holding {where} is full ({str(link).strip().splitlines()[0]}); nothing "
                "half-written was kept.",
                hint="Free space on that disk (df -h shows it) or point PATHSTREAM_DATA_DIR / --out at "
                "a disk with room, then run the same command again.",
                retriable=True,
            )
        if number in _DENIED_ERRNOS or number == errno.EROFS or any(w in text for w in _DENIED_WORDS):
            return PathStreamError(
                ErrorCode.PERMISSION_DENIED,
                f"PathStream may not write or read {where} ({str(link).strip().splitlines()[0]}).",
                hint="Give the user running PathStream access to it (or make the file system writable), "
                "or choose another folder.",
            )
        if number == errno.ELOOP or (isinstance(link, RuntimeError) and "symlink loop" in text):
            return PathStreamError(
                ErrorCode.SLIDE_NOT_FOUND,
                f"{where} is a loop of symbolic links that never reaches a file.",
                hint="Point the link at the slide file itself (ls -l shows where each link goes).",
            )
    return None
