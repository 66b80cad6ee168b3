"""Profile edits (PATCH /v1/users/me) and reply threads, through Envoy."""

from __future__ import annotations

import pytest

from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from devstack.mesh_channels import open_channel
from tests.e2e.edge import error_message, follow, post, sign_up, wait_until

pytestmark = pytest.mark.e2e


def test_patch_profile_changes_only_the_fields_sent(http):
    me = sign_up(http, "p")
    before = http.get(f"/v1/users/{me.id}").json()
    r = http.patch("/v1/users/me", json={"bio": "  Birds, mostly.  "}, headers=me.auth)
    assert r.status_code == 200, r.text
    assert r.json()["bio"] == "Birds, mostly."
    assert r.json()["displayName"] == before["displayName"]
    r = http.patch("/v1/users/me", json={"displayName": "Polly Parrot"}, headers=me.auth)
    assert r.status_code == 200, r.text
    profile = http.get(f"/v1/users/{me.id}").json()
    assert (profile["displayName"], profile["bio"]) == ("Polly Parrot", "Birds, mostly.")
    # Clearing the bio is a change too.
    assert http.patch("/v1/users/me", json={"bio": ""}, headers=me.auth).json()["bio"] == ""


def test_new_display_name_reaches_hydrated_posts(http):
    me = sign_up(http, "p")
    created = post(http, me, "name check")
    http.patch("/v1/users/me", json={"displayName": "Renamed Bird"}, headers=me.auth).raise_for_status()
    assert wait_until(
        lambda: http.get(f"/v1/posts/{created['id']}").json()["author"]["displayName"] == "Renamed Bird",
        timeout=10.0,
        interval=0.25,
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({"bio": "x" * 161}, "bio"),
        ({"bio": "bell\u0007"}, "bio"),
        ({"displayName": "   "}, "display_name"),
        ({"displayName": "y" * 51}, "display_name"),
        ({}, "display_name"),
    ],
    ids=["bio-too-long", "bio-control-char", "blank-name", "name-too-long", "nothing-to-change"],
)
def test_bad_profile_update_is_400_and_changes_nothing(http, body, field):
    me = sign_up(http, "p")
    before = http.get(f"/v1/users/{me.id}").json()
    r = http.patch("/v1/users/me", json=body, headers=me.auth)
    assert r.status_code == 400, r.text
    assert field in error_message(r)
    assert http.get(f"/v1/users/{me.id}").json() == before


def test_patch_profile_needs_a_token(http):
    assert http.patch("/v1/users/me", json={"bio": "anonymous"}).status_code == 401


def _reply(http, author, parent_id: str, text: str) -> dict:
    r = http.post("/v1/posts", json={"text": text, "replyToId": parent_id}, headers=author.auth)
    assert r.status_code == 200, r.text
    assert r.json()["replyToId"] == parent_id
    return r.json()


def _thread(http, parent_id: str, page_size: int) -> list[str]:
    seen, token = [], ""
    for _ in range(100):
        params = {"pageSize": page_size, **({"pageToken": token} if token else {})}
        r = http.get(f"/v1/posts/{parent_id}/replies", params=params)
        assert r.status_code == 200, r.text
        seen.extend(p["id"] for p in r.json()["posts"])
        token = r.json()["nextPageToken"]
        if not token:
            return seen
    raise AssertionError("paging never ended")


def test_replies_page_oldest_first_exactly_once_and_drop_deleted(http):
    author, a, b = sign_up(http, "t"), sign_up(http, "t"), sign_up(http, "t")
    parent = post(http, author, "what do you think?")
    replies = [_reply(http, [a, b][i % 2], parent["id"], f"reply {i}")["id"] for i in range(5)]
    assert _thread(http, parent["id"], 2) == replies  # public read, no token

    r = http.delete(f"/v1/posts/{replies[1]}", headers=b.auth)
    assert r.status_code == 200, r.text
    assert _thread(http, parent["id"], 10) == [replies[0], *replies[2:]]


