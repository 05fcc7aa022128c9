"""Slides' level-0 size, so contours a pathologist draws or imports can be checked against the slide.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("slides") as batch:
        batch.add_column(sa.Column("width_px", sa.Integer(), nullable=True, comment="level-0 width"))
        batch.add_column(sa.Column("height_px", sa.Integer(), nullable=True, comment="level-0 height"))


def downgrade() -> None:
    with op.batch_alter_table("slides") as batch:
        batch.drop_column("height_px")
        batch.drop_column("width_px")
