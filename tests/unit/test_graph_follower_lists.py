"""Graph's kept follower lists: bounded by the ids they hold, and never kept
as long as the versions that guard them live."""

from __future__ import annotations

from array import array

import pytest

from services.graph.follower_lists import FollowerLists, Kept
from services.kit.peers import followers


def _lists(**bounds) -> FollowerLists:
    # get/put touch neither the store nor the epoch.
    settings = {"ttl_seconds": 300.0, "max_authors": 50_000, "max_ids": 20_000, "max_ids_held": 2_000_000}
    return FollowerLists(None, None, **{**settings, **bounds})


def test_many_authors_with_short_lists_are_all_kept():
    lists = _lists()
    for author in range(1, 1001):
        lists.put(author, b"e:1", Kept(20, array("q", range(author, author + 20))))
    assert all(lists.get(author, b"e:1").ids is not None for author in range(1, 1001))


def test_past_the_ids_budget_the_oldest_lists_go_first():
    lists = _lists(max_ids_held=50)
    for author in (1, 2, 3):
        lists.put(author, b"e:1", Kept(20, array("q", range(20))))
    assert lists.get(1, b"e:1") == Kept(None, None)
    assert list(lists.get(2, b"e:1").ids) == list(range(20))
    assert lists.get(3, b"e:1").ids is not None


def test_a_list_is_served_only_under_the_version_it_was_kept_with():
    lists = _lists()
    lists.put(7, b"e:1", Kept(2, array("q", [1, 2])))
    assert lists.get(7, b"e:1") == Kept(2, array("q", [1, 2]))
    assert lists.get(7, b"e:2") == Kept(None, None)
    assert lists.get(7, None) == Kept(None, None)


def test_a_celebrity_keeps_only_its_count():
    lists = _lists()
    lists.put(7, b"e:1", Kept(1_000_000, None))
    assert lists.get(7, b"e:1") == Kept(1_000_000, None)


def test_a_list_longer_than_allowed_keeps_only_its_count():
    lists = _lists(max_ids=3)
    lists.put(7, b"e:1", Kept(4, array("q", [1, 2, 3, 4])))
    assert lists.get(7, b"e:1") == Kept(4, None)


def test_nothing_read_keeps_nothing():
    lists = _lists()
    lists.put(7, b"e:1", Kept(None, None))
    lists.put(8, None, Kept(3, array("q", [1, 2, 3])))
    assert lists.get(7, b"e:1") == Kept(None, None)
    assert lists.get(8, b"e:1") == Kept(None, None)


def test_lists_may_not_be_kept_as_long_as_their_versions_live():
    with pytest.raises(ValueError, match="less than"):
        _lists(ttl_seconds=float(followers.VERSION_SECONDS))
