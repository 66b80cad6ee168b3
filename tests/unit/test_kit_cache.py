"""TtlCache: expiry, and refusing a fill that raced a change."""

from __future__ import annotations

from services.kit.stores.cache import TtlCache


def test_entries_expire_after_the_ttl():
    now = [100.0]
    cache: TtlCache[int, str] = TtlCache(ttl_seconds=5, max_entries=10, clock=lambda: now[0])
    cache.put_many([(1, "a")])
    now[0] += 4.9
    assert cache.get_many([1, 2]) == ({1: "a"}, [2])
    now[0] += 0.2
    assert cache.get_many([1]) == ({}, [1])


def test_a_fill_read_before_a_discard_is_not_cached():
    cache: TtlCache[int, str] = TtlCache(ttl_seconds=60, max_entries=10)
    version = cache.version()  # the fill starts reading the source...
    cache.discard(1)  # ...an edit of user 1 is announced...
    cache.put_many([(1, "old name")], version=version)  # ...and the old read arrives
    assert cache.get_many([1]) == ({}, [1])


def test_a_fill_with_no_change_in_between_is_cached():
    cache: TtlCache[int, str] = TtlCache(ttl_seconds=60, max_entries=10)
    cache.discard(7)
    version = cache.version()
    cache.put_many([(1, "a")], version=version)
    assert cache.get_many([1]) == ({1: "a"}, [])


def test_clear_drops_everything_and_counts_as_a_change():
    cache: TtlCache[int, str] = TtlCache(ttl_seconds=60, max_entries=10)
    cache.put_many([(1, "a"), (2, "b")])
    version = cache.version()
    cache.clear()
    assert len(cache) == 0
    cache.put_many([(3, "c")], version=version)
    assert cache.get_many([3]) == ({}, [3])


def test_the_oldest_entries_go_first_beyond_the_size_bound():
    cache: TtlCache[int, str] = TtlCache(ttl_seconds=60, max_entries=2)
    cache.put_many([(1, "a"), (2, "b"), (3, "c")])
    assert cache.get_many([1, 2, 3]) == ({2: "b", 3: "c"}, [1])
