"""Real server processes: crash durability, two processes over Redis + PostgreSQL, Redis restart."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Client, ServerProcess, free_port, run_cli, seed, visitor_token
from tests.services import REDIS_PREFIX

pytestmark = pytest.mark.slow


def start(procs: list[ServerProcess], env: dict[str, str], log: Path) -> ServerProcess:
    p = ServerProcess(env=env, log=log)
    procs.append(p)
    p.start()
    return p


async def test_acked_messages_survive_sigkill(tmp_path: Path, procs: list[ServerProcess]) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data"), "CHATSERVER_ADMIN_PASSWORD": "admin-pass-1"}
    inbox = json.loads(
        run_cli(env, "create-inbox", "--name", "Crash", "--allowed-origin", "https://shop.example", "--json")
    )
    server = start(procs, env, tmp_path / "server.log")
    async with httpx.AsyncClient() as http:
        tok = (await visitor_token(http, server.url, inbox["key"]))["token"]
    acked: dict[str, int] = {}
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        refs = [
            await v.send(
                {"type": "message.send", "conversation_id": cid, "client_id": f"c{i}", "text": f"m{i}"}
            )
            for i in range(40)
        ]
        for ref in refs:
            ack = await v.next(lambda f, r=ref: f.get("ref") == r)
            assert ack["type"] == "ack"
            acked[ack["client_id"]] = ack["seq"]
        server.kill(signal.SIGKILL)  # right after the last ack: no graceful shutdown
    assert len(acked) == 40
    server.start()
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        await v.send({"type": "resume", "cursors": {cid: 0}})
        await v.expect("resumed")
        got = {
            f["message"]["client_id"]: f["seq"]
            for f in v.frames
            if f.get("type") == "message" and f["message"]["client_id"] is not None
        }
    assert got == acked


@pytest.mark.redis
@pytest.mark.postgres
async def test_two_processes_over_redis_and_postgres(
    tmp_path: Path, procs: list[ServerProcess], pg_url: str, redis_url: str
) -> None:
    s = await seed(pg_url)
    env = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_ROUTING": "manual",
    }
    assert run_cli(env, "migrate") == "database schema is current"
    a = start(procs, env, tmp_path / "a.log")
    b = start(procs, env, tmp_path / "b.log")
    async with httpx.AsyncClient() as http:
        tok = (await visitor_token(http, a.url, s.inbox_key))["token"]
    async with (
        Client.connect(f"{b.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
        Client.connect(f"{b.ws}/ws/agent", token=s.admin_token, origin=None) as admin_on_b,
        Client.connect(f"{a.ws}/ws/visitor?token={tok}") as visitor,
    ):
        await agent.expect("hello")
        await admin_on_b.expect("hello")
        cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        await agent.expect("conversation", conversation__id=cid, conversation__status="queued")
        first = await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "hi from A"}
        )
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        await visitor.expect("conversation", conversation__status="assigned")
        reply = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "b1", "text": "hello from B"}
        )
        assert reply["seq"] > first["seq"]
        assert (await visitor.expect("message", seq=reply["seq"]))["message"]["text"] == "hello from B"
        await visitor.send({"type": "typing", "conversation_id": cid, "state": "start"})
        await agent.expect("typing", conversation_id=cid)
        nxt = await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v2", "text": "thanks"}
        )
        assert (await agent.expect("message", seq=nxt["seq"]))["message"]["text"] == "thanks"
        # presence crosses processes too: an agent connecting on A is seen online on B
        async with Client.connect(f"{a.ws}/ws/agent", token=s.agent_token, origin=None) as second_tab:
            await second_tab.expect("hello")
            assert (await admin_on_b.expect("presence", agent__id=s.agent_id))["status"] == "online"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A Redis server of our own, so the test may stop and restart it."""
    binary = shutil.which("redis-server")
    if binary is None:
        from tests.services import unavailable

        unavailable("redis-server", FileNotFoundError("redis-server not on PATH"))
    port = free_port()
    running: list[subprocess.Popen[bytes]] = []
    yield f"redis://127.0.0.1:{port}/0", running
    for p in running:
        p.kill()
        p.wait()


def start_redis(url: str, running: list[subprocess.Popen[bytes]]) -> None:
    port = url.rsplit(":", 1)[1].split("/")[0]
    p = subprocess.Popen(
        ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    running.append(p)
    import redis

    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.ConnectionError:
            import time

            time.sleep(0.05)
    raise RuntimeError("redis did not start")


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_restart_mid_conversation_loses_nothing(
    tmp_path: Path,
    procs: list[ServerProcess],
    pg_url: str,
    own_redis: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    redis_url, running = own_redis
    start_redis(redis_url, running)
    s = await seed(pg_url)
    # reconciliation off (1 hour): the repair must come from the bus's reconnect and resync
    env = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_RECONCILE_S": "3600",
        "CHATSERVER_ROUTING": "manual",
    }
    a = start(procs, env, tmp_path / "a.log")
    b = start(procs, env, tmp_path / "b.log")
    async with httpx.AsyncClient() as http:
        tok = (await visitor_token(http, a.url, s.inbox_key))["token"]
        async with (
            Client.connect(f"{b.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
            Client.connect(f"{a.ws}/ws/visitor?token={tok}") as visitor,
        ):
            cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
            await agent.expect("conversation", conversation__id=cid)
            await agent.request({"type": "conversation.claim", "conversation_id": cid})
            before = await visitor.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "0", "text": "before"}
            )
            await agent.expect("message", seq=before["seq"])

            running[0].kill()  # Redis dies mid-conversation
            running[0].wait()
            assert (await http.get(a.url + "/readyz")).status_code == 503
            during = []
            for i in range(3):
                ack = await visitor.request(
                    {
                        "type": "message.send",
                        "conversation_id": cid,
                        "client_id": f"d{i}",
                        "text": f"during {i}",
                    }
                )
                assert ack["type"] == "ack"  # committed to PostgreSQL; only the notification is lost
                during.append(ack["seq"])
            start_redis(redis_url, running)  # Redis is back (empty: it kept nothing)

            got = [await agent.expect("message", seq=seq, timeout=15) for seq in during]
            assert [g["message"]["text"] for g in got] == ["during 0", "during 1", "during 2"]
            # and live delivery works again in both directions
            after = await agent.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "a", "text": "after"}
            )
            assert (await visitor.expect("message", seq=after["seq"], timeout=15))["message"][
                "text"
            ] == "after"
            seqs = [f["seq"] for f in agent.frames if f.get("type") == "message"]
            assert seqs == sorted(set(seqs))


def test_ctrl_c_stops_the_server_cleanly_without_a_traceback(
    tmp_path: Path, procs: list[ServerProcess]
) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data"), "CHATSERVER_ADMIN_PASSWORD": "admin-pass-1"}
    server = start(procs, env, tmp_path / "server.log")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=30) == 130
    log = (tmp_path / "server.log").read_text()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
