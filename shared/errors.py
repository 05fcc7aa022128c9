"""Error codes and the exception every PathStream component raises for a problem a person must fix.

A `PathStreamError` carries a stable machine code (what goes into `SlideFailed.error_code` and the
CLI's exit message), a sentence that names the problem, and a hint saying what to do about it. The
CLI prints `message` and `hint` without a traceback; services turn the same fields into events.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes shared by all services (values never change once released)."""

    # Input slides and paths.
    SLIDE_NOT_FOUND = "SLIDE_NOT_FOUND"
    SLIDE_EMPTY = "SLIDE_EMPTY"
    SLIDE_CORRUPT = "SLIDE_CORRUPT"
    NOT_A_SLIDE = "NOT_A_SLIDE"
    MPP_MISSING = "MPP_MISSING"
    MPP_ABSURD = "MPP_ABSURD"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    OUTSIDE_ALLOWED_ROOTS = "OUTSIDE_ALLOWED_ROOTS"
    SCAN_TOO_COARSE = "SCAN_TOO_COARSE"
    SLIDE_ID_CONFLICT = "SLIDE_ID_CONFLICT"
    SLIDE_TOO_LARGE = "SLIDE_TOO_LARGE"
    QC_FAILED = "QC_FAILED"
    # Stores, models and infrastructure.
    STORE_MISSING = "STORE_MISSING"
    STORE_CONFLICT = "STORE_CONFLICT"
    STORE_UNREACHABLE = "STORE_UNREACHABLE"
    DISK_FULL = "DISK_FULL"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
    EVENT_TOO_LARGE = "EVENT_TOO_LARGE"
    INVALID_CONFIGURATION = "INVALID_CONFIGURATION"
    INVALID_EVENT = "INVALID_EVENT"
    # Laboratory orders and report delivery.
    INVALID_ORDER = "INVALID_ORDER"
    ORDER_CONFLICT = "ORDER_CONFLICT"
    LIS_UNAVAILABLE = "LIS_UNAVAILABLE"
    LIS_REJECTED = "LIS_REJECTED"
    # Pathologist review.
    UNKNOWN_ENTITY = "UNKNOWN_ENTITY"
    INVALID_AMENDMENT = "INVALID_AMENDMENT"
    FORBIDDEN = "FORBIDDEN"
    SIGN_OUT_REFUSED = "SIGN_OUT_REFUSED"
    EDIT_CONFLICT = "EDIT_CONFLICT"  # another user changed it after the editor loaded it
    INTERNAL = "INTERNAL"


class PathStreamError(Exception):
    """A failure with a stable code, a message naming the problem, and a hint saying what to do.

    `retriable` tells a consumer whether trying the same input again later can succeed
    (a database that is down) or cannot (a corrupt slide).
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        hint: str = "",
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.retriable = retriable

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()
