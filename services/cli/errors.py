"""Turn failures into one clear message and an exit code: never a traceback on the terminal."""

from __future__ import annotations

import sys
from typing import NoReturn

from pydantic import ValidationError
from rich.console import Console

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.logs import get_logger
from pathstream.shared.storage_faults import storage_fault

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)
log = get_logger("pathstream.cli")


def settings_error(exc: ValidationError) -> PathStreamError:
    """Describe invalid `PATHSTREAM_*` settings by variable name, without echoing secrets."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        message = err["msg"].removeprefix("Value error, ").rstrip(".")
        field = "_".join(str(p) for p in err["loc"]).upper()
        problems.append(f"PATHSTREAM_{field}: {message}" if field else message)
    return PathStreamError(
        ErrorCode.INVALID_CONFIGURATION,
        f"Invalid configuration: {'; '.join(problems)}.",
        hint="Fix the environment variables named above (see the configuration table in README.md).",
    )


def fail(exc: BaseException) -> NoReturn:
    """Print `exc` for a person and exit: 2 for problems they can fix, 70 for internal errors."""
    if isinstance(exc, ValidationError) and exc.title.endswith("Settings"):
        exc = settings_error(exc)
    if not isinstance(exc, PathStreamError):
        exc = storage_fault(exc) or exc
    if isinstance(exc, PathStreamError):
        _stderr.print(f"[bold red]error[/] [{exc.code.value}] {exc.message}", markup=True)
        if exc.hint:
            _stderr.print(f"  {exc.hint}", markup=False)
        sys.exit(EXIT_USER_ERROR)
    log.error("internal_error", error_type=type(exc).__name__, error=str(exc), exc_info=exc)
    _stderr.print(
        f"error [INTERNAL] {type(exc).__name__}: {exc}. This is a PathStream bug; the log line "
        "'internal_error' above has the details for the team.",
        markup=False,
    )
    sys.exit(EXIT_INTERNAL_ERROR)
