"""Posting -> fanout -> home timeline, end to end over HTTP/JSON through Envoy."""

from __future__ import annotations

from services.timeline.entries import decode_member, home_key
from tests import redis_clients
from tests.conftest import FANOUT_THRESHOLD, REDIS_URL
from tests.e2e.edge import follow, home_ids, post, sign_up, unfollow, wait_until

pytestmark = __import__("pytest").mark.e2e


def test_followed_post_reaches_home_timeline_within_two_seconds(http):
    author, reader = sign_up(http, "a"), sign_up(http, "r")
    follow(http, reader, author)
    created = post(http, author, "hello #aviary from @nobody")
    assert created["authorId"] == author.id
    assert created["author"]["username"] == author.username
    assert created["hashtags"] == ["aviary"]
    assert created["mentions"] == ["nobody"]

    arrived = wait_until(lambda: created["id"] in home_ids(http, reader), timeout=2.0)
    assert arrived, "post did not reach the follower's home timeline within 2 s"

    timeline = http.get("/v1/timelines/home", headers=reader.auth).json()
    entry = next(p for p in timeline["posts"] if p["id"] == created["id"])
    assert entry["text"] == "hello #aviary from @nobody"
    assert entry["author"]["id"] == author.id


def test_author_sees_own_post_and_strangers_do_not(http):
    author, stranger = sign_up(http, "a"), sign_up(http, "s")
    created = post(http, author, "only for my followers")
    assert wait_until(lambda: created["id"] in home_ids(http, author), timeout=2.0)
    assert created["id"] not in home_ids(http, stranger)


def test_celebrity_post_arrives_by_read_time_merge(http):
    celebrity = sign_up(http, "c")
    fans = [sign_up(http, "f") for _ in range(FANOUT_THRESHOLD + 1)]
    for fan in fans:
        follow(http, fan, celebrity)
    profile = http.get(f"/v1/users/{celebrity.id}").json()
    assert profile["followerCount"] == FANOUT_THRESHOLD + 1

    created = post(http, celebrity, "big announcement")
    reader = fans[0]
    assert wait_until(lambda: created["id"] in home_ids(http, reader), timeout=2.0)

    # It was merged at read time, not materialized: the fan's Redis timeline
    # does not hold it (give fanout a moment in case it wrongly would).
    r = redis_clients.from_url(REDIS_URL)
    wait_until(lambda: False, timeout=0.5)
    assert int(created["id"]) not in materialized(r, reader)


def materialized(r, reader) -> set[int]:
    """The post ids the reader's Redis timeline holds."""
    return {decode_member(m).post_id for m in r.zrange(home_key(int(reader.id)), 0, -1)}


def test_unfollow_stops_new_posts_arriving(http):
    author, reader = sign_up(http, "a"), sign_up(http, "r")
    follow(http, reader, author)
    first = post(http, author, "before unfollow")
    assert wait_until(lambda: first["id"] in home_ids(http, reader), timeout=2.0)

    unfollow(http, reader, author)
    second = post(http, author, "after unfollow")
    # A marker post from someone the reader still follows proves fanout ran past it.
    other = sign_up(http, "o")
    follow(http, reader, other)
    marker = post(http, other, "marker")
    assert wait_until(lambda: marker["id"] in home_ids(http, reader), timeout=3.0)
    ids = home_ids(http, reader)
    assert second["id"] not in ids
    # The unfollowed author's older posts are purged too (eventually).
    assert wait_until(lambda: first["id"] not in home_ids(http, reader), timeout=3.0)


def test_delete_removes_post_from_author_posts_and_timelines(http):
    author, reader = sign_up(http, "a"), sign_up(http, "r")
    follow(http, reader, author)
    keep = post(http, author, "keep me")
    gone = post(http, author, "delete me")
    assert wait_until(lambda: gone["id"] in home_ids(http, reader), timeout=2.0)

    r = http.delete(f"/v1/posts/{gone['id']}", headers=author.auth)
    assert r.status_code == 200, r.text

    assert http.get(f"/v1/posts/{gone['id']}").status_code == 404
    own = http.get(f"/v1/users/{author.id}/posts").json()["posts"]
    assert [p["id"] for p in own] == [keep["id"]]
    # Timelines drop it as soon as the tombstone has been fanned out.
    assert wait_until(lambda: gone["id"] not in home_ids(http, reader), timeout=2.0)
    assert keep["id"] in home_ids(http, reader)
    # The tombstone also reaches the materialized timeline in Redis.
    r = redis_clients.from_url(REDIS_URL)
    assert int(keep["id"]) in materialized(r, reader)
    assert wait_until(lambda: int(gone["id"]) not in materialized(r, reader), timeout=3.0)
    assert http.get(f"/v1/users/{author.id}").json()["postCount"] == 1


def test_pagination_walks_120_posts_exactly_once(http):
    reader = sign_up(http, "r")
    authors = [sign_up(http, "a") for _ in range(3)]
    for author in authors:
        follow(http, reader, author)
    created = []
    for i in range(120):
        created.append(post(http, authors[i % 3], f"post number {i}")["id"])
    expected = sorted(created, key=int, reverse=True)
    assert wait_until(lambda: len(home_ids(http, reader)) == 100 and _walk(http, reader, 100) == expected, timeout=10.0)

    seen = _walk(http, reader, 7)
    assert seen == expected, "pages skipped or repeated entries"


def _walk(http, reader, page_size: int) -> list[str]:
    seen, token = [], ""
    for _ in range(1000):
        params = {"pageSize": page_size}
        if token:
            params["pageToken"] = token
        r = http.get("/v1/timelines/home", params=params, headers=reader.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["posts"]) <= page_size
        seen.extend(p["id"] for p in body["posts"])
        token = body["nextPageToken"]
        if not token:
            return seen
    raise AssertionError("pagination never ended")
