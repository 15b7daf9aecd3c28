"""Outgoing webhooks: signed JSON events to URLs admins register, through the outbox (kind ``webhook``).

``signing`` (pure: the signature header), ``ssrf`` (which addresses a URL may reach), ``store``
(webhooks and their deliveries), ``sender`` (one HTTP attempt, bounded in time and size), ``service``
(which events go where).
"""
