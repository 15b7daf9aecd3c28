"""The services of one running app, built by the lifespan and reached through ``app.state.ctx``."""

from __future__ import annotations

from dataclasses import dataclass

from chatserver.auth.login import LoginGuard
from chatserver.bus import Bus
from chatserver.channels.inbound import Inbound
from chatserver.chat import ChatService
from chatserver.presence import Presence
from chatserver.realtime.hub import Hub
from chatserver.routing.service import Router
from chatserver.settings import Settings
from chatserver.store.store import Store


@dataclass
class Context:
    settings: Settings
    store: Store
    bus: Bus
    presence: Presence
    service: ChatService
    hub: Hub
    login: LoginGuard
    router: Router | None = None
    inbound: Inbound | None = None
