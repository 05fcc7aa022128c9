"""SQLAlchemy 2 models of PathStream's database (shared/README.md, Database).

The same models serve PostgreSQL (production) and SQLite (embedded). Enums are stored as checked
strings rather than native types so that adding a value is an ordinary Alembic migration on both.
Only Alembic migrations change the schema; `tests/integration/test_migrations.py` checks that the
migrations and these models agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Uuid,
    false,
    func,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pathstream.shared.events import FailureStage, LnLabel, MarrowClass, PnCategory, Specimen
from pathstream.shared.events.base import utc_now

ID_LENGTH = 200
VERSION_LENGTH = 200

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class SlideStatus(StrEnum):
    """Where a slide stands; the latest event (by occurred_at) decides, whatever the arrival order."""

    PENDING = "pending"  # known (scanned, or an LN result arrived first), detection not reported yet
    DETECTED = "detected"  # LNs found, scores outstanding
    COMPLETE = "complete"  # every LN scored / marrow classified
    FAILED = "failed"


def _enum(enum_cls: type[StrEnum], name: str) -> SAEnum:
    """A portable enum column type storing the members' values, with a CHECK constraint."""
    return SAEnum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls) + 8,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base with constraint naming conventions (stable names for migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


class TimestampMixin:
    """created_at / updated_at, set by the application so both dialects agree."""

    created_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now, server_default=func.now())


class Study(TimestampMixin, Base):
    """A case (one patient's specimen set), identified by a pseudonymous study id."""

    __tablename__ = "studies"

    study_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    slides_closed_at: Mapped[datetime | None] = mapped_column(
        comment="when the study's slide set was declared complete without an order (run end, settle)"
    )
    slides_closed_by: Mapped[str | None] = mapped_column(String(32), comment="'run' or 'settled'")
    signed_out_by: Mapped[str | None] = mapped_column(String(ID_LENGTH), comment="user id of the signer")
    signed_out_at: Mapped[datetime | None]


class StudyOrder(TimestampMixin, Base):
    """The laboratory's order for a study (HL7 v2 OML/ORM or FHIR ServiceRequest); study_id is its
    accession number. The patient identifier is here only because reports must name the patient."""

    __tablename__ = "study_orders"

    study_id: Mapped[str] = mapped_column(
        ForeignKey("studies.study_id", ondelete="RESTRICT"), primary_key=True
    )
    patient_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    patient_id_system: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    placer_order_number: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    placer_system: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    specimen_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    specimen: Mapped[Specimen | None] = mapped_column(_enum(Specimen, "order_specimen"))
    expected_slide_ids: Mapped[list[Any]] = mapped_column(default=list)
    expected_slide_count: Mapped[int | None] = mapped_column(Integer)
    ordered_at: Mapped[datetime | None]
    collected_at: Mapped[datetime | None]
    ordering_provider: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    source: Mapped[str] = mapped_column(String(16), comment="'hl7v2' or 'fhir'")
    message_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))


