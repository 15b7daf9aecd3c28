"""The serving process's garbage-collector policy (chatserver/transport/gcpolicy.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from chatserver.transport import gcpolicy


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_startup_heap_is_frozen_out_of_later_collections(restored_gc: None) -> None:
    alive = [object(), {"a": [1, 2]}]  # tracked containers, alive at "startup"
    frozen = gcpolicy.freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > 1000  # the imported modules' objects, at least
    assert not any(o is alive[1] for o in gc.get_objects(generation=2))  # a full collection skips it
    garbage: list[object] = []
    garbage.append(garbage)  # a cycle made after the freeze is still collected
    del garbage
    assert gc.collect() >= 1


def test_the_serving_thresholds_replace_pythons_defaults(restored_gc: None) -> None:
    gcpolicy.apply_thresholds()
    assert gc.get_threshold() == gcpolicy.THRESHOLDS
    assert gcpolicy.THRESHOLDS[0] > 700 and gcpolicy.THRESHOLDS[2] > 10
