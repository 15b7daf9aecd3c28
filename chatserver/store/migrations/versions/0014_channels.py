"""channel inboxes: inbox config, polling cursors, messages by external id, identities' last inbound time

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inboxes") as batch_op:
        batch_op.add_column(sa.Column("config", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("contact_identities") as batch_op:
        batch_op.add_column(sa.Column("last_inbound_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("messages") as batch_op:
        batch_op.create_index("ix_messages_external_id", ["external_id"], unique=False)
    op.create_table(
        "channel_cursors",
        sa.Column("inbox_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"],
            ["inboxes.id"],
            name=op.f("fk_channel_cursors_inbox_id_inboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("inbox_id", name=op.f("pk_channel_cursors")),
    )


def downgrade() -> None:
    op.drop_table("channel_cursors")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index("ix_messages_external_id")
    with op.batch_alter_table("contact_identities") as batch_op:
        batch_op.drop_column("last_inbound_at")
    with op.batch_alter_table("inboxes") as batch_op:
        batch_op.drop_column("config")
