"""Idempotent writes keyed on natural keys (study_id, slide_id, ln_id, model version).

Each `apply_*` function writes what one event says. Applying it twice, or applying an older event
after a newer one, leaves the same rows: inserts become updates on conflict, and updates that carry
an event time only win when that time is not older than what is stored. Callers run these inside a
transaction together with `claim_event` (see `pathstream.services.reporter.store.apply`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pathstream.shared.db.models import (
    Base,
    LymphNode,
    MarrowResult,
    ModelVersion,
    Slide,
    SlideStatus,
    Study,
)
from pathstream.shared.errors import ErrorCode
from pathstream.shared.events import (
    FailureStage,
    LymphNodeScored,
    MarrowClassified,
    SlideDetected,
    SlideFailed,
    SlideScanned,
)
from pathstream.shared.events.base import utc_now
from pathstream.shared.logs import get_logger

log = get_logger(__name__)


def dialect_insert(session: Session, model: type[Base]) -> Any:
    """Return the dialect's INSERT construct for `model` (both support ON CONFLICT)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"upserts support PostgreSQL and SQLite, not {dialect}")


def upsert(
    session: Session,
    model: type[Base],
    values: Mapping[str, Any],
    keys: Sequence[str],
    update_columns: Sequence[str] = (),
    where: ColumnElement[bool] | None = None,
) -> None:
    """INSERT `values` into `model`'s table; on a conflict on `keys`, update `update_columns`.

    With no `update_columns` an existing row is left untouched. `where` restricts the update
    (e.g. only when the incoming event is newer). `updated_at` is refreshed on every update.
    """
    statement = dialect_insert(session, model).values(**values)
    if not update_columns:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    else:
        assignments = {column: statement.excluded[column] for column in update_columns}
        if "updated_at" in model.__table__.c:
            assignments["updated_at"] = utc_now()
        statement = statement.on_conflict_do_update(index_elements=list(keys), set_=assignments, where=where)
    session.execute(statement)


def ensure_study(session: Session, study_id: str) -> None:
    """Make sure the study row exists."""
    upsert(session, Study, {"study_id": study_id}, ["study_id"])


def ensure_slide(session: Session, slide_id: str, study_id: str) -> None:
    """Make sure the study and slide rows exist (a result may arrive before the slide's events)."""
    ensure_study(session, study_id)
    upsert(
        session,
        Slide,
        {"slide_id": slide_id, "study_id": study_id, "status": SlideStatus.PENDING},
        ["slide_id"],
    )


def record_model_version(session: Session, version: str, service: str) -> None:
    """Register a model version the first time a result cites it."""
    upsert(session, ModelVersion, {"version": version, "service": service}, ["version"])


def set_slide_status(session: Session, slide_id: str, status: SlideStatus, at: datetime) -> None:
    """Set a slide's status unless a newer event (by occurred_at) has already set it; a newer
    success also clears an earlier failure (a rerun that worked is no longer failed)."""
    cleared = {
        "failure_stage": None,
        "failure_code": None,
        "failure_message": None,
        "failure_retriable": None,
        "failed_ln_id": None,
    }
    session.execute(
        update(Slide)
        .where(Slide.slide_id == slide_id, or_(Slide.status_at.is_(None), Slide.status_at <= at))
        .values(status=status, status_at=at, updated_at=utc_now(), **cleared)
    )


def identity_clash(session: Session, event: SlideScanned) -> str | None:
    """Why `event` may not be applied to its slide id, or None: a known slide whose content
    (sha256) or study differs is another slide, and applying it would change the earlier result."""
    known = session.get(Slide, event.slide_id)
    if known is None:
        return None
    if known.sha256 is not None and known.sha256 != event.sha256:
        other = f"sha256 {known.sha256[:12]}..., {known.uri}"
        return f"slide id {event.slide_id} already names other content ({other})"
    if known.study_id != event.study_id:
        return f"slide {event.slide_id} belongs to study {known.study_id}, not {event.study_id}"
    return None


def apply_slide_scanned(session: Session, event: SlideScanned) -> None:
    """Record a scanned slide's identity: specimen, location, checksum. A scan that clashes with a
    known slide's identity (`identity_clash`) changes nothing and is logged as refused."""
    clash = identity_clash(session, event)
    if clash is not None:
        log.warning(
            "scan_refused",
            slide_id=event.slide_id,
            study_id=event.study_id,
            uri=event.uri,
            error_code=ErrorCode.SLIDE_ID_CONFLICT.value,
            reason=f"{clash}; the earlier result is kept. Give the new scan its own slide id.",
            event_id=str(event.event_id),
        )
        return
    ensure_slide(session, event.slide_id, event.study_id)
    session.execute(
        update(Slide)
        .where(Slide.slide_id == event.slide_id)
        .values(
            specimen=event.specimen,
            uri=event.uri,
            sha256=event.sha256,
            updated_at=utc_now(),
        )
    )
    set_slide_status(session, event.slide_id, SlideStatus.PENDING, event.occurred_at)


def apply_slide_detected(session: Session, event: SlideDetected) -> None:
    """Record a slide's detection result (LN count, store, detector version)."""
    ensure_slide(session, event.slide_id, event.study_id)
    record_model_version(session, event.model_version, "detector")
    values: dict[str, Any] = {
        "ln_count": event.ln_count,
        "store_uri": event.store_uri,
        "detector_model_version": event.model_version,
        "contours_uri": event.contours_uri,
        "updated_at": utc_now(),
    }
    if event.mpp_x is not None:
        values["mpp_x"] = event.mpp_x
    if event.mpp_y is not None:
        values["mpp_y"] = event.mpp_y
    if event.width_px is not None and event.height_px is not None:
        values["width_px"], values["height_px"] = event.width_px, event.height_px
    session.execute(update(Slide).where(Slide.slide_id == event.slide_id).values(**values))
    set_slide_status(session, event.slide_id, SlideStatus.DETECTED, event.occurred_at)


