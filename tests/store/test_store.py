"""One store suite, run over SQLite and PostgreSQL (the ``store`` fixture is parametrized)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from chatserver.errors import Conflict, NotFound
from chatserver.model.ids import new_id
from chatserver.model.status import Status
from chatserver.model.types import Author, AuthorKind, MessageKind, Role
from chatserver.store.migrate import current_revision, head_revision, known_head, upgrade
from chatserver.store.store import Store
from chatserver.store.writer import PendingMessage


async def _conversation(store: Store) -> tuple[str, Author]:
    inbox = await store.create_inbox("Web", allowed_origins=["https://shop.example/"])
    contact = await store.create_contact(name="Visitor", channel="widget", language="de")
    conv = await store.create_conversation(inbox=inbox, contact_id=contact.id)
    return conv.id, Author(AuthorKind.CONTACT, contact.id, contact.name)


def _msg(conv_id: str, author: Author, text: str, client_id: str | None = None) -> PendingMessage:
    return PendingMessage(conv_id, author, MessageKind.TEXT, text, client_id=client_id)


async def test_migrations_are_idempotent_and_at_head(store: Store) -> None:
    await upgrade(store.db.engine)
    assert await current_revision(store.db.engine) == head_revision()


def test_the_head_read_off_the_scripts_is_alembics() -> None:
    # the fast path of every start (no Alembic import when the database is current) trusts this
    assert known_head() == head_revision() is not None


async def test_inbox_roundtrip_and_key_lookup(store: Store) -> None:
    inbox = await store.create_inbox("Web", allowed_origins=["https://shop.example/"])
    assert inbox.allowed_origins == ("https://shop.example",)
    assert await store.inbox_by_key(inbox.key) == inbox
    assert await store.inbox_by_key("no-such-key") is None
    updated = await store.update_inbox(inbox.id, name="Shop", allowed_origins=None)
    assert updated.name == "Shop" and updated.key == inbox.key
    with pytest.raises(NotFound):
        await store.get_inbox("ib_missing")


async def test_agent_email_is_unique_case_insensitively(store: Store) -> None:
    email = f"{new_id()}@Example.com"
    agent = await store.create_agent(email=email, name="Ann", role=Role.AGENT, password_hash="h")
    assert agent.email == email.lower()
    with pytest.raises(Conflict):
        await store.create_agent(email=email.upper(), name="Other", role=Role.AGENT, password_hash="h")
    creds = await store.agent_credentials(email)
    assert creds is not None and creds[0].id == agent.id and creds[1] == "h"


async def test_sessions_and_tokens_resolve_only_active_agents(store: Store) -> None:
    agent = await store.create_agent(
        email=f"{new_id()}@x.test", name="Bo", role=Role.AGENT, password_hash=None
    )
    await store.create_session("s" * 64, agent.id, ttl_s=60)
    await store.create_api_token(agent.id, "t" * 64, "cli")
    assert (await store.agent_for_session("s" * 64)) == agent
    assert (await store.agent_for_token("t" * 64)) == agent
    assert await store.agent_for_session("x" * 64) is None
    await store.update_agent(agent.id, active=False)
    assert await store.agent_for_token("t" * 64) is None
    assert await store.agent_for_session("s" * 64) is None


async def test_expired_session_is_rejected_and_purged(store: Store) -> None:
    agent = await store.create_agent(
        email=f"{new_id()}@x.test", name="Cy", role=Role.AGENT, password_hash=None
    )
    await store.create_session("e" * 63 + "1", agent.id, ttl_s=-1)
    assert await store.agent_for_session("e" * 63 + "1") is None
    assert await store.purge_expired_sessions() >= 1


async def test_seq_is_gapless_under_concurrent_senders(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    results = await asyncio.gather(
        *(store.append_message(_msg(conv_id, visitor, f"m{i}")) for i in range(120))
    )
    seqs = sorted(m.seq for m, dup in results)
    assert seqs == list(range(1, 121))
    assert not any(dup for _, dup in results)
    stored = await store.messages_after(conv_id, 0)
    assert [m.seq for m in stored] == list(range(1, 121))
    assert (await store.get_conversation(conv_id)).last_seq == 120
    assert store.writer.batches < 120  # concurrent messages were grouped into fewer transactions


async def test_seq_per_conversation_is_independent(store: Store) -> None:
    a, va = await _conversation(store)
    b, vb = await _conversation(store)
    out = await asyncio.gather(
        *(store.append_message(_msg(a if i % 2 else b, va if i % 2 else vb, str(i))) for i in range(20))
    )
    assert sorted(m.seq for m, _ in out if m.conversation_id == a) == list(range(1, 11))
    assert sorted(m.seq for m, _ in out if m.conversation_id == b) == list(range(1, 11))


async def test_duplicate_client_id_returns_the_original_and_stores_nothing(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    first, dup1 = await store.append_message(_msg(conv_id, visitor, "hello", client_id="c-1"))
    again, dup2 = await store.append_message(_msg(conv_id, visitor, "hello (resent)", client_id="c-1"))
    assert (dup1, dup2) == (False, True)
    assert again == first
    assert [m.text for m in await store.messages_after(conv_id, 0)] == ["hello"]


async def test_duplicate_client_id_in_one_batch(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    out = await asyncio.gather(
        *(store.append_message(_msg(conv_id, visitor, "x", client_id="same")) for _ in range(5))
    )
    assert len({m.id for m, _ in out}) == 1
    assert sorted(dup for _, dup in out) == [False, True, True, True, True]
    assert len(await store.messages_after(conv_id, 0)) == 1


async def test_same_client_id_from_another_author_is_a_new_message(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    agent = Author(AuthorKind.AGENT, "ag_1", "Ann")
    m1, _ = await store.append_message(_msg(conv_id, visitor, "a", client_id="k"))
    m2, dup = await store.append_message(_msg(conv_id, agent, "b", client_id="k"))
    assert not dup and m2.seq == m1.seq + 1


async def test_unknown_conversation_fails_alone(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    good, bad = await asyncio.gather(
        store.append_message(_msg(conv_id, visitor, "ok")),
        store.append_message(_msg("cv_missing", visitor, "lost")),
        return_exceptions=True,
    )
    assert isinstance(bad, NotFound)
    assert not isinstance(good, BaseException) and good[0].seq == 1
    assert (await store.get_conversation(conv_id)).last_seq == 1


async def test_hostile_text_is_stored_verbatim(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    texts = ["<script>alert(1)</script>", "'; DROP TABLE messages; --", "emoji 😀 and ünïcødé \\x00 as text"]
    for t in texts:
        await store.append_message(_msg(conv_id, visitor, t))
    assert [m.text for m in await store.messages_after(conv_id, 0)] == texts


async def test_private_notes_filtered_and_ranges(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    agent = Author(AuthorKind.AGENT, "ag_1", "Ann")
    await store.append_message(_msg(conv_id, visitor, "1"))
    await store.append_message(PendingMessage(conv_id, agent, MessageKind.NOTE, "secret"))
    await store.append_message(_msg(conv_id, agent, "3"))
    assert [m.seq for m in await store.messages_after(conv_id, 0, include_private=False)] == [1, 3]
    assert [m.seq for m in await store.messages_after(conv_id, 0, up_to=2)] == [1, 2]
    assert [m.seq for m in await store.messages_before(conv_id, 3, limit=5, include_private=True)] == [1, 2]
    conv = await store.get_conversation(conv_id)
    assert conv.first_response_at is not None


async def test_claim_is_a_compare_and_set(store: Store) -> None:
    conv_id, _ = await _conversation(store)
    agents = [
        await store.create_agent(
            email=f"{new_id()}@x.test", name=f"A{i}", role=Role.AGENT, password_hash=None
        )
        for i in range(6)
    ]
    claims = await asyncio.gather(
        *(
            store.change_conversation(
                conv_id, Status.ASSIGNED, expect_status={Status.QUEUED}, assignee_id=a.id
            )
            for a in agents
        ),
        return_exceptions=True,
    )
    winners = [c for c in claims if not isinstance(c, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(c, Conflict) for c in claims if isinstance(c, BaseException))
    conv = await store.get_conversation(conv_id)
    assert conv.assignee_id == winners[0].assignee_id and conv.version == 2


async def test_illegal_transition_changes_nothing(store: Store) -> None:
    conv_id, _ = await _conversation(store)
    await store.change_conversation(conv_id, Status.RESOLVED)
    agent = await store.create_agent(
        email=f"{new_id()}@x.test", name="Al", role=Role.AGENT, password_hash=None
    )
    with pytest.raises(Conflict):
        await store.change_conversation(conv_id, Status.ASSIGNED, assignee_id=agent.id)
    conv = await store.get_conversation(conv_id)
    assert conv.status == "resolved" and conv.assignee_id is None and conv.resolved_at is not None


async def test_list_conversations_filters_and_paginates(store: Store) -> None:
    inbox = await store.create_inbox("Paging")
    contact = await store.create_contact(name="P", channel="widget")
    made = [await store.create_conversation(inbox=inbox, contact_id=contact.id) for _ in range(5)]
    await store.change_conversation(made[0].id, Status.RESOLVED)
    page1 = await store.list_conversations(contact_id=contact.id, statuses=["queued"], limit=2)
    page2 = await store.list_conversations(
        contact_id=contact.id, statuses=["queued"], limit=2, cursor=page1[-1].id
    )
    page3 = await store.list_conversations(
        contact_id=contact.id, statuses=["queued"], limit=2, cursor=page2[-1].id
    )
    ids = [c.id for c in page1 + page2 + page3]
    assert ids == [c.id for c in reversed(made[1:])]
    heads = await store.conversation_heads([made[0].id, "cv_missing"])
    assert heads == {made[0].id: (0, 2)}


async def test_read_cursor_only_moves_forward(store: Store) -> None:
    conv_id, _visitor = await _conversation(store)
    assert await store.set_read(conv_id, "agent", "ag_1", 5) == 5
    assert await store.set_read(conv_id, "agent", "ag_1", 3) == 5
    assert await store.set_read(conv_id, "agent", "ag_1", 9) == 9
    assert await store.read_cursors_for(conv_id) == [("agent", "ag_1", 9)]


async def test_durability_settings(store: Store) -> None:
    async with store.db.read() as conn:
        if store.db.is_sqlite:
            assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(sa.text("PRAGMA synchronous"))).scalar() == 2  # FULL
        else:
            assert (await conn.execute(sa.text("SHOW synchronous_commit"))).scalar() == "on"


async def test_translations_are_recorded_and_untranslated_ones_found(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    m, _ = await store.append_message(_msg(conv_id, visitor, "Hallo"))
    done, _ = await store.append_message(_msg(conv_id, visitor, "Danke"))
    await store.record_translation(done.id, "es", text="Gracias", reason=None)
    failed = await store.record_translation(m.id, "es", text=None, reason="provider_unavailable")
    assert failed.untranslated == {"es": "provider_unavailable"} and failed.translations == {}
    assert [x.id for x in await store.untranslated_since(0)] == [m.id]
    fixed = await store.record_translation(m.id, "es", text="Hola", reason=None)
    assert fixed.translations == {"es": "Hola"} and fixed.untranslated == {}
    assert await store.untranslated_since(0) == []
    # a late failure never hides a translation that arrived first
    kept = await store.record_translation(m.id, "es", text=None, reason="provider_unavailable")
    assert kept.translations == {"es": "Hola"} and kept.untranslated == {}
    assert [x.text for x in await store.messages_after(conv_id, 0)] == ["Hallo", "Danke"]
    assert (await store.get_message(done.id)).translations == {"es": "Gracias"}


async def test_migrations_build_exactly_the_declared_schema(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from chatserver.store.schema import metadata

    async with store.db.read() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    assert diff == []


async def test_a_system_lines_code_and_an_agents_avatar_are_stored(store: Store) -> None:
    from chatserver.model.system_lines import SystemLine
    from chatserver.model.types import SYSTEM_AUTHOR

    conv_id, visitor = await _conversation(store)
    line = SystemLine.of("agent_joined", name="Anna")
    written, _ = await store.append_message(
        PendingMessage(conv_id, SYSTEM_AUTHOR, MessageKind.EVENT, line.text, event=line)
    )
    await store.append_message(_msg(conv_id, visitor, "plain"))
    got = await store.messages_after(conv_id, 0)
    assert [(m.text, m.event) for m in got] == [("Anna joined the conversation", line), ("plain", None)]
    assert written.event == line

    agent = await store.create_agent(
        email=f"{new_id()}@x.test", name="Anna", role=Role.AGENT, password_hash=None, avatar_url="/a.png"
    )
    assert (await store.get_agent(agent.id)).avatar_url == "/a.png"
    changed = await store.update_agent(agent.id, avatar_url="https://cdn.example.com/a.png")
    assert changed.avatar_url == "https://cdn.example.com/a.png"
    assert (await store.update_agent(agent.id, avatar_url=None)).avatar_url is None


async def test_face_agents_active_with_avatar_first_then_recently_assigned(store: Store) -> None:
    tag = new_id()
    made = {}
    for name, avatar, active in [
        ("A none", None, True),
        ("B pic", "/b.png", True),
        ("C gone", "/c.png", False),
        ("D none", None, True),
    ]:
        a = await store.create_agent(
            email=f"{name[0]}{tag}@x.test", name=f"{name} {tag}", role=Role.AGENT, password_hash=None
        )
        made[a.id] = await store.update_agent(a.id, avatar_url=avatar, active=active)
    d = next(a for a in made.values() if a.name.startswith("D"))
    async with store.db.write() as conn:
        await conn.execute(sa.text("UPDATE agents SET last_assigned_at = 5 WHERE id = :i"), {"i": d.id})
    order = [a.name.split()[0] for a in await store.face_agents(1000) if a.id in made]
    assert order == ["B", "D", "A"]  # C is deactivated
    assert len(await store.face_agents(2)) == 2
