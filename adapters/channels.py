"""The channels the server speaks, by the name used in inboxes and webhook URLs. Adding a channel is one
adapter module and one line here."""

from __future__ import annotations

from types import MappingProxyType

from adapters import meta, telegram, twilio
from adapters.base import Channel

CHANNELS: MappingProxyType[str, Channel] = MappingProxyType(
    {
        "telegram": telegram.CHANNEL,
        "messenger": meta.MESSENGER,
        "instagram": meta.INSTAGRAM,
        "whatsapp": meta.WHATSAPP,
        "sms": twilio.CHANNEL,
    }
)


def channel(name: str) -> Channel | None:
    return CHANNELS.get(name)
