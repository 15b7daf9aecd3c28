"""A raw WebSocket relay: the baseline that ``bench/core.py`` compares the chat server with.

It speaks just enough of the chat server's protocol for the same load generator to drive it, with no
persistence, no auth, no queues and no bus:

* ``/ws/visitor?token=T`` and ``/ws/agent`` get a ``hello`` frame on connect;
* ``conversation.start`` answers ``ack`` with ``conversation_id`` ``cv_T``;
* ``conversation.claim`` adds the agent's connection to that conversation and answers ``ack``;
* ``message.send`` answers, like the chat server, with an ``ack`` to the sender (``seq``, ids, time), a
  ``message`` frame (same shape and size as the chat server's) to every agent that claimed the
  conversation, and the same ``message`` frame echoed to the visitor.

Frames are parsed with orjson (as the chat server does) only to read the fields needed to answer.
It runs on uvloop, like ``chatserver serve`` (uvicorn picks uvloop when installed), without
per-message compression (the chat server disables it too).

Run: ``.venv/bin/python bench/relay.py --port 8765`` (prints ``ready`` when listening).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class Conv:
    __slots__ = ("agents", "cid", "seq", "visitor")

    def __init__(self, cid: str, visitor: ServerConnection) -> None:
        self.cid = cid
        self.seq = 1  # the chat server appends a "joined" event on claim; keep seqs comparable
        self.visitor = visitor
        self.agents: list[ServerConnection] = []


CONVS: dict[str, Conv] = {}
IDS = itertools.count(1)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


async def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else "/"
    parts = urlsplit(path)
    is_agent = parts.path.startswith("/ws/agent")
    token = parse_qs(parts.query).get("token", [""])[0]
    sid = f"ws_{next(IDS)}"
    author = {"kind": "agent" if is_agent else "contact", "id": token or sid, "name": "Bench"}
    await ws.send(
        _dumps(
            {
                "type": "hello",
                "protocol": 1,
                "session_id": sid,
                "heartbeat_s": 20.0,
                "you": author,
                "limits": {"max_text_bytes": 16384, "max_frame_bytes": 65536},
            }
        )
    )
    mine: list[Conv] = []
    try:
        async for raw in ws:
            f = orjson.loads(raw)
            kind = f.get("type")
            ref = f.get("ref")
            if kind == "message.send":
                conv = CONVS.get(f.get("conversation_id", ""))
                if conv is None:
                    await ws.send(_dumps({"type": "error", "code": "not_found", "message": "?", "ref": ref}))
                    continue
                conv.seq += 1
                now = int(time.time() * 1000)
                created = _iso(now)
                mid = f"msg_{next(IDS)}"
                client_id = f.get("client_id")
                await ws.send(
                    _dumps(
                        {
                            "type": "ack",
                            "ref": ref,
                            "client_id": client_id,
                            "message_id": mid,
                            "conversation_id": conv.cid,
                            "seq": conv.seq,
                            "created_at": created,
                        }
                    )
                )
                msg = _dumps(
                    {
                        "type": "message",
                        "conversation_id": conv.cid,
                        "seq": conv.seq,
                        "message": {
                            "id": mid,
                            "author": author,
                            "kind": "text",
                            "text": f.get("text", ""),
                            "lang": None,
                            "translations": {},
                            "attachments": [],
                            "client_id": client_id,
                            "created_at": created,
                        },
                    }
                )
                for agent in conv.agents:
                    with contextlib.suppress(ConnectionClosed):
                        await agent.send(msg)
                await ws.send(msg)
            elif kind == "conversation.start":
                cid = f"cv_{token or sid}"
                conv = CONVS.get(cid)
                if conv is None:
                    conv = CONVS[cid] = Conv(cid, ws)
                    mine.append(conv)
                await ws.send(_dumps({"type": "ack", "ref": ref, "conversation_id": cid}))
            elif kind == "conversation.claim":
                conv = CONVS.get(f.get("conversation_id", ""))
                if conv is None:
                    await ws.send(_dumps({"type": "error", "code": "not_found", "message": "?", "ref": ref}))
                    continue
                if ws not in conv.agents:
                    conv.agents.append(ws)
                await ws.send(
                    _dumps({"type": "ack", "ref": ref, "conversation_id": conv.cid, "status": "assigned"})
                )
            elif kind == "ping":
                await ws.send(_dumps({"type": "pong", "ref": ref}))
    except ConnectionClosed:
        pass
    finally:
        for conv in mine:
            CONVS.pop(conv.cid, None)
        for conv in CONVS.values():
            if ws in conv.agents:
                conv.agents.remove(ws)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        max_size=64 * 1024,
        ping_interval=20,
        ping_timeout=20,
        max_queue=64,
    ):
        print("ready", flush=True)
        await stop


if __name__ == "__main__":
    import uvloop

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--port", type=int, default=8765)
    uvloop.run(main(p.parse_args().port))
