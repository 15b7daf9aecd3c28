"""routing rules: which escalations make a ticket at once (ticket_on)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("routing_rules") as batch_op:
        batch_op.add_column(sa.Column("ticket_on", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("routing_rules") as batch_op:
        batch_op.drop_column("ticket_on")
