"""Trends through Envoy: a hashtag trends when many people use it, never when
one account posts it over and over, and stops counting posts that are
deleted; the list is public and validates input.

Tags are random so reruns never collide. The tests assume the devstack's
defaults (AVIARY_TRENDS_MIN_USERS 3, a one-hour window)."""

from __future__ import annotations

import secrets

from tests.e2e.edge import error_message, post, sign_up, wait_until

MIN_USERS = 3


def _trends(http, **params) -> dict:
    r = http.get("/v1/trends", params={"pageSize": 50, **params})
    assert r.status_code == 200, r.text
    return r.json()


def _trend(http, tag: str) -> dict | None:
    return next((t for t in _trends(http)["trends"] if t["hashtag"] == tag), None)


def _tag(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(5)}"


def test_a_tag_used_by_five_people_trends_with_their_count(http):
    tag = _tag("tr")
    for _ in range(5):
        post(http, sign_up(http, "tu"), f"Loving the #{tag} today")

    # The consumer may be catching up after a restart: give it time. The tag
    # is listed from its third user on, so wait for all five.
    assert wait_until(lambda: (_trend(http, tag) or {}).get("userCount") == "5", timeout=60, interval=0.25), (
        f"#{tag} never trended with 5 users: {_trend(http, tag)}"
    )
    trend = _trend(http, tag)
    # Five users in the newest bucket (or, across a bucket boundary, some in the one before).
    assert 5 * 0.5 < trend["score"] <= 5.0


def test_one_account_posting_a_tag_many_times_never_makes_it_trend(http):
    spammer = sign_up(http, "ts")
    spam, mixed = _tag("sp"), _tag("mx")
    for i in range(12):
        post(http, spammer, f"Buy now #{spam} #{mixed} ({i})")
    # Two more people use the mixed tag. Only with the spammer's posts
    # counted does it reach three users, and the spammer's posts are
    # consumed in order (one partition per author): once it shows up, every
    # spam post before it has been counted.
    for _ in range(2):
        post(http, sign_up(http, "tm"), f"Anyone else seeing #{mixed}?")

    trend = wait_until(lambda: _trend(http, mixed), timeout=60, interval=0.25)
    assert trend is not None, f"#{mixed} never trended"
    # Twelve posts by the spammer count as one user, not twelve.
    assert int(trend["userCount"]) == MIN_USERS
    assert trend["score"] <= 3.0
    listed = [t["hashtag"] for t in _trends(http)["trends"]]
    assert spam not in listed


def test_deleted_posts_stop_counting(http):
    tag = _tag("dl")
    authors = [sign_up(http, "td") for _ in range(4)]
    posts = [post(http, author, f"Watching #{tag} live") for author in authors]
    assert wait_until(lambda: (_trend(http, tag) or {}).get("userCount") == "4", timeout=60, interval=0.25), (
        f"#{tag} never trended with 4 users: {_trend(http, tag)}"
    )

    r = http.delete(f"/v1/posts/{posts[0]['id']}", headers=authors[0].auth)
    assert r.status_code == 200, r.text
    assert wait_until(lambda: (_trend(http, tag) or {}).get("userCount") == "3", timeout=30, interval=0.25), (
        f"a deleted post still counts: {_trend(http, tag)}"
    )
    # Below the minimum of distinct users, the tag leaves the list.
    r = http.delete(f"/v1/posts/{posts[1]['id']}", headers=authors[1].auth)
    assert r.status_code == 200, r.text
    assert wait_until(lambda: _trend(http, tag) is None, timeout=30, interval=0.25), _trend(http, tag)


def test_trends_are_public_and_describe_their_window(http):
    r = http.get("/v1/trends")  # no Authorization header
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body.get("trends", [])) <= 10
    assert body["windowStart"] < body["windowEnd"]
    assert body.get("nextPageToken", "") == ""
    scores = [t["score"] for t in _trends(http)["trends"]]
    assert scores == sorted(scores, reverse=True)


def test_bad_paging_is_refused_naming_the_field(http):
    for params, field in (
        ({"pageSize": 51}, "page_size"),
        ({"pageSize": -1}, "page_size"),
        ({"pageToken": "abc"}, "page_token"),
    ):
        r = http.get("/v1/trends", params=params)
        assert r.status_code == 400, (params, r.text)
        assert error_message(r).startswith(f"{field}:"), r.text
