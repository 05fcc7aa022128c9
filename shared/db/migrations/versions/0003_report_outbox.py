"""Study report versions keep their content and when they were published (transactional outbox).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("study_reports") as batch:
        batch.add_column(
            sa.Column("content", _JSON, nullable=True, comment="the report content this version states")
        )
        batch.add_column(
            sa.Column(
                "published_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment="when ReportReady for this version was accepted by the broker; NULL = not yet",
            )
        )
        batch.create_index("ix_study_reports_published_at", ["published_at"])


def downgrade() -> None:
    with op.batch_alter_table("study_reports") as batch:
        batch.drop_index("ix_study_reports_published_at")
        batch.drop_column("published_at")
        batch.drop_column("content")
