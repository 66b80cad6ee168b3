"""Each Python collection's pause is observed under its generation."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from services.kit.server import service


def _collections(generation: int) -> float:
    return REGISTRY.get_sample_value("aviary_gc_pause_seconds_count", {"generation": str(generation)}) or 0.0


def test_every_collection_is_timed_under_its_generation():
    timer = service._gc_timer()
    gc.callbacks.append(timer)
    try:
        before = [_collections(g) for g in range(3)]
        gc.collect(0)
        gc.collect(2)
        after = [_collections(g) for g in range(3)]
    finally:
        gc.callbacks.remove(timer)
    # Automatic collections may run meanwhile too: at least these two.
    assert after[0] - before[0] >= 1
    assert after[2] - before[2] >= 1
    assert REGISTRY.get_sample_value("aviary_gc_pause_seconds_sum", {"generation": "2"}) > 0
