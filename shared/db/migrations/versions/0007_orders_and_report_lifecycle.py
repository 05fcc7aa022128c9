"""Laboratory orders, slide-set closing, sign-out, deposit sizes, report status and the HL7 v2 outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_PN = ("N0", "N1", "N2", "N3a", "N3b")
_NEW_PN = ("N0", "N0(i+)", "N1", "N2", "N3a", "N3b")
_SPECIMEN = ("lymph_node", "bone_marrow")
_OLD_ROLES = ("viewer", "pathologist")
_NEW_ROLES = ("viewer", "pathologist", "laboratory")


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(
        *values, name=name, native_enum=False, create_constraint=True, length=max(len(v) for v in values) + 8
    )


def _json() -> sa.types.TypeEngine:
    from sqlalchemy.dialects.postgresql import JSONB

    return sa.JSON().with_variant(JSONB(), "postgresql")


def _checked_values(
    table: str, column: str, name: str, values: tuple[str, ...], previous: tuple[str, ...]
) -> None:
    """Widen (or narrow) a checked-string enum column's CHECK constraint and length."""
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot alter a CHECK: batch mode rebuilds the table with the new type.
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column(
                column, type_=_enum(values, name), existing_type=_enum(previous, name), existing_nullable=True
            )
        return
    # PostgreSQL: other tables' foreign keys forbid rebuilding; change the constraint in place.
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.alter_column(
        table, column, type_=sa.String(length=max(len(v) for v in values) + 8), existing_type=sa.String()
    )
    listed = ", ".join(f"'{v}'" for v in values)
    op.create_check_constraint(name, table, f"{column} IN ({listed})")


def _pn_column(values: tuple[str, ...], previous: tuple[str, ...]) -> None:
    _checked_values("study_reports", "pn_category", "pn_category", values, previous)


def _role_column(values: tuple[str, ...], previous: tuple[str, ...]) -> None:
    _checked_values("users", "role", "user_role", values, previous)


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(
            sa.Column(
                "slides_closed_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment="when the study's slide set was declared complete without an order (run end, settle)",
            )
        )
        batch.add_column(
            sa.Column("slides_closed_by", sa.String(length=32), nullable=True, comment="'run' or 'settled'")
        )
        batch.add_column(
            sa.Column("signed_out_by", sa.String(length=200), nullable=True, comment="user id of the signer")
        )
        batch.add_column(sa.Column("signed_out_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "study_orders",
        sa.Column("study_id", sa.String(length=200), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("patient_id_system", sa.String(length=200), nullable=True),
        sa.Column("placer_order_number", sa.String(length=200), nullable=True),
        sa.Column("placer_system", sa.String(length=200), nullable=True),
        sa.Column("specimen_id", sa.String(length=200), nullable=True),
        sa.Column("specimen", _enum(_SPECIMEN, "order_specimen"), nullable=True),
        sa.Column("expected_slide_ids", _json(), nullable=False),
        sa.Column("expected_slide_count", sa.Integer(), nullable=True),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ordering_provider", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False, comment="'hl7v2' or 'fhir'"),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.study_id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("study_id"),
    )
    with op.batch_alter_table("lymph_nodes") as batch:
        batch.add_column(
            sa.Column(
                "review_deposit_mm",
                sa.Float(),
                nullable=True,
                comment="pathologist's largest-deposit size (mm); overrides the lesion polygons'",
            )
        )
    with op.batch_alter_table("study_reports") as batch:
        batch.add_column(
            sa.Column(
                "status",
                sa.String(length=16),
                nullable=True,
                comment="FHIR DiagnosticReport.status of this version (NULL: written before 0007)",
            )
        )
        batch.add_column(
            sa.Column("reason", sa.Text(), nullable=True, comment="the pathologist's reason, for amendments")
        )
        batch.add_column(
            sa.Column(
                "hl7_sent_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment="when the LIS acknowledged this version's ORU^R01; NULL = not yet",
            )
        )
        batch.add_column(sa.Column("hl7_attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column(
                "hl7_next_attempt_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment="back-off: not before this",
            )
        )
        batch.add_column(sa.Column("hl7_last_error", sa.Text(), nullable=True))
        batch.create_index("ix_study_reports_hl7_sent_at", ["hl7_sent_at"])
    _pn_column(_NEW_PN, _OLD_PN)
    _role_column(_NEW_ROLES, _OLD_ROLES)


def downgrade() -> None:
    op.execute("UPDATE users SET role = 'viewer' WHERE role = 'laboratory'")
    _role_column(_OLD_ROLES, _NEW_ROLES)
    op.execute("UPDATE study_reports SET pn_category = 'N0' WHERE pn_category = 'N0(i+)'")
    _pn_column(_OLD_PN, _NEW_PN)
    with op.batch_alter_table("study_reports") as batch:
        batch.drop_index("ix_study_reports_hl7_sent_at")
        for column in (
            "hl7_last_error",
            "hl7_next_attempt_at",
            "hl7_attempts",
            "hl7_sent_at",
            "reason",
            "status",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("lymph_nodes") as batch:
        batch.drop_column("review_deposit_mm")
    op.drop_table("study_orders")
    with op.batch_alter_table("studies") as batch:
        for column in ("signed_out_at", "signed_out_by", "slides_closed_by", "slides_closed_at"):
            batch.drop_column(column)
