"""Tickets: the lifecycle of a conversation that could not be answered live, with SLAs and CSAT.

- :mod:`~chatserver.tickets.status`: the state machine table (pure)
- :mod:`~chatserver.tickets.model`: ticket data, custom fields, patch checks (pure)
- :mod:`~chatserver.tickets.clock`: the SLA clock (pure)
- :mod:`~chatserver.tickets.policy`: SLA policies and matching (pure)
- :mod:`~chatserver.tickets.mail`: the emails a ticket sends and their threading (pure)
- :mod:`~chatserver.tickets.store`, :mod:`~chatserver.tickets.service`, :mod:`~chatserver.tickets.sla`,
  :mod:`~chatserver.tickets.csat`: persistence and the services around them
"""

from chatserver.tickets.model import FieldDef, FieldType, Priority, Ticket
from chatserver.tickets.status import TicketStatus, transition

__all__ = ["FieldDef", "FieldType", "Priority", "Ticket", "TicketStatus", "transition"]
