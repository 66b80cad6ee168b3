"""Account deletion and the timeline service: the deleted account's own keys
(home timeline, activity mark, celebrity list, its author index) are dropped
once identity's AccountDeleted is consumed. End to end through Envoy."""

from __future__ import annotations

import pytest

from services.timeline.entries import author_key, celebrity_cache_key, home_key, seen_key
from tests import redis_clients
from tests.conftest import REDIS_URL
from tests.e2e.edge import PASSWORD, follow, home_ids, post, sign_up, wait_until

pytestmark = pytest.mark.e2e


def test_a_deleted_accounts_timeline_keys_are_dropped(http):
    leaving, friend = sign_up(http, "l"), sign_up(http, "f")
    follow(http, leaving, friend)
    follow(http, friend, leaving)
    own = post(http, leaving, "soon gone")
    assert wait_until(lambda: own["id"] in home_ids(http, leaving), timeout=3.0)
    assert wait_until(lambda: own["id"] in home_ids(http, friend), timeout=3.0)

    user_id = int(leaving.id)
    # (Graph's unfollows of the account may bump its celebrity-list
    # generation again afterwards: a bare counter that expires in a day.)
    keys = [home_key(user_id), seen_key(user_id), author_key(user_id), celebrity_cache_key(user_id)]
    rdb = redis_clients.from_url(REDIS_URL)
    assert rdb.exists(home_key(user_id), seen_key(user_id), author_key(user_id)) == 3

    r = http.post("/v1/users/me:delete", json={"password": PASSWORD}, headers=leaving.auth)
    assert r.status_code == 200, r.text

    assert wait_until(lambda: rdb.exists(*keys) == 0, timeout=15.0), [k for k in keys if rdb.exists(k)]
    # The follower's timeline loses the account's posts (the posts service's deletions).
    assert wait_until(lambda: own["id"] not in home_ids(http, friend), timeout=15.0)
    assert rdb.exists(seen_key(int(friend.id))) == 1
