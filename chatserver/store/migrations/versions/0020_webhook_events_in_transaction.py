"""webhook events are written in their change's own transaction: the status lookup table goes

``webhook_conversation_state`` remembered the last status told to webhooks so that a status change seen
after its commit could say what it changed from; the transaction that changes a status knows that itself.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("webhook_conversation_state")


def downgrade() -> None:
    op.create_table(
        "webhook_conversation_state",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_webhook_conversation_state")),
    )
