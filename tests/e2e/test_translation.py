"""Two-way translation through a running server, against local wire-compatible providers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Client, run_server, seed, settings_for, visitor_token
from tests.translation.fakes import serve
from tests.translation.helpers import make_fake

GERMAN = "Guten Morgen, ich habe eine Frage zu meiner Bestellung."
GERMAN_ES = "Buenos días, tengo una pregunta sobre mi pedido."
SPANISH = "Claro, ¿cuál es el número de pedido?"
SPANISH_DE = "Natürlich, wie lautet die Bestellnummer?"


@pytest.mark.parametrize("provider", ["libretranslate", "google_v3", "google_v2"])
async def test_german_visitor_and_spanish_agent_each_read_their_language(
    provider: str, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    async with serve(make_fake(provider)) as fake:
        url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
        s = await seed(url)
        settings = settings_for(
            url,
            tmp_path,
            translation_provider=provider,
            translation_url=fake.url if provider == "libretranslate" else None,
            translation_endpoint=fake.url if provider != "libretranslate" else None,
            translation_project="proj" if provider == "google_v3" else None,
            translation_retry_s=0.2,
            languages=("de", "es", "en"),
        )
        async with run_server(settings) as server:
            auth = {"Authorization": f"Bearer {s.agent_token}"}
            me = await http.patch(
                f"{server.url}/api/v1/agents/{s.agent_id}", json={"language": "es"}, headers=auth
            )
            assert me.status_code == 200 and me.json()["language"] == "es"
            tok = (await visitor_token(http, server.url, s.inbox_key))["token"]  # locale de-DE
            async with (
                Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
                Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
            ):
                cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
                conv = await agent.expect("conversation", conversation__id=cid)
                assert conv["conversation"]["language"] == "de"
                await agent.request({"type": "conversation.claim", "conversation_id": cid})

                sent = await visitor.request(
                    {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": GERMAN}
                )
                original = await agent.expect("message", seq=sent["seq"])
                assert original["message"]["text"] == GERMAN and original["message"]["lang"] == "de"
                tr = await agent.expect("message.translated", seq=sent["seq"])
                assert (tr["lang"], tr["text"]) == ("es", GERMAN_ES)

                reply = await agent.request(
                    {"type": "message.send", "conversation_id": cid, "client_id": "a1", "text": SPANISH}
                )
                got = await visitor.expect("message", seq=reply["seq"])
                assert got["message"]["text"] == SPANISH and got["message"]["lang"] == "es"
                tr = await visitor.expect("message.translated", seq=reply["seq"])
                assert (tr["lang"], tr["text"]) == ("de", SPANISH_DE)

                draft = await agent.request(
                    {"type": "draft.translate", "conversation_id": cid, "text": SPANISH}
                )
                assert draft["type"] == "ack" and (draft["lang"], draft["text"]) == ("de", SPANISH_DE)

                note = await agent.request(
                    {
                        "type": "message.send",
                        "conversation_id": cid,
                        "client_id": "n",
                        "text": "nota",
                        "private": True,
                    }
                )
                assert note["type"] == "ack"

                # the visitor never got the translation of their own words (it reveals the agent's language)
                own = [
                    f
                    for f in visitor.frames
                    if f.get("type") == "message.translated" and f["seq"] == sent["seq"]
                ]
                assert own == []

            # history, resume and transcripts carry the translations
            history = await http.get(f"{server.url}/api/v1/conversations/{cid}/messages", headers=auth)
            by_text = {m["text"]: m for m in history.json()["items"]}
            assert by_text[GERMAN]["translations"] == {"es": GERMAN_ES}
            assert by_text[SPANISH]["translations"] == {"de": SPANISH_DE}
            assert by_text["nota"]["translations"] == {}
            async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as again:
                await again.send({"type": "resume", "cursors": {cid: 0}})
                await again.expect("resumed")
                replayed = {
                    f["message"]["text"]: f["message"] for f in again.frames if f.get("type") == "message"
                }
                assert replayed[SPANISH]["translations"] == {"de": SPANISH_DE}
                assert "nota" not in replayed
        requests = [fake.parse(r.body) for r in fake.requests if r.method == "POST"]
        assert {(j.source, j.target) for j in requests} >= {("de", "es"), ("es", "de")}
        assert "nota" not in str(fake.texts_sent)


async def test_provider_outage_delivers_untranslated_then_fills_in(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    async with serve(make_fake("libretranslate")) as fake:
        url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
        s = await seed(url)
        settings = settings_for(
            url,
            tmp_path,
            translation_provider="libretranslate",
            translation_url=fake.url,
            translation_retry_s=0.2,
            languages=("de", "es", "en"),
        )
        async with run_server(settings) as server:
            tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
            async with (
                Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
                Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
            ):
                cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
                await agent.request({"type": "conversation.claim", "conversation_id": cid})
                fake.mode = "server_error"  # the provider fails mid-conversation
                sent = await visitor.request(
                    {
                        "type": "message.send",
                        "conversation_id": cid,
                        "client_id": "v1",
                        "text": "Hallo, ist da jemand?",
                    }
                )
                assert sent["type"] == "ack"
                original = await agent.expect("message", seq=sent["seq"])
                assert (
                    original["message"]["text"] == "Hallo, ist da jemand?"
                )  # delivered untranslated at once
                failed = await agent.expect("message.translated", seq=sent["seq"])
                assert failed["text"] is None and failed["reason"] == "provider_unavailable"
                later = await visitor.request(
                    {
                        "type": "message.send",
                        "conversation_id": cid,
                        "client_id": "v2",
                        "text": "Ich warte noch.",
                    }
                )
                await agent.expect("message", seq=later["seq"])  # messages keep flowing during the outage

                fake.mode = "ok"  # the provider recovers: the background retry fills the translations in
                filled = await agent.expect(
                    "message.translated", seq=sent["seq"], text="[en] Hallo, ist da jemand?", timeout=15
                )
                assert filled["lang"] == "en"
                await agent.expect(
                    "message.translated", seq=later["seq"], text="[en] Ich warte noch.", timeout=15
                )
            history = await http.get(
                f"{server.url}/api/v1/conversations/{cid}/messages",
                headers={"Authorization": f"Bearer {s.agent_token}"},
            )
            stored = history.json()["items"]
            texts = {m["text"]: m for m in stored}
            assert texts["Hallo, ist da jemand?"]["translations"] == {"en": "[en] Hallo, ist da jemand?"}
            assert texts["Hallo, ist da jemand?"]["untranslated"] == {}
            metrics = await http.get(
                f"{server.url}/api/v1/metrics", headers={"Authorization": f"Bearer {s.admin_token}"}
            )
            assert metrics.json()["translation"]["errors"]["unavailable"] >= 1


async def test_canned_responses_are_translated_when_used(tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with serve(make_fake("libretranslate")) as fake:
        url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
        s = await seed(url)
        settings = settings_for(
            url,
            tmp_path,
            translation_provider="libretranslate",
            translation_url=fake.url,
            languages=("de", "es", "en"),
        )
        async with run_server(settings) as server:
            admin = {"Authorization": f"Bearer {s.admin_token}"}
            agent = {"Authorization": f"Bearer {s.agent_token}"}
            base = f"{server.url}/api/v1/canned-responses"
            made = await http.post(
                base, json={"shortcut": "order", "text": SPANISH, "language": "es"}, headers=admin
            )
            assert made.status_code == 201
            cid_ = made.json()["id"]
            # bad input changes nothing
            assert (
                await http.post(base, json={"shortcut": "x", "text": "t"}, headers=agent)
            ).status_code == 403
            taken = await http.post(base, json={"shortcut": "order", "text": "other"}, headers=admin)
            assert taken.status_code == 409 and taken.json()["error"]["data"]["field"] == "shortcut"
            bad = await http.post(base, json={"shortcut": "no spaces", "text": "t"}, headers=admin)
            assert bad.status_code == 422 and bad.json()["error"]["data"]["field"] == "shortcut"
            assert (await http.post(base, json={"shortcut": "y"}, headers=admin)).status_code == 422
            listed = (await http.get(f"{base}?q=ord", headers=agent)).json()["items"]
            assert [c["shortcut"] for c in listed] == ["order"]

            tok = (await visitor_token(http, server.url, s.inbox_key))["token"]  # a German visitor
            async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor:
                cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
            rendered = await http.post(f"{base}/{cid_}/render", json={"conversation_id": cid}, headers=agent)
            assert rendered.json() == {
                "conversation_id": cid,
                "lang": "de",
                "text": SPANISH_DE,
                "original": SPANISH,
                "reason": None,
            }
            missing = await http.post(f"{base}/cr_nope/render", json={"conversation_id": cid}, headers=agent)
            assert missing.status_code == 404
            again = await http.post(f"{base}/{cid_}/render", json={"conversation_id": cid}, headers=agent)
            assert again.json()["text"] == SPANISH_DE  # from the cache
            posts = len(fake.requests)
            fake.mode = "server_error"  # a failing provider still gives the agent the original to use
            edited = await http.patch(f"{base}/{cid_}", json={"text": "Hola"}, headers=admin)
            assert edited.json()["text"] == "Hola"
            degraded = (
                await http.post(f"{base}/{cid_}/render", json={"conversation_id": cid}, headers=agent)
            ).json()
            assert degraded["text"] == "Hola" and degraded["reason"] == "provider_unavailable"
            assert degraded["lang"] == "es" and len(fake.requests) > posts
            assert (await http.delete(f"{base}/{cid_}", headers=admin)).status_code == 204
            assert (await http.get(base, headers=agent)).json()["items"] == []


async def test_stated_language_and_profile_changes_apply_without_reconnecting(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    async with serve(make_fake("libretranslate")) as fake:
        url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
        s = await seed(url)
        settings = settings_for(
            url,
            tmp_path,
            translation_provider="libretranslate",
            translation_url=fake.url,
            languages=("de", "es", "en"),
        )
        async with run_server(settings) as server:
            tok = (await visitor_token(http, server.url, s.inbox_key))["token"]  # German visitor
            async with (
                Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
                Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
            ):
                cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
                await agent.request({"type": "conversation.claim", "conversation_id": cid})
                # a draft the agent already translated into German is not translated again
                sent = await agent.request(
                    {
                        "type": "message.send",
                        "conversation_id": cid,
                        "client_id": "d",
                        "text": SPANISH_DE,
                        "lang": "de",
                    }
                )
                got = await visitor.expect("message", seq=sent["seq"])
                assert got["message"]["lang"] == "de"
                # the agent changes their language: it applies to this connection at once
                r = await http.patch(
                    f"{server.url}/api/v1/agents/{s.agent_id}",
                    json={"language": "es"},
                    headers={"Authorization": f"Bearer {s.agent_token}"},
                )
                assert r.status_code == 200
                await agent.expect("notice", code="profile")
                reply = await agent.request(
                    {"type": "message.send", "conversation_id": cid, "client_id": "e", "text": SPANISH}
                )
                assert (await visitor.expect("message", seq=reply["seq"]))["message"]["lang"] == "es"
                tr = await visitor.expect("message.translated", seq=reply["seq"])
                assert tr["text"] == SPANISH_DE
            requests = [fake.parse(r.body) for r in fake.requests if r.method == "POST"]
            assert SPANISH_DE not in [t for job in requests for t in job.texts]
