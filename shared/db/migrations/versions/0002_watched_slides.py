"""Scanner bridge state: slides found in watch folders, so none is announced twice.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watched_slides",
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("slide_id", sa.String(length=200), nullable=False),
        sa.Column("study_id", sa.String(length=200), nullable=False),
        sa.Column(
            "specimen",
            sa.Enum(
                "lymph_node",
                "bone_marrow",
                name="watched_specimen",
                native_enum=False,
                create_constraint=True,
                length=19,
            ),
            nullable=False,
        ),
        sa.Column("path", sa.Text(), nullable=False, comment="where the file was when it was announced"),
        sa.Column("event_id", sa.Uuid(), nullable=False, comment="the SlideScanned event; reused on retry"),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "published",
                name="watched_status",
                native_enum=False,
                create_constraint=True,
                length=17,
            ),
            nullable=False,
        ),
        sa.Column("found_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("slide_id", name=op.f("uq_watched_slides_slide_id")),
    )


def downgrade() -> None:
    op.drop_table("watched_slides")
