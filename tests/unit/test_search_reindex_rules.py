"""The reindex's pure rules: which version an exported document is written
with, which index ids it can judge, and the exported-id lookup."""

import array

from services.kit.server import ids
from services.search.reindex import _contains, _int_id, _version, version_floor


def test_the_floor_is_the_first_id_of_the_moment_settle_seconds_before_the_export():
    started_ms = 1_790_000_000_000
    floor = version_floor(started_ms, settle_seconds=60)
    assert ids.timestamp_ms(floor) == started_ms - 60_000
    assert floor == ids.min_id_at(started_ms - 60_000)
    assert version_floor(started_ms, settle_seconds=0) > floor


def test_an_exported_document_is_written_with_the_larger_of_its_id_and_the_floor():
    floor = ids.min_id_at(1_790_000_000_000)
    old_post = ids.min_id_at(1_700_000_000_000) + 7
    new_post = floor + 12345
    # An old entity gets the floor, so it beats every event older than the
    # settle window (a lost document comes back, a stale product is fixed) ...
    assert _version(old_post, floor) == floor
    # ... and a new one its own id, below every event about it.
    assert _version(new_post, floor) == new_post


def test_only_decimal_ids_that_fit_in_64_bits_are_judged():
    assert _int_id("383350808487407616") == 383350808487407616
    assert _int_id("42") == 42
    for bogus in ("", "-1", "12a", "１２", "1" * 20, "1.5", " 7"):
        assert _int_id(bogus) is None, bogus


def test_exported_ids_are_found_by_binary_search():
    exported = array.array("q", sorted([5, 1, 9, 300, 2**62]))
    for present in (1, 5, 9, 300, 2**62):
        assert _contains(exported, present)
    for absent in (0, 2, 10, 299, 2**62 + 1):
        assert not _contains(exported, absent)
    assert not _contains(array.array("q"), 1)
