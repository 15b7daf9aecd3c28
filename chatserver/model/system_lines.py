"""System lines: what the server itself writes into a conversation (an agent joined, a transfer, the chat
closed, a ticket, routing's notices), as a stable ``code`` with ``params``.

A system line is stored and sent with its message (``message.event = {code, params}``; docs/protocol.md,
"System lines"), so each client can say it in its own language: the widget renders it from its catalogue
(``sys.<code>`` in widget/i18n/<lang>.json, the same ``{placeholders}`` as :data:`TEMPLATES`). The message's
``text`` is the English form (:attr:`SystemLine.text`), for old clients, email, REST and search.
Pure: no I/O.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TEMPLATES: Mapping[str, str] = {
    "agent_joined": "{name} joined the conversation",
    "agent_closed": "{name} closed the conversation",
    "transferred_to_agent": "{name} transferred the conversation to {target}",
    "transferred_to_team": "{name} transferred the conversation to the {team} team",
    "transferred_to_skills": "{name} transferred the conversation to agents with {skills}",
    "escalated": "Escalated to ticket #{number}",
    "escalated_wait": "Escalated to ticket #{number} (it waited too long)",
    "escalated_nobody": "Escalated to ticket #{number} (nobody was available)",
    "escalated_hours": "Escalated to ticket #{number} (it came outside business hours)",
    "escalated_left": "Escalated to ticket #{number} (the visitor left)",
    "merged": "Merged into ticket #{number}",
    "ticket_from_email": "Ticket #{number} opened from this email",
    "no_agent_eligible": (
        "No agent is available for this right now. "
        "Leave your message here and we will reply as soon as we can."
    ),
    "outside_business_hours": (
        "We are closed at the moment. Leave your message here and we will reply when we are back."
    ),
    "max_wait_exceeded": (
        "Sorry for the wait: all our agents are still busy. "
        "Leave your message here and we will get back to you."
    ),
    "agent_disconnected": "Your agent was disconnected; connecting you to the next available agent.",
}
"""Every code and its English text; ``{name}`` etc. are the params (lower-case letters only)."""

ESCALATION_CODES: Mapping[str, str] = {
    "it waited too long": "escalated_wait",
    "nobody was available": "escalated_nobody",
    "it came outside business hours": "escalated_hours",
    "the visitor left": "escalated_left",
}
"""The reasons a conversation becomes a ticket (tickets/service.py) -> their line's code."""

MAX_PARAM = 200


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True, slots=True)
class SystemLine:
    code: str
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        template = TEMPLATES.get(self.code)
        if template is None:
            raise ValueError(f"unknown system line {self.code!r}")
        if set(self.params) != placeholders(template):
            raise ValueError(f"{self.code} takes {sorted(placeholders(template))}, not {sorted(self.params)}")

    @classmethod
    def of(cls, code: str, **params: object) -> SystemLine:
        """``SystemLine.of("agent_joined", name="Anna")``; params become strings (cut to MAX_PARAM)."""
        return cls(code, {k: str(v)[:MAX_PARAM] for k, v in params.items()})

    @property
    def text(self) -> str:
        """The English text (the message's ``text``)."""
        return TEMPLATES[self.code].format_map(dict(self.params))

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "params": dict(self.params)}

    @classmethod
    def from_stored(cls, raw: Any) -> SystemLine | None:
        """The stored form back; None for nothing, or for a code this version does not know (a newer
        server wrote it): the message's text still says it."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("params"), Mapping):
            return None
        params = {str(k): str(v) for k, v in raw["params"].items()}
        try:
            return cls(str(raw.get("code")), params)
        except ValueError:
            return None


def escalated(number: int, reason: str | None) -> SystemLine:
    """The line of a conversation that became ticket ``number`` (``reason``: tickets/service.py's words)."""
    code = ESCALATION_CODES.get(reason or "", "escalated")
    return SystemLine.of(code, number=number)


__all__ = ["ESCALATION_CODES", "TEMPLATES", "SystemLine", "escalated", "placeholders"]