class ModelVersion(Base):
    """A model checkpoint that produced results; `version` is its name and checkpoint hash."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(VERSION_LENGTH), primary_key=True)
    service: Mapped[str] = mapped_column(String(32))
    first_seen_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())
    details: Mapped[dict[str, Any] | None]


class Slide(TimestampMixin, Base):
    """One scanned slide. Columns stay NULL until the event that knows them has been applied."""

    __tablename__ = "slides"

    slide_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.study_id", ondelete="RESTRICT"), index=True)
    specimen: Mapped[Specimen | None] = mapped_column(_enum(Specimen, "specimen"))
    status: Mapped[SlideStatus] = mapped_column(
        _enum(SlideStatus, "slide_status"), default=SlideStatus.PENDING
    )
    status_at: Mapped[datetime | None] = mapped_column(
        comment="occurred_at of the event that set `status`; older events never overwrite it"
    )
    uri: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    mpp_x: Mapped[float | None] = mapped_column(Float, comment="level-0 um/px")
    mpp_y: Mapped[float | None] = mapped_column(Float, comment="level-0 um/px")
    width_px: Mapped[int | None] = mapped_column(Integer, comment="level-0 width")
    height_px: Mapped[int | None] = mapped_column(Integer, comment="level-0 height")
    store_uri: Mapped[str | None] = mapped_column(Text)
    ln_count: Mapped[int | None] = mapped_column(Integer)
    detector_model_version: Mapped[str | None] = mapped_column(
        ForeignKey("model_versions.version", ondelete="RESTRICT")
    )
    contours_uri: Mapped[str | None] = mapped_column(Text)
    failure_stage: Mapped[FailureStage | None] = mapped_column(_enum(FailureStage, "failure_stage"))
    failure_code: Mapped[str | None] = mapped_column(
        String(64), comment="an ErrorCode value; unconstrained so new codes need no migration"
    )
    failure_message: Mapped[str | None] = mapped_column(Text)
    failure_retriable: Mapped[bool | None] = mapped_column(Boolean)
    failed_ln_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))


class LymphNode(TimestampMixin, Base):
    """One lymph node: detector geometry, ESCNN score, and the pathologist's review on top."""

    __tablename__ = "lymph_nodes"
    __table_args__ = (Index("ix_lymph_nodes_slide_index", "slide_id", "index"),)

    ln_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    slide_id: Mapped[str] = mapped_column(ForeignKey("slides.slide_id", ondelete="CASCADE"))
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.study_id", ondelete="RESTRICT"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    contour: Mapped[list[Any]] = mapped_column(comment="level-0 px [[x, y], ...]")
    bbox: Mapped[dict[str, Any]] = mapped_column(comment="level-0 px {x, y, width, height}")
    area_um2: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    label: Mapped[LnLabel | None] = mapped_column(_enum(LnLabel, "ln_label"))
    threshold: Mapped[float | None] = mapped_column(Float)
    screening_label: Mapped[LnLabel | None] = mapped_column(_enum(LnLabel, "ln_screening_label"))
    screening_threshold: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(
        ForeignKey("model_versions.version", ondelete="RESTRICT")
    )
    heatmap_uri: Mapped[str | None] = mapped_column(Text)
    lesion_polygons: Mapped[list[Any] | None]
    scored_at: Mapped[datetime | None] = mapped_column(
        comment="occurred_at of the applied LymphNodeScored; older scores never overwrite newer"
    )
    review_label: Mapped[LnLabel | None] = mapped_column(
        _enum(LnLabel, "ln_review_label"), comment="pathologist's label; overrides `label`"
    )
    review_contour: Mapped[list[Any] | None] = mapped_column(comment="pathologist's contour")
    review_deposit_mm: Mapped[float | None] = mapped_column(
        Float, comment="pathologist's largest-deposit size (mm); overrides the lesion polygons'"
    )
    removed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    added_by_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reviewed_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    reviewed_at: Mapped[datetime | None]

    # The one place the review rule is written: a pathologist's label and contour win over the
    # model's. Reports, exports and amendments all read these, never the raw columns.
    @property
    def effective_label(self) -> LnLabel | None:
        """The pathologist's `review_label` if set, else the model's (None: unscored)."""
        return self.review_label if self.review_label is not None else self.label

    @property
    def effective_contour(self) -> list[Any]:
        """Level-0 px [[x, y], ...]: the pathologist's if drawn, else the detector's."""
        return self.review_contour or self.contour

    @property
    def label_reviewed(self) -> bool:
        """Whether a pathologist set this LN's label."""
        return self.review_label is not None