_BEFORE_SCORING = frozenset({FailureStage.SCAN, FailureStage.INGEST, FailureStage.DETECT})
_IDENTITY_CODES = frozenset({ErrorCode.STORE_CONFLICT, ErrorCode.SLIDE_ID_CONFLICT})


def failure_is_stale(session: Session, event: SlideFailed) -> bool:
    """True when `event` reports a failure of work whose result is already stored.

    A scoring failure for an LN that has a score, a scan/ingest/detection failure of a slide whose
    detection is recorded, a classification failure of a smear already classified: such events
    come from a stale or duplicated message (a copied `ln.detected` with a bad store, a replay) and
    must not turn a good result into a failure. Nor does a STORE_CONFLICT: it says another file
    was announced under this slide's id, which `apply_slide_scanned` refused. A deliberate
    reprocess announces the slide again first (status back to pending), so its failures count.
    """
    slide = session.get(Slide, event.slide_id)
    if slide is None:
        return False
    if event.error_code in _IDENTITY_CODES and slide.sha256 is not None:
        return True  # another file under this id was refused; the slide's own result stands
    if event.ln_id is not None:
        node = session.get(LymphNode, event.ln_id)
        return node is not None and node.scored_at is not None
    if event.stage in _BEFORE_SCORING:
        return slide.status in (SlideStatus.DETECTED, SlideStatus.COMPLETE)
    if event.stage == FailureStage.CLASSIFY:
        return session.get(MarrowResult, event.slide_id) is not None and slide.status == SlideStatus.COMPLETE
    return False


def apply_slide_failed(session: Session, event: SlideFailed) -> None:
    """Mark a slide failed with the stage, code and message, unless a newer event superseded it
    or the failure is stale (`failure_is_stale`: the result it would override is stored)."""
    ensure_slide(session, event.slide_id, event.study_id)
    if failure_is_stale(session, event):
        log.warning(
            "stale_failure_ignored",
            slide_id=event.slide_id,
            ln_id=event.ln_id,
            stage=event.stage.value,
            error_code=event.error_code.value,
            event_id=str(event.event_id),
        )
        return
    session.execute(
        update(Slide)
        .where(
            Slide.slide_id == event.slide_id,
            or_(Slide.status_at.is_(None), Slide.status_at <= event.occurred_at),
        )
        .values(
            status=SlideStatus.FAILED,
            status_at=event.occurred_at,
            failure_stage=event.stage,
            failure_code=event.error_code.value,
            failure_message=event.message,
            failure_retriable=event.retriable,
            failed_ln_id=event.ln_id,
            updated_at=utc_now(),
        )
    )


_LN_SCORE_COLUMNS = (
    "index",
    "contour",
    "bbox",
    "area_um2",
    "score",
    "label",
    "threshold",
    "screening_label",
    "screening_threshold",
    "model_version",
    "heatmap_uri",
    "lesion_polygons",
    "scored_at",
)


def apply_ln_scored(session: Session, event: LymphNodeScored) -> None:
    """Upsert one LN's score keyed on ln_id; a score older than the stored one changes nothing.

    The pathologist's review columns are never touched here.
    """
    ensure_slide(session, event.slide_id, event.study_id)
    record_model_version(session, event.model_version, "escnn")
    values = {
        "ln_id": event.ln_id,
        "slide_id": event.slide_id,
        "study_id": event.study_id,
        "index": event.index,
        "contour": [list(p) for p in event.contour],
        "bbox": event.bbox.model_dump(),
        "area_um2": event.area_um2,
        "score": event.score,
        "label": event.label,
        "threshold": event.threshold,
        "screening_label": event.screening_label,
        "screening_threshold": event.screening_threshold,
        "model_version": event.model_version,
        "heatmap_uri": event.heatmap_uri,
        "lesion_polygons": [[list(p) for p in polygon] for polygon in event.lesion_polygons],
        "scored_at": event.occurred_at,
    }
    upsert(
        session,
        LymphNode,
        values,
        ["ln_id"],
        _LN_SCORE_COLUMNS,
        where=or_(LymphNode.scored_at.is_(None), LymphNode.scored_at <= event.occurred_at),
    )


def apply_marrow_classified(session: Session, event: MarrowClassified) -> None:
    """Upsert a smear's case call keyed on slide_id; an older classification changes nothing."""
    ensure_slide(session, event.slide_id, event.study_id)
    record_model_version(session, event.model_version, "marrow")
    values = {
        "slide_id": event.slide_id,
        "study_id": event.study_id,
        "case_call": event.case_call,
        "case_probabilities": {k.value: v for k, v in event.case_probabilities.items()},
        "rois": [roi.model_dump(mode="json") for roi in event.rois],
        "model_version": event.model_version,
        "classified_at": event.occurred_at,
    }
    upsert(
        session,
        MarrowResult,
        values,
        ["slide_id"],
        ("case_call", "case_probabilities", "rois", "model_version", "classified_at"),
        where=MarrowResult.classified_at <= event.occurred_at,
    )
    set_slide_status(session, event.slide_id, SlideStatus.COMPLETE, event.occurred_at)
