"""Deliveries' states reach the agent live as ``message.status``, from the worker embedded in serve."""

from __future__ import annotations

from pathlib import Path

import httpx

from chatserver.context import Context
from chatserver.outbox import NewDelivery
from chatserver.outbox.email import EMAIL_KIND, email_payload
from tests.e2e.harness import Client, Seed, run_server, settings_for
from tests.e2e.test_chat import start_chat
from tests.outbox.smtp_server import smtp_server


def delivery(cid: str, key: str) -> NewDelivery:
    payload = email_payload(to="ann@example.com", subject="[#1001] Re: help", text="Hello", message_id=key)
    return NewDelivery(EMAIL_KIND, key, payload, conversation_id=cid, message_id="msg_x")


async def test_agent_sees_retry_then_sent_and_a_permanent_failure(
    http: httpx.AsyncClient, sqlite_url: str, seeded: Seed, tmp_path: Path
) -> None:
    with smtp_server("451 4.7.1 greylisted", "250 OK", "554 5.7.1 rejected as spam") as smtp:
        settings = settings_for(
            sqlite_url, tmp_path, smtp_url=smtp.url, workers_in_serve=True, outbox_retry_s=0.1
        )
        async with run_server(settings) as server:
            ctx: Context = server.app.state.ctx
            assert ctx.outbox is not None and ctx.outbox_worker is not None
            _, cid = await start_chat(http, server, seeded)
            async with Client.connect(
                f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None
            ) as agent:
                await agent.expect("hello")
                assert (await agent.request({"type": "conversation.view", "conversation_id": cid}))[
                    "type"
                ] == "ack"
                await ctx.outbox.enqueue([delivery(cid, "<a@x>")])
                ctx.outbox_worker.wake()
                retry = await agent.expect("message.status", conversation_id=cid, state="queued")
                assert retry["reason"].startswith("SMTP 451") and retry["kind"] == "email"
                sent = await agent.expect("message.status", conversation_id=cid, state="sent")
                assert sent["message_id"] == "msg_x" and "reason" not in sent
                await ctx.outbox.enqueue([delivery(cid, "<b@x>")])
                ctx.outbox_worker.wake()
                failed = await agent.expect("message.status", conversation_id=cid, state="failed")
                assert failed["reason"] == "SMTP 554 5.7.1 rejected as spam"
            assert len(smtp.mailbox.received) == 1 and smtp.mailbox.attempts == 3
