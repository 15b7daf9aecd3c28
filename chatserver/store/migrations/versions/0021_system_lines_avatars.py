"""system lines carry a code + params (messages.event); agents get an avatar (agents.avatar_url)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("event", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("agents") as batch_op:
        batch_op.add_column(sa.Column("avatar_url", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch_op:
        batch_op.drop_column("avatar_url")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("event")
