"""Email over REST: create an email inbox (through POST /api/v1/inboxes) and view a mail as it came,
with its full text (quoted history included), its HTML as text, its attachments and the raw message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.email.parse import Limits, parse_email
from chatserver.api import schemas as S
from chatserver.api.common import api, ctx, current_agent, json_response, req_str
from chatserver.api.openapi import spec
from chatserver.errors import Invalid, NotFound
from chatserver.mail.config import ConfigProblem, parse_email_config
from chatserver.mail.files import MailFiles
from chatserver.mail.store import EmailRecord, MailStore
from chatserver.model.types import Inbox

EMAIL_FIELDS = ("address", "imap_url", "imap_processed", "tickets")


async def create_email_inbox(request: Request, data: dict[str, Any]) -> Inbox:
    """POST /api/v1/inboxes with ``"channel": "email"`` (the caller checked the admin role)."""
    name = req_str(data, "name")
    if data.get("allowed_origins"):
        raise Invalid("allowed_origins is for widget inboxes", data={"field": "allowed_origins"})
    try:
        config = parse_email_config(**{f: data.get(f) for f in EMAIL_FIELDS})
    except ConfigProblem as exc:
        raise Invalid(exc.message, data={"field": exc.field}) from exc
    return await MailStore(ctx(request).store.db).create_email_inbox(name, config)


async def _record(request: Request) -> tuple[EmailRecord, Path]:
    c = ctx(request)
    await current_agent(request)
    record = await MailStore(c.store.db).email_for_message(request.path_params["message_id"])
    if record is None or record.raw_path is None:
        raise NotFound("no email for this message")
    return record, Path(record.raw_path)


@api
async def get_email(request: Request) -> Response:
    """The mail behind a conversation message: headers, the whole text, the HTML (as a string, for
    display as text only), the folded parts, the attachments and the loop-safety decision."""
    record, path = await _record(request)
    try:
        raw = await MailFiles(path.parent).read(path)
    except OSError as exc:
        raise NotFound("the stored mail is gone") from exc
    parsed = parse_email(raw, Limits(max_attachments=10_000, max_attachment_bytes=1 << 40))
    return json_response(
        {
            "message_id": record.message_id,
            "conversation_id": record.conversation_id,
            "rfc_message_id": record.rfc_message_id,
            "from": {"name": parsed.from_name, "address": parsed.from_address},
            "to": list(parsed.to),
            "cc": list(parsed.cc),
            "subject": parsed.subject,
            "date": parsed.date,
            "text": parsed.text,
            "html": parsed.html,
            "display_text": parsed.display_text,
            "quoted": parsed.quoted,
            "signature": parsed.signature,
            "attachments": record.attachments,
            "loop": record.loop,
            "thread": record.thread_kind,
            "problems": record.problems,
            "size": len(raw),
        }
    )


@api
async def get_raw(request: Request) -> Response:
    """The message as received (text/plain, as a download: never rendered by the browser)."""
    _, path = await _record(request)
    try:
        raw = await MailFiles(path.parent).read(path)
    except OSError as exc:
        raise NotFound("the stored mail is gone") from exc
    return Response(
        raw,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="message.eml"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@api
async def get_attachment(request: Request) -> Response:
    record, _ = await _record(request)
    try:
        index = int(request.path_params["index"])
        meta = [a for a in record.attachments if "sha256" in a][index]
    except (ValueError, IndexError) as exc:
        raise NotFound("no such attachment") from exc
    files = MailFiles(ctx(request).settings.mail_path)
    try:
        data = await files.read(files.attachment_path(str(meta["sha256"])))
    except OSError as exc:
        raise NotFound("the stored attachment is gone") from exc
    name = str(meta["filename"]).replace('"', "").encode("ascii", "replace").decode()
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


routes = [
    Route("/api/v1/email/messages/{message_id}", spec(get_email, response=S.EMAIL), methods=["GET"]),
    Route(
        "/api/v1/email/messages/{message_id}/raw",
        spec(get_raw, response=S.STR, content="text/plain"),
        methods=["GET"],
    ),
    Route(
        "/api/v1/email/messages/{message_id}/attachments/{index}",
        spec(get_attachment, response=S.STR, content="application/octet-stream"),
        methods=["GET"],
    ),
]

__all__ = ["create_email_inbox", "routes"]
