"""routing: teams, members, rules, the routing fence, routing state on conversations and agents

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=True),
        sa.Column("holidays", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_team_members_team_id_teams"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_team_members_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("team_id", "agent_id", name=op.f("pk_team_members")),
    )
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("match", sa.JSON(), nullable=False),
        sa.Column("team_id", sa.String(length=64), nullable=True),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("offer_timeout_s", sa.Float(), nullable=True),
        sa.Column("max_wait_s", sa.Float(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_routing_rules_team_id_teams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rules")),
    )
    op.create_table(
        "routing_fence",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_routing_fence")),
    )
    op.execute("INSERT INTO routing_fence (name, token) VALUES ('routing', 0)")
    op.create_table(
        "routing_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("waited_ms", sa.BigInteger(), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_events")),
    )
    with op.batch_alter_table("routing_events") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_events_conversation_id"), ["conversation_id"], unique=False
        )
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("routing", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("offer_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("offer_agent_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("offer_expires_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("pending_reason", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_conversations_offer_agent_id"), ["offer_agent_id"], unique=False)
    with op.batch_alter_table("agents") as batch_op:
        batch_op.add_column(sa.Column("missed_offers", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_assigned_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch_op:
        batch_op.drop_column("last_assigned_at")
        batch_op.drop_column("missed_offers")
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_offer_agent_id"))
        for name in (
            "pending_reason",
            "offer_expires_at",
            "offer_agent_id",
            "offer_id",
            "routing",
            "enqueued_at",
        ):
            batch_op.drop_column(name)
    op.drop_table("routing_events")
    op.drop_table("routing_fence")
    op.drop_table("routing_rules")
    op.drop_table("team_members")
    op.drop_table("teams")
