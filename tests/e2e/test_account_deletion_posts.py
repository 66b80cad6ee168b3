"""A deleted account's posts, end to end: posts' consumer of identity's
AccountDeleted deletes every post and repost of the account through the
normal delete path, so they vanish from followers' home timelines, search
and counts; its bookmarks go too. The first test publishes the event itself
(as identity does through its outbox), so it tests posts' side alone."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid

import pytest

from aviary.events.v1 import events_pb2
from services.kit.events.kafka import IDENTITY_TOPIC, Producer
from services.kit.settings import load_settings
from tests.e2e.edge import PASSWORD, follow, home_ids, post, sign_up, wait_until

pytestmark = pytest.mark.e2e

SETTLE_SECONDS = 30.0


def _publish_account_deleted(user_id: str) -> None:
    event = events_pb2.AccountEvent(
        # Time-ordered like the kit's ids, unique enough for a test.
        event_id=(int(time.time() * 1000) << 22) | secrets.randbits(22),
        deleted=events_pb2.AccountDeleted(user_id=int(user_id), role="USER"),
    )
    event.occur_time.GetCurrentTime()

    async def send() -> None:
        producer = Producer(load_settings().kafka_bootstrap)
        try:
            await producer.send_all([(IDENTITY_TOPIC, user_id.encode(), event.SerializeToString())])
        finally:
            await producer.close()

    asyncio.run(send())


def _search_ids(http, query: str) -> list[str]:
    r = http.get("/v1/search/posts", params={"q": query, "pageSize": 50})
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json().get("posts", [])]


def _status(http, post_id: str) -> int:
    return http.get(f"/v1/posts/{post_id}").status_code


def _post_count(http, user_id: str, who) -> int:
    r = http.get(f"/v1/users/{user_id}", headers=who.auth)
    assert r.status_code == 200, r.text
    return int(r.json().get("postCount", 0))


def test_account_deleted_removes_every_post_repost_and_bookmark_of_the_account(http):
    leaving, follower, other = sign_up(http, "ad"), sign_up(http, "ad"), sign_up(http, "ad")
    follow(http, follower, leaving)
    word = f"leaving{uuid.uuid4().hex[:10]}"
    own = [post(http, leaving, f"{word} number {i}") for i in range(3)]
    theirs = post(http, other, "something to repost")
    repost = http.post(f"/v1/posts/{theirs['id']}:repost", headers=leaving.auth)
    assert repost.status_code == 200, repost.text
    reply = http.post("/v1/posts", json={"text": f"{word} reply", "replyToId": theirs["id"]}, headers=leaving.auth)
    assert reply.status_code == 200, reply.text
    assert http.put(f"/v1/users/me/bookmarks/{theirs['id']}", headers=leaving.auth).status_code == 200
    written = [p["id"] for p in own] + [repost.json()["id"], reply.json()["id"]]
    assert wait_until(lambda: all(p["id"] in home_ids(http, follower) for p in own), SETTLE_SECONDS)
    assert wait_until(lambda: {p["id"] for p in own} <= set(_search_ids(http, word)), SETTLE_SECONDS)
    assert _post_count(http, leaving.id, follower) == len(written)

    _publish_account_deleted(leaving.id)
    # A post a replica let through in the moment its copy of the gone
    # accounts was stale (here: never marked) goes too.
    written.append(post(http, leaving, f"{word} just in time")["id"])

    assert wait_until(lambda: all(_status(http, p) == 404 for p in written), SETTLE_SECONDS)
    assert wait_until(lambda: not set(written) & set(home_ids(http, follower)), SETTLE_SECONDS)
    assert wait_until(lambda: not set(written) & set(_search_ids(http, word)), SETTLE_SECONDS)
    assert wait_until(lambda: _post_count(http, leaving.id, follower) == 0, SETTLE_SECONDS)
    replies = http.get(f"/v1/posts/{theirs['id']}/replies").json().get("posts", [])
    assert reply.json()["id"] not in [p["id"] for p in replies]
    # Its bookmarks are gone (read with its access token, still valid here:
    # only identity's deletion ends its sessions).
    assert wait_until(
        lambda: http.get("/v1/users/me/bookmarks", headers=leaving.auth).json().get("posts", []) == [],
        SETTLE_SECONDS,
    )
    # Other people's posts stay.
    assert _status(http, theirs["id"]) == 200

    # Redelivery finds nothing left to do, and takes nothing else with it.
    _publish_account_deleted(leaving.id)
    later = post(http, follower, f"{word} written by someone else")
    assert wait_until(lambda: later["id"] in _search_ids(http, word), SETTLE_SECONDS)
    assert _status(http, later["id"]) == 200


def test_deleting_an_account_through_the_api_takes_its_posts_from_followers_and_search(http):
    leaving, follower = sign_up(http, "ad"), sign_up(http, "ad")
    follow(http, follower, leaving)
    word = f"farewell{uuid.uuid4().hex[:10]}"
    mine = post(http, leaving, f"{word} my last words")
    assert wait_until(lambda: mine["id"] in home_ids(http, follower), SETTLE_SECONDS)
    assert wait_until(lambda: mine["id"] in _search_ids(http, word), SETTLE_SECONDS)

    r = http.post("/v1/users/me:delete", json={"password": PASSWORD}, headers=leaving.auth)
    if r.status_code == 501:
        pytest.skip("identity's DeleteAccount is not built yet")
    assert r.status_code == 200, r.text

    assert wait_until(lambda: _status(http, mine["id"]) == 404, SETTLE_SECONDS)
    assert wait_until(lambda: mine["id"] not in home_ids(http, follower), SETTLE_SECONDS)
    assert wait_until(lambda: mine["id"] not in _search_ids(http, word), SETTLE_SECONDS)
    # Its access token may live on for minutes, but it writes nothing once
    # posts' copy of the gone accounts (refreshed every 2 s) has it. An empty
    # post probes that without writing: 403 before the 400 it would get.
    gone = wait_until(
        lambda: http.post("/v1/posts", json={"text": ""}, headers=leaving.auth).status_code in (401, 403),
        SETTLE_SECONDS,
    )
    assert gone
    refused = http.post("/v1/posts", json={"text": "from beyond"}, headers=leaving.auth)
    assert refused.status_code in (401, 403), refused.text
