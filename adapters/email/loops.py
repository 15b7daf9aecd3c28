"""Loop safety (RFC 3834 and what helpdesks learned): may we answer this mail automatically, or
should we not take it in at all? And a per-sender rate limit for automatic mail. Pure: plain data in,
a decision out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from adapters.email.address import normalize, split_plus

__all__ = ["AutoReplyRate", "LoopDecision", "auto_reply_rate_ok", "loop_decision"]


@dataclass(frozen=True, slots=True)
class LoopDecision:
    ignore: bool
    """Do not take it in (mail from our own address: our own mail come back)."""
    auto_reply_allowed: bool
    """May automatic mail (acknowledgements, auto-replies) answer it? Agents' replies always may."""
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "ignore": self.ignore,
            "auto_reply_allowed": self.auto_reply_allowed,
            "reasons": list(self.reasons),
        }


def loop_decision(
    headers: Mapping[str, str],
    *,
    from_address: str,
    message_id: str | None,
    own_addresses: Collection[str],
    own_message_ids: Collection[str] = (),
    own_domains: Collection[str] = (),
) -> LoopDecision:
    """``headers``: lower-case names (ParsedEmail.headers). ``own_addresses``: the inboxes' addresses
    (plus-addresses of them count too); ``own_message_ids``: Message-IDs we sent; ``own_domains``: the
    right-hand sides of the Message-IDs we generate."""
    reasons: list[str] = []
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        reasons.append("auto_submitted")
    if headers.get("precedence", "").strip().lower() in ("bulk", "list", "junk"):
        reasons.append("precedence")
    if "x-auto-response-suppress" in headers:
        reasons.append("auto_response_suppress")
    if "list-unsubscribe" in headers or "list-id" in headers:
        reasons.append("mailing_list")
    if "x-loop" in headers:
        reasons.append("x_loop")
    if "x-autoreply" in headers or "x-autorespond" in headers:
        reasons.append("auto_reply_header")
    if "return-path" in headers and headers["return-path"].strip() in ("<>", ""):
        reasons.append("empty_return_path")
    domains = {d.lower() for d in own_domains}
    if message_id and (message_id in own_message_ids or message_id.rpartition("@")[2].lower() in domains):
        reasons.append("own_message_id")
    sender = split_plus(from_address)[0]
    own = {split_plus(a)[0] for a in own_addresses}
    ignore = bool(sender) and sender in own
    if ignore:
        reasons.append("from_own_address")
    if not normalize(from_address):
        reasons.append("no_sender")
    return LoopDecision(ignore=ignore, auto_reply_allowed=not reasons, reasons=tuple(reasons))


@dataclass(frozen=True, slots=True)
class AutoReplyRate:
    max_per_window: int = 3
    window_s: float = 3600.0


def auto_reply_rate_ok(sent_at_ms: Sequence[int], now_ms: int, rate: AutoReplyRate = AutoReplyRate()) -> bool:
    """May one more automatic mail go to this sender, given when the earlier ones went?"""
    since = now_ms - int(rate.window_s * 1000)
    return sum(1 for t in sent_at_ms if since < t <= now_ms) < rate.max_per_window
