"""Process a slide again on purpose: a corrected resolution, a new model version, a fixed share.

The scanner bridge announces each slide file once (by content), and every consumer ignores an
event it has handled, so a failed slide stays failed until someone asks for it again. `reprocess`
is that request: it announces the slide anew (`SlideScanned` with a new event id and, when given,
the corrected mpp), records who asked and why in `slide_reprocessing`, and the pipeline takes it
from the start. The reporter sets the slide back to pending; its earlier LN results stay until
new ones replace them. Only failed slides are reprocessed unless `force` (a complete slide under a
new model version).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from faststream.kafka import KafkaBroker
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.scanner.announcement import slide_scanned
from pathstream.shared.allowed_roots import check_allowed
from pathstream.shared.bus.publish import publish_event
from pathstream.shared.db.models import Slide, SlideReprocess, SlideStatus, WatchedSlide
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import SlideScanned, Specimen
from pathstream.shared.events.base import utc_now
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.slide_source import check_operator_mpp

_NAMESPACE = uuid.UUID("5d0c7a52-3f1e-4b8e-9a61-2e4f7c9b1d08")


@dataclass(frozen=True)
class Reprocessing:
    """One reprocess request and the announcement it sends."""

    slide_id: str
    attempt: int
    previous_status: str
    event: SlideScanned


def _known_slide(session: Session, slide_id: str) -> tuple[str, str, Specimen, str, str, str | None]:
    """(uri, study_id, specimen, sha256, status, failure code) of `slide_id`, from what the reporter
    or the scanner bridge recorded."""
    slide = session.get(Slide, slide_id)
    watched = session.scalar(select(WatchedSlide).where(WatchedSlide.slide_id == slide_id))
    uri = (slide.uri if slide is not None else None) or (watched.path if watched is not None else None)
    specimen = (slide.specimen if slide is not None else None) or (watched.specimen if watched else None)
    sha256 = (slide.sha256 if slide is not None else None) or (watched.sha256 if watched else None)
    if uri is None or specimen is None or sha256 is None:
        raise PathStreamError(
            ErrorCode.UNKNOWN_ENTITY,
            f"No slide {slide_id!r} was announced to this database.",
            hint="Check the slide id (`pathstream review show STUDY_ID` lists them); a slide never seen is "
            "announced by `pathstream watch` or `pathstream run`.",
        )
    study_id = slide.study_id if slide is not None else watched.study_id  # type: ignore[union-attr]
    status = slide.status.value if slide is not None else SlideStatus.PENDING.value
    code = slide.failure_code if slide is not None else None
    return uri, study_id, specimen, sha256, status, code


def request_reprocess(
    sessions: sessionmaker[Session],
    settings: PathStreamSettings,
    slide_id: str,
    *,
    mpp: float | None,
    force: bool,
    requested_by: str,
    reason: str,
) -> Reprocessing:
    """Record a reprocess of `slide_id` and return the `SlideScanned` to publish.

    Raises `PathStreamError` for an unknown slide, a slide that has not failed (without `force`), an
    empty reason, an implausible `mpp` or a slide file outside `PATHSTREAM_ALLOWED_ROOTS`.
    """
    mpp = check_operator_mpp(mpp)
    if not reason.strip():
        raise PathStreamError(
            ErrorCode.INVALID_AMENDMENT,
            "A reprocess needs a reason.",
            hint='Say what changed, e.g. --reason "scanner settings say 0.25 um/px".',
        )
    with sessions.begin() as session:
        uri, study_id, specimen, sha256, status, code = _known_slide(session, slide_id)
        if status != SlideStatus.FAILED.value and not force:
            raise PathStreamError(
                ErrorCode.INVALID_AMENDMENT,
                f"Slide {slide_id} is {status}, not failed; its results stand.",
                hint="Add --force to process it again anyway (e.g. under a new model version).",
            )
        location = check_allowed(uri, settings.allowed_roots)
        attempt = 1 + (
            session.scalar(
                select(func.max(SlideReprocess.attempt)).where(SlideReprocess.slide_id == slide_id)
            )
            or 0
        )
        event = slide_scanned(
            Path(location),
            slide_id,
            study_id,
            specimen,
            sha256=sha256,
            mpp=mpp,
            event_id=uuid.uuid5(_NAMESPACE, f"{slide_id}/{sha256}/{attempt}"),
        )
        session.add(
            SlideReprocess(
                slide_id=slide_id,
                attempt=attempt,
                event_id=event.event_id,
                mpp=mpp,
                previous_status=status,
                previous_failure_code=code,
                requested_by=requested_by,
                reason=reason.strip(),
            )
        )
    return Reprocessing(slide_id, attempt, status, event)


async def publish_reprocess(
    broker: KafkaBroker, settings: PathStreamSettings, sessions: sessionmaker[Session], request: Reprocessing
) -> None:
    """Publish the request's announcement and record when the brokers confirmed it."""
    await publish_event(broker, settings, request.event)
    with sessions.begin() as session:
        row = session.get(SlideReprocess, (request.slide_id, request.attempt))
        if row is not None:
            row.published_at = utc_now()
