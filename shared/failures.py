"""How a service handler turns an exception into a `SlideFailed` event and one log line.

Every handler catches everything for one slide (or LN) so that nothing escapes to the consumer:
a `PathStreamError` is a known problem (logged as a warning with its message), anything else a bug
or a passing fault (logged as an error with the traceback).
"""

from __future__ import annotations

from typing import Any

from pathstream.shared.errors import PathStreamError
from pathstream.shared.events import FailureStage, SlideFailed


def failure_event(
    log: Any,
    slide_id: str,
    study_id: str,
    stage: FailureStage,
    exc: BaseException,
    ln_id: str | None = None,
) -> SlideFailed:
    """The `SlideFailed` for `exc` at `stage` (of LN `ln_id` when given), logged on `log` (a bound
    structlog logger) as `slide_failed` / `ln_failed` with the stage and error code."""
    failed = SlideFailed.from_exception(slide_id, study_id, stage, exc, ln_id=ln_id)
    name = "ln_failed" if ln_id else "slide_failed"
    if isinstance(exc, PathStreamError):
        log.warning(name, stage=stage.value, error_code=failed.error_code.value, error=str(exc))
    else:
        log.error(name, stage=stage.value, error_code=failed.error_code.value, exc_info=True)
    return failed
