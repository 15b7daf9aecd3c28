"""adapters: adapter tokens (bots, custom channels), their inboxes, inbox bots, message buttons, outgoing
webhooks (and the last conversation status they were told)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

ID = sa.String(length=64)


def upgrade() -> None:
    op.create_table(
        "adapters",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adapters")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_adapters_token_hash")),
    )
    op.create_table(
        "adapter_inboxes",
        sa.Column("adapter_id", ID, nullable=False),
        sa.Column("inbox_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapters.id"],
            name=op.f("fk_adapter_inboxes_adapter_id_adapters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inboxes.id"], name=op.f("fk_adapter_inboxes_inbox_id_inboxes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("adapter_id", "inbox_id", name=op.f("pk_adapter_inboxes")),
    )
    op.create_table(
        "inbox_bots",
        sa.Column("inbox_id", ID, nullable=False),
        sa.Column("adapter_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapters.id"],
            name=op.f("fk_inbox_bots_adapter_id_adapters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inboxes.id"], name=op.f("fk_inbox_bots_inbox_id_inboxes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("inbox_id", name=op.f("pk_inbox_bots")),
    )
    op.create_index(op.f("ix_inbox_bots_adapter_id"), "inbox_bots", ["adapter_id"])
    op.create_table(
        "message_actions",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_actions_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_actions")),
    )
    op.create_index(op.f("ix_message_actions_conversation_id"), "message_actions", ["conversation_id"])
    op.create_table(
        "webhooks",
        sa.Column("id", ID, nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_table(
        "webhook_conversation_state",
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_webhook_conversation_state")),
    )


def downgrade() -> None:
    op.drop_table("webhook_conversation_state")
    op.drop_table("webhooks")
    op.drop_index(op.f("ix_message_actions_conversation_id"), table_name="message_actions")
    op.drop_table("message_actions")
    op.drop_index(op.f("ix_inbox_bots_adapter_id"), table_name="inbox_bots")
    op.drop_table("inbox_bots")
    op.drop_table("adapter_inboxes")
    op.drop_table("adapters")
