"""Adapters as plain data: a bot or a custom channel, the inboxes it serves, its buttons."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chatserver.errors import Invalid
from chatserver.model.types import Author, AuthorKind, Message, MessageKind, iso
from chatserver.model.types import MessageAction as Action

MAX_ACTIONS = 10
MAX_ACTION_ID = 64
MAX_ACTION_LABEL = 100


class AdapterKind(enum.StrEnum):
    BOT = "bot"
    CHANNEL = "channel"


@dataclass(frozen=True, slots=True)
class Adapter:
    id: str
    name: str
    kind: AdapterKind
    inbox_ids: tuple[str, ...] = ()
    url: str | None = None
    """A channel adapter's webhook URL: agents' replies are POSTed there while it has no socket open."""
    secret: str | None = None
    created_at: int = 0
    revoked_at: int | None = None

    @property
    def author(self) -> Author:
        return Author(AuthorKind.BOT, self.id, self.name)

    def serves(self, inbox_id: str) -> bool:
        return inbox_id in self.inbox_ids

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind.value,
            "inboxes": list(self.inbox_ids),
            "url": self.url,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class Handoff:
    """What a bot asks for when it hands a conversation to people."""

    summary: str
    skills: dict[str, int] | None = None
    priority: int | None = None
    team: str | None = None
    reason: str = "bot"
    """bot (the bot asked), visitor (handoff words), grace (the bot was away too long)."""


def parse_actions(raw: Any) -> tuple[Action, ...]:
    """``[{id, label}]`` from the wire; Invalid names what is wrong."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ACTIONS:
        raise Invalid(f"actions must be a list of at most {MAX_ACTIONS} buttons", data={"field": "actions"})
    out: list[Action] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict):
            raise Invalid("each action must be an object {id, label}", data={"field": "actions"})
        action_id, label = item.get("id"), item.get("label")
        if not isinstance(action_id, str) or not action_id or len(action_id) > MAX_ACTION_ID:
            raise Invalid(
                f"action id must be a string of 1-{MAX_ACTION_ID} characters", data={"field": "actions"}
            )
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_ACTION_LABEL:
            raise Invalid(
                f"action label must be a string of 1-{MAX_ACTION_LABEL} characters", data={"field": "actions"}
            )
        if action_id in seen:
            raise Invalid(f"duplicate action id {action_id!r}", data={"field": "actions"})
        seen.add(action_id)
        out.append(Action(action_id, label.strip()))
    return tuple(out)


def is_reply(m: Message) -> bool:
    """An agent's or a bot's public reply: what a custom channel sends on, and reports the state of."""
    return m.kind is MessageKind.TEXT and m.author.kind in (AuthorKind.AGENT, AuthorKind.BOT)


def handoff_requested(text: str, words: Sequence[str]) -> bool:
    """A visitor's message that asks for a person: the whole message is one of ``words`` (case and
    surrounding punctuation ignored), so "agent" hands off but "my agent id is 4" does not."""
    cleaned = text.strip().strip(".!?¡¿ ").casefold()
    return bool(cleaned) and cleaned in {w.casefold() for w in words}


@dataclass
class GraceClock:
    """When each disconnected bot's conversations are handed off: pure, driven by ``now``."""

    grace_s: float
    _gone: dict[str, float] = field(default_factory=dict)

    def disconnected(self, adapter_id: str, now: float) -> None:
        self._gone.setdefault(adapter_id, now)

    def connected(self, adapter_id: str) -> None:
        self._gone.pop(adapter_id, None)

    def due(self, now: float) -> list[str]:
        """Bots away for longer than the grace period (each reported once)."""
        out = [a for a, since in self._gone.items() if now - since >= self.grace_s]
        for adapter_id in out:
            del self._gone[adapter_id]
        return out


__all__ = [
    "Action",
    "Adapter",
    "AdapterKind",
    "GraceClock",
    "Handoff",
    "handoff_requested",
    "is_reply",
    "parse_actions",
]
