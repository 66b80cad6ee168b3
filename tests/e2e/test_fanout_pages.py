"""An author whose followers take more than one of graph's pages is fanned
out page by page on one delivery stream, and a delete reaches them the same
way. The fanout worker runs here with pages of one follower, so three
followers (a celebrity only above the threshold) take three pages.
"""

from __future__ import annotations

import pytest

from tests import redis_clients
from tests.conftest import FANOUT_THRESHOLD, REDIS_URL
from tests.e2e.edge import follow, home_ids, post, sign_up, wait_until
from tests.e2e.fanout_support import assert_consumer_groups_rejoin, devstack, home_timeline_all, materialized_ids

pytestmark = [pytest.mark.e2e, pytest.mark.serial]

FOLLOWERS = 3


@pytest.fixture
def rdb():
    client = redis_clients.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def fanout_with_pages_of_one():
    devstack("down", "fanout")
    devstack("up", "fanout", AVIARY_FANOUT_FOLLOWER_PAGE_SIZE="1")
    try:
        assert_consumer_groups_rejoin(timeout=90.0, groups=["fanout"])
        yield
    finally:
        devstack("down", "fanout")
        devstack("up", "fanout")
        assert_consumer_groups_rejoin(timeout=90.0)


def test_a_post_reaches_followers_over_several_pages_and_so_does_its_delete(http, rdb, fanout_with_pages_of_one):
    assert FOLLOWERS <= FANOUT_THRESHOLD  # not a celebrity: fanned out on write
    author = sign_up(http, "fp")
    readers = [sign_up(http, "fp") for _ in range(FOLLOWERS)]
    for reader in readers:
        follow(http, reader, author)
        # A first read makes the reader active: fanout delivers only to active readers.
        assert home_timeline_all(http, reader) == []

    created = post(http, author, "paged out")["id"]
    assert wait_until(lambda: all(created in home_ids(http, r) for r in readers), timeout=20.0), [
        home_ids(http, r) for r in readers
    ]

    assert all(materialized_ids(rdb, r) == [created] for r in readers)

    deleted = http.delete(f"/v1/posts/{created}", headers=author.auth)
    assert deleted.status_code == 200, deleted.text
    # Reads leave a deleted post out at once; the delete's fanout takes it out of the timelines themselves.
    assert wait_until(lambda: all(materialized_ids(rdb, r) == [] for r in readers), timeout=20.0), [
        materialized_ids(rdb, r) for r in readers
    ]
