"""channel deliveries: the platform ids of sent message parts (delivery states), merged contacts

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.add_column(sa.Column("merged_into", sa.String(length=64), nullable=True))
    op.create_table(
        "channel_receipts",
        sa.Column("inbox_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("thread", sa.String(length=200), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"],
            ["inboxes.id"],
            name=op.f("fk_channel_receipts_inbox_id_inboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("inbox_id", "external_id", name=op.f("pk_channel_receipts")),
    )
    op.create_index("ix_channel_receipts_delivery_id", "channel_receipts", ["delivery_id"], unique=False)
    op.create_index(
        "ix_channel_receipts_thread", "channel_receipts", ["inbox_id", "thread", "sent_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_channel_receipts_thread", table_name="channel_receipts")
    op.drop_index("ix_channel_receipts_delivery_id", table_name="channel_receipts")
    op.drop_table("channel_receipts")
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.drop_column("merged_into")
