"""email: email threads (plus-address tokens), email messages (Message-IDs, loop
decisions, attachments), IMAP state (UIDVALIDITY, last UID)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_threads",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("inbox_id", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("contact_address", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_email_threads_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["inbox_id"], ["inboxes.id"], name=op.f("fk_email_threads_inbox_id_inboxes")),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_email_threads")),
        sa.UniqueConstraint("token", name=op.f("uq_email_threads_token")),
    )
    op.create_table(
        "email_messages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("inbox_id", sa.String(length=64), nullable=False),
        sa.Column("rfc_message_id", sa.String(length=500), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("thread_kind", sa.String(length=16), nullable=True),
        sa.Column("loop", sa.JSON(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("raw_path", sa.String(length=500), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inboxes.id"], name=op.f("fk_email_messages_inbox_id_inboxes")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_email_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_messages")),
        sa.UniqueConstraint("inbox_id", "rfc_message_id", name="uq_email_messages_inbox_rfc"),
    )
    op.create_index("ix_email_messages_message_id", "email_messages", ["message_id"])
    op.create_index("ix_email_messages_conversation_id", "email_messages", ["conversation_id"])
    op.create_table(
        "imap_state",
        sa.Column("inbox_id", sa.String(length=64), nullable=False),
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inboxes.id"], name=op.f("fk_imap_state_inbox_id_inboxes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("inbox_id", name=op.f("pk_imap_state")),
    )


def downgrade() -> None:
    op.drop_table("imap_state")
    op.drop_index("ix_email_messages_conversation_id", table_name="email_messages")
    op.drop_index("ix_email_messages_message_id", table_name="email_messages")
    op.drop_table("email_messages")
    op.drop_table("email_threads")
