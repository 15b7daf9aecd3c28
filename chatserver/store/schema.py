"""The one schema, in SQLAlchemy Core. Alembic migrations (store/migrations) create and evolve it."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = sa.String(64)
MS = sa.BigInteger  # timestamps are epoch milliseconds

inboxes = sa.Table(
    "inboxes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("allowed_origins", sa.JSON, nullable=False),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("config", sa.JSON(none_as_null=True), nullable=True),
    # Channel settings (email: address, IMAP mailbox, tickets); see chatserver/mail/config.py.
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("languages", sa.JSON, nullable=False),
    sa.Column("skills", sa.JSON, nullable=False),
    sa.Column("max_concurrent", sa.Integer, nullable=True),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("language", sa.String(35), nullable=True),
    sa.Column("missed_offers", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_assigned_at", MS, nullable=True),
    sa.Column("avatar_url", sa.String(500), nullable=True),  # https:// or a same-origin /path
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("agent_id", ID, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("revoked_at", MS, nullable=True),
)

agent_sessions = sa.Table(
    "agent_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("agent_id", ID, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("expires_at", MS, nullable=False, index=True),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=True, index=True),
    sa.Column("phone", sa.String(64), nullable=True),
    sa.Column("language", sa.String(35), nullable=True),
    sa.Column("verified", sa.Boolean, nullable=False),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("merged_into", ID, nullable=True),  # merged contacts point to the survivor
)

contact_identities = sa.Table(
    "contact_identities",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("external_id", sa.String(200), primary_key=True),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("last_inbound_at", MS, nullable=True),  # platform timestamp of their last message (windows)
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("inbox_id", ID, sa.ForeignKey("inboxes.id"), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id"), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("skills", sa.JSON, nullable=False),
    sa.Column("language", sa.String(35), nullable=True),
    sa.Column("team", sa.String(64), nullable=True),
    sa.Column("assignee_id", ID, sa.ForeignKey("agents.id"), nullable=True, index=True),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("updated_at", MS, nullable=False),
    sa.Column("last_message_at", MS, nullable=True),
    sa.Column("first_response_at", MS, nullable=True),
    sa.Column("resolved_at", MS, nullable=True),
    sa.Column("enqueued_at", MS, nullable=True),
    sa.Column("routing", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("offer_id", ID, nullable=True),
    sa.Column("offer_agent_id", ID, nullable=True, index=True),
    sa.Column("offer_expires_at", MS, nullable=True),
    sa.Column("pending_reason", sa.String(64), nullable=True),
    sa.Index("ix_conversations_status_created", "status", "created_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("conversation_id", ID, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("author_kind", sa.String(16), nullable=False),
    sa.Column("author_id", ID, nullable=False),
    sa.Column("author_name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("lang", sa.String(35), nullable=True),
    sa.Column("translations", sa.JSON, nullable=False),
    sa.Column("client_id", sa.String(64), nullable=True),
    sa.Column("external_id", sa.String(200), nullable=True),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("untranslated", sa.JSON(none_as_null=True), nullable=True),
    # [{id, name, content_type, size}] of the files sent with the message (see the attachments table)
    sa.Column("attachments", sa.JSON(none_as_null=True), nullable=True),
    # a system line's {code, params} (chatserver/model/system_lines.py); its text is the English form
    sa.Column("event", sa.JSON(none_as_null=True), nullable=True),
    sa.UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    sa.UniqueConstraint(
        "conversation_id", "author_kind", "author_id", "client_id", name="uq_messages_idempotency"
    ),
    sa.Index("ix_messages_conversation_client", "conversation_id", "client_id"),
    sa.Index("ix_messages_external_id", "external_id"),
)

attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "conversation_id",
        ID,
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("message_id", ID, nullable=True),  # set when the message carrying it commits (once)
    sa.Column("sha256", sa.String(64), nullable=False),  # the content on disk, stored once per content
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(127), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("uploader_kind", sa.String(16), nullable=False),
    sa.Column("uploader_id", ID, nullable=False),
    sa.Column("created_at", MS, nullable=False),
)

read_cursors = sa.Table(
    "read_cursors",
    metadata,
    sa.Column("conversation_id", ID, sa.ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("reader_kind", sa.String(16), primary_key=True),
    sa.Column("reader_id", ID, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", MS, nullable=False),
)

canned_responses = sa.Table(
    "canned_responses",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("shortcut", sa.String(64), nullable=False, unique=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("language", sa.String(35), nullable=True),
    sa.Column("created_by", ID, nullable=True),
    sa.Column("created_at", MS, nullable=False),
)

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("hours", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("holidays", sa.JSON, nullable=False),
    sa.Column("created_at", MS, nullable=False),
)

team_members = sa.Table(
    "team_members",
    metadata,
    sa.Column("team_id", ID, sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("agent_id", ID, sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
)

routing_rules = sa.Table(
    "routing_rules",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("match", sa.JSON, nullable=False),
    sa.Column("team_id", ID, sa.ForeignKey("teams.id", ondelete="SET NULL"), nullable=True),
    sa.Column("skills", sa.JSON, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("offer_timeout_s", sa.Float, nullable=True),
    sa.Column("max_wait_s", sa.Float, nullable=True),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("ticket_on", sa.JSON(none_as_null=True), nullable=True),  # null: the default (max wait)
)

routing_fence = sa.Table(
    "routing_fence",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("token", sa.BigInteger, nullable=False),
)

routing_events = sa.Table(
    "routing_events",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("conversation_id", ID, nullable=False, index=True),
    sa.Column("agent_id", ID, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("waited_ms", sa.BigInteger, nullable=True),
    sa.Column("at", MS, nullable=False),
)

channel_cursors = sa.Table(
    "channel_cursors",
    metadata,
    sa.Column("inbox_id", ID, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", MS, nullable=False),
)

channel_receipts = sa.Table(
    "channel_receipts",
    metadata,
    # one row per message part a platform accepted: its id, for the platform's delivery states
    sa.Column("inbox_id", ID, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("external_id", sa.String(200), primary_key=True),
    sa.Column("delivery_id", ID, nullable=False, index=True),
    sa.Column("part", sa.Integer, nullable=False),
    sa.Column("thread", sa.String(200), nullable=False),  # the recipient (PSID, wa_id, phone, chat id)
    sa.Column("sent_at", MS, nullable=False),
    sa.Index("ix_channel_receipts_thread", "inbox_id", "thread", "sent_at"),
)

# -- email -------------------------------------------------------------------------------------------------

email_threads = sa.Table(
    "email_threads",
    metadata,
    sa.Column("conversation_id", ID, sa.ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("inbox_id", ID, sa.ForeignKey("inboxes.id"), nullable=False),
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    # The plus-address token: replies to support+<token>@ join this conversation.
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("contact_address", sa.String(320), nullable=False),
    sa.Column("created_at", MS, nullable=False),
)

email_messages = sa.Table(
    "email_messages",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("inbox_id", ID, sa.ForeignKey("inboxes.id"), nullable=False),
    sa.Column("rfc_message_id", sa.String(500), nullable=False),
    # The Message-ID without brackets (``sha256:<digest>`` for mail without one).
    sa.Column("direction", sa.String(8), nullable=False),
    # in (received) or out (sent by us: its Message-ID threads replies and marks our own mail).
    sa.Column("conversation_id", ID, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=True),
    sa.Column("message_id", ID, nullable=True),
    # The conversation message, once committed (NULL while an import is in flight).
    sa.Column("sender", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("thread_kind", sa.String(16), nullable=True),
    # in: how it threaded (token, headers, ticket, new); out: auto (an automatic answer, counted by the
    # per-sender limit) or reply.
    sa.Column("loop", sa.JSON, nullable=False),
    # The loop-safety decision: {ignore, auto_reply_allowed, reasons}.
    sa.Column("attachments", sa.JSON, nullable=False),
    sa.Column("problems", sa.JSON, nullable=False),
    sa.Column("raw_path", sa.String(500), nullable=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", MS, nullable=False),
    sa.UniqueConstraint("inbox_id", "rfc_message_id", name="uq_email_messages_inbox_rfc"),
    sa.Index("ix_email_messages_message_id", "message_id"),
    sa.Index("ix_email_messages_conversation_id", "conversation_id"),
)

imap_state = sa.Table(
    "imap_state",
    metadata,
    sa.Column("inbox_id", ID, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("mailbox", sa.String(200), nullable=False),
    sa.Column("uidvalidity", sa.BigInteger, nullable=False),
    sa.Column("last_uid", sa.BigInteger, nullable=False),
    sa.Column("updated_at", MS, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("conversation_id", ID, nullable=True, index=True),
    sa.Column("message_id", ID, nullable=True, index=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", MS, nullable=False),
    sa.Column("lease_token", ID, nullable=True),
    sa.Column("lease_until", MS, nullable=True),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("updated_at", MS, nullable=False),
    sa.Column("sent_at", MS, nullable=True),
    sa.Index("ix_outbox_state_next", "state", "next_attempt_at"),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("number", sa.BigInteger, nullable=False, unique=True),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("requester_id", ID, sa.ForeignKey("contacts.id"), nullable=False, index=True),
    sa.Column("conversation_id", ID, sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("assignee_id", ID, sa.ForeignKey("agents.id"), nullable=True, index=True),
    sa.Column("team_id", ID, nullable=True, index=True),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("merged_into", sa.BigInteger, nullable=True),
    sa.Column("parent_number", sa.BigInteger, nullable=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("updated_at", MS, nullable=False),
    sa.Column("solved_at", MS, nullable=True),
    sa.Column("first_response_at", MS, nullable=True),
    sa.Column("email_refs", sa.JSON, nullable=False),
    sa.Column("email_note", sa.Text, nullable=True),
    sa.Column("sla", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("sla_due_at", MS, nullable=True),
    sa.Column("sla_breached", sa.Boolean, nullable=False),
    sa.Index("ix_tickets_status_updated", "status", "updated_at"),
)

ticket_conversations = sa.Table(
    "ticket_conversations",
    metadata,
    sa.Column("conversation_id", ID, sa.ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("ticket_id", ID, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("linked_at", MS, nullable=False),
)

ticket_audit = sa.Table(
    "ticket_audit",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("ticket_id", ID, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", MS, nullable=False),
    sa.Column("actor", sa.JSON, nullable=False),
    sa.Column("field", sa.String(100), nullable=False),
    sa.Column("old", sa.JSON, nullable=True),
    sa.Column("new", sa.JSON, nullable=True),
)

ticket_field_defs = sa.Table(
    "ticket_field_defs",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("required", sa.Boolean, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("created_at", MS, nullable=False),
)

csat_ratings = sa.Table(
    "csat_ratings",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("ticket_id", ID, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=True, unique=True),
    sa.Column(
        "conversation_id",
        ID,
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=True,
        unique=True,
    ),
    sa.Column("contact_id", ID, nullable=False, index=True),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("link_nonce", sa.String(64), nullable=True, unique=True),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("updated_at", MS, nullable=False),
)

sla_policies = sa.Table(
    "sla_policies",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("match", sa.JSON, nullable=False),
    sa.Column("targets", sa.JSON, nullable=False),
    sa.Column("warn_before_s", sa.Integer, nullable=False),
    sa.Column("calendar", sa.JSON, nullable=False),
    sa.Column("created_at", MS, nullable=False),
)

sla_events = sa.Table(
    "sla_events",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("ticket_id", ID, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("target", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("started_at", MS, nullable=False),
    sa.Column("due_at", MS, nullable=False),
    sa.Column("at", MS, nullable=False),
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("ticket_id", "target", "kind", "started_at", name="uq_sla_events_once"),
)

# -- the adapter API (bots, custom channels) and outgoing webhooks -------------------------------------------

adapters = sa.Table(
    "adapters",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # bot | channel
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("url", sa.String(2000), nullable=True),
    # channel adapters: where agents' replies are POSTed (signed) while no socket is open
    sa.Column("secret", sa.String(200), nullable=True),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("revoked_at", MS, nullable=True),
)

adapter_inboxes = sa.Table(
    "adapter_inboxes",
    metadata,
    sa.Column("adapter_id", ID, sa.ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("inbox_id", ID, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True),
)

inbox_bots = sa.Table(
    "inbox_bots",
    metadata,
    sa.Column("inbox_id", ID, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("adapter_id", ID, sa.ForeignKey("adapters.id", ondelete="CASCADE"), nullable=False, index=True),
)

message_actions = sa.Table(
    "message_actions",
    metadata,
    sa.Column("message_id", ID, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("conversation_id", ID, nullable=False, index=True),
    sa.Column("actions", sa.JSON, nullable=False),
    # a bot's buttons [{id, label}]; or, for a visitor's click, {"action_id", "message_id"}
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("secret", sa.String(200), nullable=False),
    sa.Column("created_at", MS, nullable=False),
    sa.Column("deleted_at", MS, nullable=True),
)