class SlideReport(Base):
    """An immutable version of one slide's LN counts."""

    __tablename__ = "slide_reports"

    slide_id: Mapped[str] = mapped_column(ForeignKey("slides.slide_id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[SlideStatus] = mapped_column(_enum(SlideStatus, "slide_report_status"))
    ln_count: Mapped[int | None] = mapped_column(Integer)
    ln_positive: Mapped[int] = mapped_column(Integer)
    ln_negative: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())


class StudyReport(Base):
    """An immutable version of a study's report, with the FHIR document that was sent."""

    __tablename__ = "study_reports"

    study_id: Mapped[str] = mapped_column(
        ForeignKey("studies.study_id", ondelete="RESTRICT"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    slide_count: Mapped[int] = mapped_column(Integer)
    slides_complete: Mapped[int] = mapped_column(Integer)
    slides_failed: Mapped[int] = mapped_column(Integer)
    ln_positive: Mapped[int] = mapped_column(Integer)
    ln_negative: Mapped[int] = mapped_column(Integer)
    ln_examined: Mapped[int] = mapped_column(Integer)
    pn_category: Mapped[PnCategory | None] = mapped_column(_enum(PnCategory, "pn_category"))
    below_ajcc_minimum: Mapped[bool] = mapped_column(Boolean)
    trigger: Mapped[str] = mapped_column(String(64), comment="what produced this version")
    status: Mapped[str | None] = mapped_column(
        String(16), comment="FHIR DiagnosticReport.status of this version (NULL: written before 0007)"
    )
    reason: Mapped[str | None] = mapped_column(Text, comment="the pathologist's reason, for amendments")
    fhir: Mapped[dict[str, Any]]
    content: Mapped[dict[str, Any] | None] = mapped_column(comment="the report content this version states")
    published_at: Mapped[datetime | None] = mapped_column(
        index=True, comment="when ReportReady for this version was accepted by the broker; NULL = not yet"
    )
    hl7_sent_at: Mapped[datetime | None] = mapped_column(
        index=True, comment="when the LIS acknowledged this version's ORU^R01; NULL = not yet"
    )
    hl7_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    hl7_next_attempt_at: Mapped[datetime | None] = mapped_column(comment="back-off: not before this")
    hl7_last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())


class MarrowResult(Base):
    """The latest case-level marrow call of a slide, with its ROIs."""

    __tablename__ = "marrow_results"

    slide_id: Mapped[str] = mapped_column(ForeignKey("slides.slide_id", ondelete="CASCADE"), primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.study_id", ondelete="RESTRICT"), index=True)
    case_call: Mapped[MarrowClass] = mapped_column(_enum(MarrowClass, "marrow_class"))
    case_probabilities: Mapped[dict[str, Any]]
    rois: Mapped[list[Any]]
    model_version: Mapped[str] = mapped_column(ForeignKey("model_versions.version", ondelete="RESTRICT"))
    classified_at: Mapped[datetime]


class ProcessedEvent(Base):
    """Events a consumer has applied; a redelivered event finds its row here and changes nothing."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    processed_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())


class AuditEntry(Base):
    """One human amendment: who (the authenticated user), when, what changed, and why."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(ID_LENGTH))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.study_id", ondelete="RESTRICT"), index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    reason: Mapped[str] = mapped_column(Text)


class Role(StrEnum):
    """What an API user may do: read (`viewer`), read and post orders (`laboratory`), or read, amend,
    sign out and post orders (`pathologist`)."""

    VIEWER = "viewer"
    PATHOLOGIST = "pathologist"
    LABORATORY = "laboratory"  # the LIS's integration account: reads, and posts orders


class User(Base):
    """A person who may use the review API; `user_id` is what the audit trail records."""

    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    created_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())
    disabled_at: Mapped[datetime | None] = mapped_column(comment="set when access was withdrawn")


class ApiToken(Base):
    """A bearer token of a user, stored only as its SHA-256; the token itself is shown once."""

    __tablename__ = "api_tokens"

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True, comment="public part, for revoking")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class BrowserSession(Base):
    """A signed-in browser of the review workstation: only the SHA-256 of its cookie is stored, with
    the CSRF token the page must echo on every change; closed at sign-out or when it expires."""

    __tablename__ = "browser_sessions"

    session_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class WatchedSlideStatus(StrEnum):
    """Where the scanner bridge is with a slide file it found."""

    PENDING = "pending"  # recorded, SlideScanned not yet confirmed by the broker
    PUBLISHED = "published"


class WatchedSlide(Base):
    """A slide the scanner bridge found, keyed by content: it is announced once, restarts included."""

    __tablename__ = "watched_slides"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    slide_id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    study_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    specimen: Mapped[Specimen] = mapped_column(_enum(Specimen, "watched_specimen"))
    path: Mapped[str] = mapped_column(Text, comment="where the file was when it was announced")
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, comment="the SlideScanned event; reused on retry")
    status: Mapped[WatchedSlideStatus] = mapped_column(_enum(WatchedSlideStatus, "watched_status"))
    found_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())
    published_at: Mapped[datetime | None]


class DeadLetterReplay(Base):
    """A DLQ record sent back to its topic by `pathstream dlq replay`: replaying it again is a no-op."""

    __tablename__ = "dead_letter_replays"

    dlq_topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    dlq_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    dlq_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    original_topic: Mapped[str] = mapped_column(String(255))
    original_offset: Mapped[int] = mapped_column(BigInteger, comment="where the message first was")
    error: Mapped[str] = mapped_column(Text, comment="why it had been dead-lettered")
    replayed_by: Mapped[str] = mapped_column(String(255), comment="who asked (operator's name)")
    reason: Mapped[str] = mapped_column(Text, comment="what was fixed")
    replayed_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())


class SlideReprocess(Base):
    """One deliberate reprocessing of a slide (`pathstream reprocess`): a new announcement of it."""

    __tablename__ = "slide_reprocessing"

    slide_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, comment="1 for the first reprocess")
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, comment="the SlideScanned it sent")
    mpp: Mapped[float | None] = mapped_column(Float, comment="level-0 um/px given for this attempt")
    previous_status: Mapped[str] = mapped_column(String(32))
    previous_failure_code: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(default=utc_now, server_default=func.now())
    published_at: Mapped[datetime | None]
