"""DLQ replays (so a replay is done once) and deliberate slide reprocessing requests.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.func.now()


def upgrade() -> None:
    op.create_table(
        "dead_letter_replays",
        sa.Column("dlq_topic", sa.String(length=255), primary_key=True),
        sa.Column("dlq_partition", sa.Integer(), primary_key=True),
        sa.Column("dlq_offset", sa.BigInteger(), primary_key=True),
        sa.Column("original_topic", sa.String(length=255), nullable=False),
        sa.Column("original_offset", sa.BigInteger(), nullable=False, comment="where the message first was"),
        sa.Column("error", sa.Text(), nullable=False, comment="why it had been dead-lettered"),
        sa.Column(
            "replayed_by", sa.String(length=255), nullable=False, comment="who asked (operator's name)"
        ),
        sa.Column("reason", sa.Text(), nullable=False, comment="what was fixed"),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_table(
        "slide_reprocessing",
        sa.Column("slide_id", sa.String(length=200), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True, comment="1 for the first reprocess"),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True, comment="the SlideScanned it sent"),
        sa.Column("mpp", sa.Float(), nullable=True, comment="level-0 um/px given for this attempt"),
        sa.Column("previous_status", sa.String(length=32), nullable=False),
        sa.Column("previous_failure_code", sa.String(length=64), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("slide_reprocessing")
    op.drop_table("dead_letter_replays")