def test_reply_to_deleted_or_unknown_post(http):
    author, other = sign_up(http, "t"), sign_up(http, "t")
    parent = post(http, author, "soon gone")
    http.delete(f"/v1/posts/{parent['id']}", headers=author.auth).raise_for_status()

    r = http.post("/v1/posts", json={"text": "too late", "replyToId": parent["id"]}, headers=other.auth)
    assert r.status_code == 412, r.text
    assert "reply_to_id" in error_message(r)
    r = http.post("/v1/posts", json={"text": "to nowhere", "replyToId": "123456789"}, headers=other.auth)
    assert r.status_code == 404, r.text
    assert http.get(f"/v1/users/{other.id}/posts").json()["posts"] == []

    assert http.get(f"/v1/posts/{parent['id']}/replies").status_code == 404
    assert http.get("/v1/posts/123456789/replies").status_code == 404
    r = http.get("/v1/posts/nope/replies")
    assert r.status_code == 400 and "post_id" in error_message(r)


def _counts(user: dict) -> tuple[int, int, int]:
    return user["followerCount"], user["followingCount"], user["postCount"]


def test_user_summaries_show_the_profile_counts(http):
    author, fan, friend = sign_up(http, "p"), sign_up(http, "p"), sign_up(http, "p")
    follow(http, fan, author)
    follow(http, friend, author)
    follow(http, author, friend)
    first = post(http, author, "counted")
    post(http, author, "counted again")
    profile = http.get(f"/v1/users/{author.id}").json()
    assert _counts(profile) == (2, 1, 2)

    def everywhere() -> list[tuple[int, int, int]]:
        followers = http.get(f"/v1/users/{friend.id}/followers").json()["users"]
        following = http.get(f"/v1/users/{fan.id}/following").json()["users"]
        return [
            _counts(next(u for u in followers if u["id"] == author.id)),
            _counts(next(u for u in following if u["id"] == author.id)),
            _counts(http.get(f"/v1/posts/{first['id']}").json()["author"]),
            _counts(http.get(f"/v1/users/{author.id}/posts").json()["posts"][0]["author"]),
        ]

    # Summaries may lag a little behind the profile, but never show a 0 for a count that is not 0.
    assert all(all(counts) for counts in everywhere())
    assert wait_until(lambda: everywhere() == [_counts(profile)] * 4, timeout=10.0, interval=0.25), everywhere()


def test_summaries_asked_without_counts_leave_them_at_zero(http):
    # Graph's existence checks, notifications' names, recommendations' roles
    # ask without counts: identity then calls neither graph nor posts.
    author, fan = sign_up(http, "p"), sign_up(http, "p")
    follow(http, fan, author)
    post(http, author, "counted")
    with open_channel("identity") as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)

        def summary(**skip) -> identity_pb2.User:
            request = identity_pb2.BatchGetUsersRequest(user_ids=[author.id, "1"], **skip)
            (user,) = identity.BatchGetUsers(request, timeout=10).users
            return user

        bare = summary(skip_counts=True)
        assert (bare.id, bare.username, bare.follower_count, bare.post_count) == (author.id, author.username, 0, 0)
        assert wait_until(lambda: (summary().follower_count, summary().post_count) == (1, 1), timeout=10.0)


def test_a_count_change_reaches_cached_author_summaries_at_once(http):
    author, fan = sign_up(http, "p"), sign_up(http, "p")
    first = post(http, author, "before any follower")
    # Read twice: the second read is served from posts' author cache.
    for _ in range(2):
        assert http.get(f"/v1/posts/{first['id']}").json()["author"]["followerCount"] == 0
    follow(http, fan, author)
    # Far sooner than the cache's 60 s: graph announces the changed counts.
    assert wait_until(
        lambda: http.get(f"/v1/posts/{first['id']}").json()["author"]["followerCount"] == 1, timeout=5.0, interval=0.1
    )
