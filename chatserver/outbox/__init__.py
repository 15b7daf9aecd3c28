"""Durable outbound deliveries: a row per delivery, written with its cause, sent by a leased worker.

- :mod:`~chatserver.outbox.registry`: delivery types and the kind -> sender registry
- :mod:`~chatserver.outbox.store`: enqueue, claim (lease + token), record
- :mod:`~chatserver.outbox.backoff`: the retry decision (pure)
- :mod:`~chatserver.outbox.worker`: the loop
- :mod:`~chatserver.outbox.email`, :mod:`~chatserver.outbox.smtp`: email payloads and the SMTP sender
"""

from chatserver.outbox.registry import Delivery, DeliveryState, NewDelivery, Sender, SenderRegistry
from chatserver.outbox.store import OutboxQueries
from chatserver.outbox.worker import OutboxWorker

__all__ = [
    "Delivery",
    "DeliveryState",
    "NewDelivery",
    "OutboxQueries",
    "OutboxWorker",
    "Sender",
    "SenderRegistry",
]
