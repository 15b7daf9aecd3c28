"""Which addresses a webhook may reach: never link-local or cloud metadata (169.254.0.0/16,
fe80::/10), nor unspecified, multicast or reserved ones; loopback and private networks only with
``CHATSERVER_WEBHOOK_ALLOW_PRIVATE=true``. Checked when a webhook is registered and again at every send,
on the addresses the name resolves to then; the sender connects to the address it checked, so a name
that re-resolves elsewhere in between (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from chatserver.errors import Invalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for (``host``, ``path``)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str

    @property
    def connect_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why this address may not be reached (None: it may). Pure."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in METADATA if net.version == ip.version):
        return "link-local and metadata addresses are never reachable"
    if ip.is_unspecified or ip.is_multicast:
        return "that address is not a reachable host"
    if ip.is_loopback or ip.is_private:
        if allow_private:
            return None
        return "loopback and private addresses need CHATSERVER_WEBHOOK_ALLOW_PRIVATE=true"
    if ip.is_reserved:
        return "that address is not a reachable host"
    return None


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of an http(s) URL; Invalid otherwise. Pure."""
    if len(url) > 2000:
        raise Invalid("url is longer than 2000 characters", data={"field": "url"})
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Invalid("url is not a valid URL", data={"field": "url"}) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Invalid("url must be http or https", data={"field": "url"})
    if not parts.hostname or parts.username or parts.password:
        raise Invalid("url needs a host and no credentials", data={"field": "url"})
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(5):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        raise Invalid("url's host does not resolve", data={"field": "url"}) from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_url(url: str, *, allow_private: bool) -> Target:
    """The address to connect to for ``url``: every address the host resolves to must be allowed
    (one bad answer refuses it all). Invalid (422) otherwise."""
    scheme, host, port, path = parse(url)
    addresses = await resolve(host, port)
    if not addresses:
        raise Invalid("url's host does not resolve", data={"field": "url"})
    for ip in addresses:
        why = refusal(ip, allow_private=allow_private)
        if why is not None:
            raise Invalid(f"url refused: {why}", data={"field": "url"})
    return Target(scheme, host, port, path, str(addresses[0]))
