"""Slide-level events: a scan arrives, its lymph nodes were found, or its processing failed."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events.base import Event, Identifier, ModelVersion, Sha256, Specimen, Uri
from pathstream.shared.storage_faults import storage_fault
from pathstream.shared.topics import Topic


class SlideScanned(Event):
    """A complete slide file is available (scanner or watch folder -> detector, marrow)."""

    TOPIC: ClassVar[Topic] = Topic.SLIDES_SCANNED

    slide_id: Identifier
    study_id: Identifier
    specimen: Specimen
    uri: Uri = Field(description="Where the slide file lies: local path, file:// or s3:// URI.")
    sha256: Sha256 = Field(description="SHA-256 of the slide file (of the main file for multi-file formats).")
    mpp: float | None = Field(
        default=None,
        ge=0.05,
        le=20.0,
        description="Operator-supplied level-0 resolution in um/px, for slides without mpp metadata.",
    )


class SlideDetected(Event):
    """Lymph-node detection finished for a slide (detector -> reporter); ln_count may be 0."""

    TOPIC: ClassVar[Topic] = Topic.SLIDES_DETECTED

    slide_id: Identifier
    study_id: Identifier
    ln_count: int = Field(ge=0, description="Number of lymph nodes found; 0 is a legitimate result.")
    store_uri: Uri = Field(description="The slide's TileDB group.")
    model_version: ModelVersion = Field(description="Detector model version (checkpoint hash).")
    contours_uri: Uri | None = Field(default=None, description="QuPath GeoJSON of the LN contours.")
    mpp_x: float | None = Field(default=None, ge=0.05, le=20.0, description="Level-0 um/px used.")
    mpp_y: float | None = Field(default=None, ge=0.05, le=20.0, description="Level-0 um/px used.")
    width_px: int | None = Field(default=None, ge=1, description="Level-0 width of the slide in pixels.")
    height_px: int | None = Field(default=None, ge=1, description="Level-0 height of the slide in pixels.")


class FailureStage(StrEnum):
    """Where in the pipeline a slide failed."""

    SCAN = "scan"
    INGEST = "ingest"
    DETECT = "detect"
    SCORE = "score"
    CLASSIFY = "classify"
    REPORT = "report"


class SlideFailed(Event):
    """A slide (or one of its LNs) could not be processed (any service -> reporter)."""

    TOPIC: ClassVar[Topic] = Topic.SLIDES_FAILED

    slide_id: Identifier
    study_id: Identifier
    stage: FailureStage
    error_code: ErrorCode
    message: str = Field(min_length=1, max_length=2000, description="What went wrong and what to do.")
    retriable: bool = Field(description="True when processing the same input again may succeed.")
    ln_id: Identifier | None = Field(default=None, description="Set when one LN failed, not the slide.")

    @classmethod
    def from_exception(
        cls, slide_id: str, study_id: str, stage: FailureStage, exc: BaseException, ln_id: str | None = None
    ) -> SlideFailed:
        """The failure event for `exc`: a `PathStreamError` keeps its code, message, hint and
        retriability; a storage fault (full disk, permission) gets its code (`storage_fault`);
        anything else is an INTERNAL error, retriable (it may be a passing fault)."""
        exc = exc if isinstance(exc, PathStreamError) else storage_fault(exc) or exc
        if isinstance(exc, PathStreamError):
            code, message, retriable = exc.code, str(exc), exc.retriable
        else:
            code, message, retriable = ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", True
        return cls(
            slide_id=slide_id,
            study_id=study_id,
            stage=stage,
            error_code=code,
            message=message[:2000] or code.value,
            retriable=retriable,
            ln_id=ln_id,
        )
