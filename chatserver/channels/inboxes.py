"""Channel inboxes: which channels exist, their config validated by the adapter, and the inbox as clients
see it (secrets replaced by whether they are set, plus the webhook URL to register on the platform)."""

from __future__ import annotations

import secrets
from typing import Any

from adapters.base import Channel
from adapters.channels import CHANNELS
from chatserver.errors import Invalid
from chatserver.mail.views import email_inbox_wire
from chatserver.model.types import Inbox

WIDGET = "widget"
API = "api"
"""A custom channel: a channel adapter injects its messages and sends agents' replies (adapter API)."""
CHANNEL_NAMES = (WIDGET, API, *CHANNELS)


def adapter_for(channel: str) -> Channel | None:
    return CHANNELS.get(channel)


def validate_channel_config(channel: str, config: Any) -> dict[str, str]:
    """The config to store for a new inbox of ``channel``; Invalid names the bad field. A Telegram webhook
    inbox without a ``secret_token`` gets a generated one (Telegram echoes it on every update)."""
    if channel in (WIDGET, API):
        if config not in (None, {}):
            raise Invalid(f"{channel} inboxes take no config", data={"field": "config"})
        return {}
    adapter = adapter_for(channel)
    if adapter is None:
        raise Invalid(f"channel must be one of {', '.join(CHANNEL_NAMES)}", data={"field": "channel"})
    if config is None:
        config = {}
    if (
        channel == "telegram"
        and isinstance(config, dict)
        and config.get("mode", "webhook") == "webhook"
        and config.get("secret_token") is None
    ):
        config = {**config, "secret_token": secrets.token_urlsafe(32)}
    return adapter.validate_config(config)


def webhook_url(base_url: str, inbox: Inbox) -> str | None:
    if inbox.channel in (WIDGET, API):
        return None
    return f"{base_url.rstrip('/')}/webhooks/{inbox.channel}/{inbox.id}"


def inbox_wire(inbox: Inbox, base_url: str) -> dict[str, Any]:
    """The inbox for REST and the CLI: never a secret, only whether it is set."""
    if inbox.channel == "email":
        return email_inbox_wire(inbox)
    wire = inbox.to_wire()
    if inbox.channel == WIDGET:  # admins only: the widget's settings and the identity secret
        from chatserver.widgetcfg.store import widget_admin_wire

        wire.update(widget_admin_wire(inbox))
    adapter = adapter_for(inbox.channel)
    if adapter is not None:
        wire["config"] = adapter.spec.redact(inbox.config)
        if "templates" in inbox.config:
            wire["config"]["templates"] = inbox.config["templates"]
        wire["webhook_url"] = webhook_url(base_url, inbox)
        if inbox.channel == "sms":
            wire["status_callback_url"] = f"{wire['webhook_url']}/status"
    return wire
