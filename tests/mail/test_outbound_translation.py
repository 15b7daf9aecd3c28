"""An agent's reply in an email conversation is mailed in the contact's language when translation is on;
the agent keeps the original, and a provider failure mails the original."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.harness import Client, run_server, seed, settings_for
from tests.mail.helpers import mail, mail_services, send
from tests.outbox.smtp_server import smtp_server
from tests.translation.fakes import serve
from tests.translation.helpers import make_fake

GERMAN = "Guten Morgen, ich habe eine Frage zu meiner Bestellung."


async def test_a_reply_is_mailed_in_the_contacts_language_and_the_original_on_failure(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    async with serve(make_fake("libretranslate")) as fake:
        with smtp_server() as sink:
            url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
            s = await seed(url)
            settings = settings_for(
                url,
                tmp_path,
                translation_provider="libretranslate",
                translation_url=fake.url,
                translation_retry_s=0.2,
                languages=("de", "es", "en"),
                smtp_url=sink.url,
                workers_in_serve=True,
                outbox_retry_s=0.1,
            )
            async with (
                run_server(settings) as server,
                mail_services(server) as (services, _),
                Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
            ):
                await agent.expect("hello")
                await send(services.smtp.port, mail(GERMAN, subject="Bestellung"))  # type: ignore[union-attr]
                conv = await agent.expect("conversation", conversation__channel="email")
                cid = conv["conversation"]["id"]
                await agent.request({"type": "conversation.claim", "conversation_id": cid})
                r = await http.get(
                    f"{server.url}/api/v1/conversations/{cid}/messages?after=0",
                    headers={"Authorization": f"Bearer {s.agent_token}"},
                )
                (theirs,) = [m for m in r.json()["items"] if m["kind"] == "text"]
                assert theirs["lang"] == "de"

                first = await agent.request(
                    {"type": "message.send", "conversation_id": cid, "client_id": "a", "text": "Which order?"}
                )
                mine = await agent.expect("message", seq=first["seq"])
                assert mine["message"]["text"] == "Which order?"  # the agent keeps the original
                await agent.expect("message.status", timeout=20, message_id=first["message_id"], state="sent")

                fake.mode = "server_error"  # the provider fails: the original goes out, nothing waits
                second = await agent.request(
                    {"type": "message.send", "conversation_id": cid, "client_id": "b", "text": "Hello?"}
                )
                assert second["type"] == "ack"
                await agent.expect(
                    "message.status", timeout=20, message_id=second["message_id"], state="sent"
                )
            (translated, untranslated) = sink.mailbox.received
            assert translated.get_content().strip() == "[de] Which order?"
            assert untranslated.get_content().strip() == "Hello?"
