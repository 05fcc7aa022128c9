"""Initial schema: studies, slides, lymph nodes, reports, marrow results, model versions,
processed events and the audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the enum values as of this revision: later model changes must not alter it.
SPECIMEN = ("lymph_node", "bone_marrow")
SLIDE_STATUS = ("pending", "detected", "complete", "failed")
FAILURE_STAGE = ("scan", "ingest", "detect", "score", "classify", "report")
LN_LABEL = ("positive", "negative")
PN_CATEGORY = ("N0", "N1", "N2", "N3a", "N3b")
MARROW_CLASS = ("mds", "aml", "donor")


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(
        *values,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(v) for v in values) + 8,
    )


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _id(name: str, **kw: Any) -> sa.Column:
    return sa.Column(name, sa.String(length=200), **kw)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def _fk(column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(length=200), primary_key=True),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("details", _json(), nullable=True),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=100), primary_key=True),
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table("studies", _id("study_id", primary_key=True), *_timestamps())
    op.create_table(
        "audit_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        _id("actor", nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        _id("entity_id", nullable=False),
        _id("study_id", nullable=False),
        sa.Column("before", _json(), nullable=True),
        sa.Column("after", _json(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        _fk("study_id", "studies.study_id", "RESTRICT"),
    )
    op.create_index(op.f("ix_audit_entries_study_id"), "audit_entries", ["study_id"])
    op.create_table(
        "slides",
        _id("slide_id", primary_key=True),
        _id("study_id", nullable=False),
        sa.Column("specimen", _enum(SPECIMEN, "specimen"), nullable=True),
        sa.Column("status", _enum(SLIDE_STATUS, "slide_status"), nullable=False),
        sa.Column(
            "status_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="occurred_at of the event that set `status`; older events never overwrite it",
        ),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("mpp_x", sa.Float(), nullable=True, comment="level-0 um/px"),
        sa.Column("mpp_y", sa.Float(), nullable=True, comment="level-0 um/px"),
        sa.Column("store_uri", sa.Text(), nullable=True),
        sa.Column("ln_count", sa.Integer(), nullable=True),
        _id("detector_model_version", nullable=True),
        sa.Column("contours_uri", sa.Text(), nullable=True),
        sa.Column("failure_stage", _enum(FAILURE_STAGE, "failure_stage"), nullable=True),
        sa.Column(
            "failure_code",
            sa.String(length=64),
            nullable=True,
            comment="an ErrorCode value; unconstrained so new codes need no migration",
        ),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("failure_retriable", sa.Boolean(), nullable=True),
        _id("failed_ln_id", nullable=True),
        *_timestamps(),
        _fk("detector_model_version", "model_versions.version", "RESTRICT"),
        _fk("study_id", "studies.study_id", "RESTRICT"),
    )
    op.create_index(op.f("ix_slides_sha256"), "slides", ["sha256"])
    op.create_index(op.f("ix_slides_study_id"), "slides", ["study_id"])
    op.create_table(
        "study_reports",
        _id("study_id", primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("slide_count", sa.Integer(), nullable=False),
        sa.Column("slides_complete", sa.Integer(), nullable=False),
        sa.Column("slides_failed", sa.Integer(), nullable=False),
        sa.Column("ln_positive", sa.Integer(), nullable=False),
        sa.Column("ln_negative", sa.Integer(), nullable=False),
        sa.Column("ln_examined", sa.Integer(), nullable=False),
        sa.Column("pn_category", _enum(PN_CATEGORY, "pn_category"), nullable=True),
        sa.Column("below_ajcc_minimum", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False, comment="what produced this version"),
        sa.Column("fhir", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        _fk("study_id", "studies.study_id", "RESTRICT"),
    )
    op.create_table(
        "lymph_nodes",
        _id("ln_id", primary_key=True),
        _id("slide_id", nullable=False),
        _id("study_id", nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("contour", _json(), nullable=False, comment="level-0 px [[x, y], ...]"),
        sa.Column("bbox", _json(), nullable=False, comment="level-0 px {x, y, width, height}"),
        sa.Column("area_um2", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("label", _enum(LN_LABEL, "ln_label"), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("screening_label", _enum(LN_LABEL, "ln_screening_label"), nullable=True),
        sa.Column("screening_threshold", sa.Float(), nullable=True),
        _id("model_version", nullable=True),
        sa.Column("heatmap_uri", sa.Text(), nullable=True),
        sa.Column("lesion_polygons", _json(), nullable=True),
        sa.Column(
            "scored_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="occurred_at of the applied LymphNodeScored; older scores never overwrite newer",
        ),
        sa.Column(
            "review_label",
            _enum(LN_LABEL, "ln_review_label"),
            nullable=True,
            comment="pathologist's label; overrides `label`",
        ),
        sa.Column("review_contour", _json(), nullable=True, comment="pathologist's contour"),
        sa.Column("removed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("added_by_review", sa.Boolean(), server_default=sa.false(), nullable=False),
        _id("reviewed_by", nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        _fk("model_version", "model_versions.version", "RESTRICT"),
        _fk("slide_id", "slides.slide_id", "CASCADE"),
        _fk("study_id", "studies.study_id", "RESTRICT"),
    )
    op.create_index("ix_lymph_nodes_slide_index", "lymph_nodes", ["slide_id", "index"])
    op.create_index(op.f("ix_lymph_nodes_study_id"), "lymph_nodes", ["study_id"])
    op.create_table(
        "marrow_results",
        _id("slide_id", primary_key=True),
        _id("study_id", nullable=False),
        sa.Column("case_call", _enum(MARROW_CLASS, "marrow_class"), nullable=False),
        sa.Column("case_probabilities", _json(), nullable=False),
        sa.Column("rois", _json(), nullable=False),
        _id("model_version", nullable=False),
        sa.Column("classified_at", sa.DateTime(timezone=True), nullable=False),
        _fk("model_version", "model_versions.version", "RESTRICT"),
        _fk("slide_id", "slides.slide_id", "CASCADE"),
        _fk("study_id", "studies.study_id", "RESTRICT"),
    )
    op.create_index(op.f("ix_marrow_results_study_id"), "marrow_results", ["study_id"])
    op.create_table(
        "slide_reports",
        _id("slide_id", primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("status", _enum(SLIDE_STATUS, "slide_report_status"), nullable=False),
        sa.Column("ln_count", sa.Integer(), nullable=True),
        sa.Column("ln_positive", sa.Integer(), nullable=False),
        sa.Column("ln_negative", sa.Integer(), nullable=False),
        sa.Column("content", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        _fk("slide_id", "slides.slide_id", "CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("slide_reports")
    op.drop_index(op.f("ix_marrow_results_study_id"), table_name="marrow_results")
    op.drop_table("marrow_results")
    op.drop_index(op.f("ix_lymph_nodes_study_id"), table_name="lymph_nodes")
    op.drop_index("ix_lymph_nodes_slide_index", table_name="lymph_nodes")
    op.drop_table("lymph_nodes")
    op.drop_table("study_reports")
    op.drop_index(op.f("ix_slides_study_id"), table_name="slides")
    op.drop_index(op.f("ix_slides_sha256"), table_name="slides")
    op.drop_table("slides")
    op.drop_index(op.f("ix_audit_entries_study_id"), table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("studies")
    op.drop_table("processed_events")
    op.drop_table("model_versions")
