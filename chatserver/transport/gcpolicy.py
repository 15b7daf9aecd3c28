"""The garbage collector's policy for a serving process: no full collection stalls the event loop.

CPython's cyclic collector stops the process while it walks every tracked object of the generations it
collects. The full (oldest-generation) collection walks them all: in a serving process that is the whole
import-time heap (SQLAlchemy, Starlette, uvicorn, the schema, the compiled-statement caches) plus every
connection's objects. Measured with ``bench/core.py --quick`` on PostgreSQL at 1,000 msgs/s, full
collections of about 155,000 objects took 86-99 ms each, every 2-4 s under load, which was the whole
delivery p99 (106 ms against a p50 of 13 ms). With this policy no full collection ran under load; the
tail that is left has another cause (three runs and their figures in docs/benchmarks.md).

Two changes, for ``chatserver serve`` only (a library user or a test process keeps Python's defaults):

- :func:`freeze_startup_heap`, once the app has started: one collection, then ``gc.freeze()`` moves
  everything alive into the permanent generation, which collections never walk. What startup built lives
  as long as the process anyway.
- :data:`THRESHOLDS`: the youngest generation is collected after 5,000 net allocations instead of 700.
  Most request- and frame-sized garbage is freed by reference counting long before; what survived 700
  allocations only to die a moment later was promoted, counted towards the next full collection, and
  triggered it. Young collections stay short (they walk only young objects: a few ms at most), and the
  oldest generation is collected a tenth as often (100 middle collections instead of 10), still subject
  to CPython's own rule that it waits until the long-lived objects have grown by a quarter.

Garbage cycles are still collected; a cycle that outlives a full collection's period costs memory for
that long, not correctness.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

THRESHOLDS = (5_000, 10, 100)
"""``gc.set_threshold`` for a serving process (Python's default: 700, 10, 10)."""


def apply_thresholds() -> None:
    gc.set_threshold(*THRESHOLDS)


def freeze_startup_heap() -> int:
    """Collect once, then keep what is alive out of every later collection; the objects frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("gc: %d startup objects frozen, thresholds %s", frozen, gc.get_threshold())
    return frozen


__all__ = ["THRESHOLDS", "apply_thresholds", "freeze_startup_heap"]
