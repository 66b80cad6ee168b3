"""Reposts shown once: an original reaches a home timeline through several
followed accounts (its author, reposts, celebrities' reposts merged at read)
and is shown once across all pages, at its oldest occurrence; the feed shows
it once too. End to end over HTTP/JSON through Envoy."""

from __future__ import annotations

import time

import pytest

from services.timeline.entries import MEMBER_BYTES, home_key
from tests import redis_clients
from tests.conftest import FANOUT_THRESHOLD, REDIS_URL
from tests.e2e.edge import Account, follow, home_ids, post, sign_up, wait_until
from tests.e2e.test_watch import Watcher

pytestmark = pytest.mark.e2e

PAGE_SIZES = (1, 2, 100)


def repost(http, who: Account, original: dict) -> dict:
    r = http.post(f"/v1/posts/{original['id']}:repost", json={}, headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def shows(p: dict) -> str:
    """The post an entry shows the reader: the original for a pure repost."""
    return p["repostOf"]["id"] if p.get("repostOf") and not p.get("text") else p["id"]


def walk_home(http, reader: Account, page_size: int) -> list[dict]:
    posts, token = [], ""
    for _ in range(500):
        params = {"pageSize": page_size, **({"pageToken": token} if token else {})}
        r = http.get("/v1/timelines/home", params=params, headers=reader.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["posts"]) <= page_size
        posts.extend(body["posts"])
        token = body.get("nextPageToken", "")
        if not token:
            return posts
    raise AssertionError("pagination never ended")


def walk_feed(http, reader: Account, page_size: int = 2) -> list[dict]:
    posts, token = [], ""
    for _ in range(500):
        params = {"pageSize": page_size, **({"pageToken": token} if token else {})}
        r = http.get("/v1/feed", params=params, headers=reader.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        posts.extend(item["post"] for item in body.get("items", []) if "post" in item)
        token = body.get("nextPageToken", "")
        if not token:
            return posts
    raise AssertionError("feed pagination never ended")


def holds_all(http, reader: Account, post_ids: set[str]) -> bool:
    return post_ids <= {p["id"] for p in walk_home(http, reader, 100)}


def assert_once_on_every_walk(http, reader: Account, original: dict, expected_entry: str) -> None:
    for size in PAGE_SIZES:
        posts = walk_home(http, reader, size)
        ids = [p["id"] for p in posts]
        assert len(ids) == len(set(ids)), f"pageSize={size}: an entry repeats: {ids}"
        entries = [p["id"] for p in posts if shows(p) == original["id"]]
        assert entries == [expected_entry], f"pageSize={size}: original shown as {entries}, not once"


def start_reading(http, reader: Account, path: str) -> None:
    """ "delivered": the reader reads first, so is active and fanout delivers
    what follows; "rebuilt": their first read rebuilds from the posts store."""
    if path == "delivered":
        walk_home(http, reader, 10)


@pytest.mark.parametrize("path", ["delivered", "rebuilt"])
def test_an_original_and_two_reposts_of_it_show_once_on_every_page_size(http, path):
    reader = sign_up(http, "r")
    author, b, c = sign_up(http, "a"), sign_up(http, "b"), sign_up(http, "c")
    for followee in (author, b, c):
        follow(http, reader, followee)
    start_reading(http, reader, path)
    original = post(http, author, "the original")
    # Fillers between the reposts put them on different pages; each
    # reposter's last post, once home holds it, says its repost arrived too
    # (one author's posts are fanned out in order).
    markers = {post(http, author, "after the original")["id"]}
    repost(http, b, original)
    markers.add(post(http, b, "after b's repost")["id"])
    repost(http, c, original)
    markers.add(post(http, c, "after c's repost")["id"])
    assert wait_until(lambda: holds_all(http, reader, markers), timeout=10.0)

    # The original itself is the oldest occurrence: shown there, by its author.
    assert_once_on_every_walk(http, reader, original, original["id"])


@pytest.mark.parametrize("path", ["delivered", "rebuilt"])
def test_without_the_original_the_first_repost_shows_until_it_is_deleted(http, path):
    reader = sign_up(http, "r")
    author, b, c, d = (sign_up(http, p) for p in "abcd")
    for followee in (b, c, d):  # not the author
        follow(http, reader, followee)
    start_reading(http, reader, path)
    original = post(http, author, "reposted by three")
    markers = set()
    reposts = {}
    for who in (b, c, d):
        reposts[who.id] = repost(http, who, original)
        markers.add(post(http, who, f"after {who.username}'s repost")["id"])
    assert wait_until(lambda: holds_all(http, reader, markers), timeout=10.0)
    assert_once_on_every_walk(http, reader, original, reposts[b.id]["id"])

    # The shown repost deleted: the next one still held takes its place.
    r = http.delete(f"/v1/posts/{reposts[b.id]['id']}", headers=b.auth)
    assert r.status_code == 200, r.text

    def shown_by_c() -> bool:
        return [p["id"] for p in walk_home(http, reader, 2) if shows(p) == original["id"]] == [reposts[c.id]["id"]]

    assert wait_until(shown_by_c, timeout=10.0)
    assert_once_on_every_walk(http, reader, original, reposts[c.id]["id"])


def make_celebrity(http, fans: list[Account]) -> Account:
    celebrity = sign_up(http, "c")
    for fan in fans:
        follow(http, fan, celebrity)
    assert http.get(f"/v1/users/{celebrity.id}").json()["followerCount"] > FANOUT_THRESHOLD
    return celebrity


def test_celebrity_reposts_merged_at_read_are_deduplicated_with_delivered_ones(http):
    reader = sign_up(http, "r")
    fans = [reader, *(sign_up(http, "f") for _ in range(FANOUT_THRESHOLD))]
    first_celebrity, second_celebrity = make_celebrity(http, fans), make_celebrity(http, fans)
    author, friend = sign_up(http, "a"), sign_up(http, "b")
    follow(http, reader, friend)  # not the author
    start_reading(http, reader, "delivered")
    original = post(http, author, "reposted by celebrities and a friend")

    # A celebrity first (merged at read), then a friend (delivered), then
    # another celebrity: every page size shows the first celebrity's repost only.
    shown = repost(http, first_celebrity, original)
    markers = {post(http, first_celebrity, "after the first celebrity's repost")["id"]}
    repost(http, friend, original)
    markers.add(post(http, friend, "after the friend's repost")["id"])
    repost(http, second_celebrity, original)
    markers.add(post(http, second_celebrity, "after the second celebrity's repost")["id"])
    assert wait_until(lambda: holds_all(http, reader, markers), timeout=10.0)
    assert_once_on_every_walk(http, reader, original, shown["id"])

    # The feed, built from the timeline, shows it once too.
    feed = walk_feed(http, reader)
    assert markers <= {p["id"] for p in feed}
    assert [p["id"] for p in feed if shows(p) == original["id"]] == [shown["id"]]


def test_the_feed_shows_an_original_once(http):
    reader = sign_up(http, "r")
    author, b, c = sign_up(http, "a"), sign_up(http, "b"), sign_up(http, "c")
    for followee in (author, b, c):
        follow(http, reader, followee)
    original = post(http, author, "in the feed once")
    markers = set()
    for who in (b, c):
        repost(http, who, original)
        markers.add(post(http, who, f"after {who.username}'s repost")["id"])
    assert wait_until(lambda: holds_all(http, reader, markers), timeout=10.0)

    feed = walk_feed(http, reader, page_size=1)
    assert markers | {original["id"]} <= {p["id"] for p in feed}
    assert [p["id"] for p in feed if shows(p) == original["id"]] == [original["id"]]


def test_a_live_watch_does_not_push_reposts_of_an_original_already_pushed(http, edge_url):
    reader = sign_up(http, "r")
    author, b, c = sign_up(http, "a"), sign_up(http, "b"), sign_up(http, "c")
    for followee in (author, b, c):
        follow(http, reader, followee)
    stream = Watcher(edge_url, reader.token)
    try:
        original = post(http, author, "pushed once")
        assert stream.next_ids(1, timeout=5.0) == [original["id"]]
        assert wait_until(lambda: original["id"] in home_ids(http, reader), timeout=5.0)

        reposts, markers = [], []
        for who in (b, c):
            reposts.append(repost(http, who, original)["id"])
            markers.append(post(http, who, f"after {who.username}'s repost")["id"])
        pushed: list[str] = []
        deadline = time.monotonic() + 10.0
        while not set(markers) <= set(pushed) and time.monotonic() < deadline:
            pushed += stream.next_ids(1, timeout=max(0.01, deadline - time.monotonic()))
        # Each reposter's marker comes after their repost (one author's posts
        # are fanned out in order), so a pushed repost would be here by now.
        assert set(markers) <= set(pushed), pushed
        assert not set(reposts) & set(pushed), pushed
    finally:
        stream.close()


def test_reposts_stored_before_originals_were_kept_are_upgraded_by_a_read(http):
    reader = sign_up(http, "r")
    author, b, c = sign_up(http, "a"), sign_up(http, "b"), sign_up(http, "c")
    for followee in (b, c):
        follow(http, reader, followee)
    start_reading(http, reader, "delivered")
    original = post(http, author, "reposted before the upgrade")
    first = repost(http, b, original)
    markers = {post(http, b, "after b's repost")["id"]}
    repost(http, c, original)
    markers.add(post(http, c, "after c's repost")["id"])
    assert wait_until(lambda: holds_all(http, reader, markers), timeout=10.0)

    # As a timeline written before members carried originals holds them.
    rdb = redis_clients.from_url(REDIS_URL)
    key = home_key(int(reader.id))
    long_members = [m for m in rdb.zrange(key, 0, -1) if len(m) > MEMBER_BYTES]
    assert len(long_members) == 2
    rdb.zrem(key, *long_members)
    rdb.zadd(key, {m[:MEMBER_BYTES]: 0 for m in long_members})

    # A read that meets them stores them with their originals again.
    walk_home(http, reader, 100)
    assert wait_until(lambda: sum(len(m) > MEMBER_BYTES for m in rdb.zrange(key, 0, -1)) == 2, timeout=5.0)
    assert_once_on_every_walk(http, reader, original, first["id"])
