"""TtlCache: expiry, and refusing a fill that raced a change."""

from __future__ import annotations

from services.kit.stores.cache import TtlCache


def test_entries_expire_after_the_ttl():
    now = [100.0]
    cache: TtlCache[int, str] = TtlCache(ttl_seconds=5, max_entries=10, clock=lambda: now[0], spread=0)
    cache.put_many([(1, "a")])
    now[0] += 4.9
    assert cache.get_many([1, 2]) == ({1: "a"}, [2])
    now[0] += 0.2
    assert cache.get_many([1]) == ({}, [1])


def test_entries_filled_together_lapse_spread_over_the_last_fifth_of_the_ttl():
    now = [100.0]
    draws = iter(i / 100 for i in range(100))  # 0.00, 0.01, ... 0.99
    cache: TtlCache[int, str] = TtlCache(
        ttl_seconds=100, max_entries=1000, clock=lambda: now[0], draw=lambda: next(draws)
    )
    cache.put_many([(i, "x") for i in range(100)])
    keys = list(range(100))

    def kept_at(age: float) -> int:
        now[0] = 100.0 + age
        return len(cache.get_many(keys)[0])

    assert kept_at(79.9) == 100  # nothing before 80 % of the ttl
    assert kept_at(90.05) == 50  # lapsing evenly across the spread
    assert kept_at(100.0) == 0  # and never one past the ttl


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


def test_a_weight_bound_drops_the_oldest_entries_until_the_rest_fit():
    cache: TtlCache[int, list[int]] = TtlCache(ttl_seconds=60, max_entries=100, weigh=len, max_weight=10)
    cache.put_many([(1, [0] * 4), (2, [0] * 4)])
    assert cache.weight == 8
    cache.put_many([(3, [0] * 5)])  # 13 > 10: the oldest goes
    assert cache.get_many([1, 2, 3])[1] == [1]
    assert cache.weight == 9


def test_replacing_or_discarding_an_entry_gives_its_weight_back():
    cache: TtlCache[int, list[int]] = TtlCache(ttl_seconds=60, max_entries=100, weigh=len, max_weight=10)
    cache.put_many([(1, [0] * 6)])
    cache.put_many([(1, [0] * 2)])
    assert cache.weight == 2
    cache.put_many([(2, [0] * 8)])  # 10 fits exactly: nothing goes
    assert cache.get_many([1, 2]) == ({1: [0] * 2, 2: [0] * 8}, [])
    cache.discard(2)
    assert cache.weight == 2
    cache.clear()
    assert cache.weight == 0


def test_an_entry_heavier_than_the_bound_is_not_kept():
    cache: TtlCache[int, list[int]] = TtlCache(ttl_seconds=60, max_entries=100, weigh=len, max_weight=10)
    cache.put_many([(1, [0] * 3), (2, [0] * 11)])
    assert cache.get_many([1, 2]) == ({}, [1, 2])
    assert cache.weight == 0
