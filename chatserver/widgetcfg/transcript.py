"""A conversation's transcript, mailed to the visitor on request (the widget's "Email me this
conversation"). Pure: the text and the mail; the endpoint (chatserver/api/transcript.py) checks who
asks and queues it in the outbox.

Only what the visitor saw goes in: their messages, the agents' and bots' replies (in the visitor's
language when a translation exists) and the system lines; never private notes, never agents' ids.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from chatserver.model.ids import new_id
from chatserver.model.types import AuthorKind, Message, MessageKind
from chatserver.outbox.email import EMAIL_KIND, email_payload, header_text
from chatserver.outbox.registry import NewDelivery

KEY_PREFIX = "transcript:"
"""Idempotency keys of transcript mails start so: the endpoint finds recent ones (a rate limit)."""
EVERY_S = 600
"""At most one transcript per conversation this often."""


def transcript_text(
    messages: Sequence[Message], *, title: str, visitor_name: str, language: str | None, tz: dt.tzinfo
) -> str:
    lines = [title, ""]
    for m in messages:
        if m.kind is MessageKind.NOTE:
            continue
        at = dt.datetime.fromtimestamp(m.created_at / 1000, tz).strftime("%Y-%m-%d %H:%M")
        if m.kind is MessageKind.EVENT:
            lines.append(f"{at}  — {m.text}")
            continue
        mine = m.author.kind is AuthorKind.CONTACT
        who = "You" if mine else (m.author.name or m.author.kind.value)
        text = m.text
        if not mine and language and m.translations.get(language):
            text = m.translations[language]
        files = [str(a.get("name") or "file") for a in m.attachments]
        if files:
            text = (text + "\n" if text else "") + "\n".join(f"[file] {f}" for f in files)
        body = "\n".join("    " + line for line in text.splitlines()) or "    "
        lines.append(f"{at}  {who}:\n{body}")
    lines += ["", f"— sent at {visitor_name}'s request"]
    return "\n".join(lines)


def transcript_mail(
    *, to: str, to_name: str | None, inbox_name: str, text: str, conversation_id: str, mail_from: str
) -> NewDelivery:
    domain = mail_from.rsplit("@", 1)[-1].strip("> ") or "localhost"
    mid = f"<{new_id()}.transcript@{domain}>"
    payload = email_payload(
        to=to,
        to_name=to_name,
        subject=header_text(f"Your conversation with {inbox_name}"),
        text=text,
        message_id=mid,
    )
    payload["auto_submitted"] = "auto-generated"
    return NewDelivery(EMAIL_KIND, KEY_PREFIX + mid, payload, conversation_id=conversation_id)
