"""services.kit.peers.engagement_reads against the running engagement and
Redis: a page's counts and its viewer's likes and reposts read from the
hashes engagement keeps, the same answer engagement gives, and engagement
asked whenever those hashes cannot vouch for the whole page."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from aviary.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from aviary.posts.v1 import posts_pb2
from devstack.mesh_channels import open_channel
from services.kit import mesh
from services.kit.peers import clients, engagement_overlay
from services.kit.peers.engagement_reads import (
    FLOOR,
    LIKED_TAG,
    REPOSTED_TAG,
    Engagement,
    EngagementReads,
    counter_key,
    marks_key,
)
from services.kit.stores.redis_bulk import BulkRedis
from services.kit.stores.redis_epoch import RedisEpoch
from tests import redis_clients
from tests.conftest import REDIS_URL
from tests.integration.test_engagement import RPC_TIMEOUT, Account, create, like, sign_up


@pytest.fixture(scope="module")
def engagement():
    with open_channel("engagement") as channel:
        grpc.channel_ready_future(channel).result(timeout=15)
        yield engagement_pb2_grpc.EngagementServiceStub(channel)


@pytest.fixture
async def parts():
    """A reader's parts, as a service that shows posts has them, and a plain client."""
    client, bulk = redis_clients.async_from_url(REDIS_URL), BulkRedis(REDIS_URL)
    epoch = RedisEpoch(client)
    assert await epoch.refresh()
    yield EngagementReads(bulk, epoch), epoch, client
    await bulk.close()
    await client.aclose()


def engagement_answer(engagement, post_ids: list[str], viewer: Account | None) -> list[engagement_pb2.PostEngagement]:
    """Engagement's own answer (which also loads what the page needs into Redis)."""
    reply = engagement.BatchGetEngagement(
        engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids, viewer_id=viewer.id if viewer else ""),
        timeout=RPC_TIMEOUT,
    )
    return list(reply.engagements)


def a_page(identity, posts, engagement) -> tuple[Account, list[str], list[engagement_pb2.PostEngagement]]:
    """A fan and three posts (the first liked, the second reposted, the third
    neither), once engagement has the repost (from the posts topic); and
    engagement's answer for them, which loaded them into Redis."""
    author, fan = sign_up(identity), sign_up(identity)
    post_ids = [create(posts, author, f"page {i}").id for i in range(3)]
    like(engagement, fan, post_ids[0])
    posts.RepostPost(posts_pb2.RepostPostRequest(post_id=post_ids[1]), metadata=fan.auth, timeout=RPC_TIMEOUT)
    deadline = time.monotonic() + 15
    while not (answer := engagement_answer(engagement, post_ids, fan))[1].reposted_by_me:
        assert time.monotonic() < deadline, "engagement never saw the repost"
        time.sleep(0.1)
    return fan, post_ids, answer


def pinned(monkeypatch, epoch: RedisEpoch, value: bytes | None) -> None:
    """The epoch as the reader's watch last read it."""

    async def current_within(max_age: float) -> bytes | None:
        return value

    monkeypatch.setattr(epoch, "current_within", current_within)


async def test_a_loaded_page_reads_as_engagement_answers_it(identity, posts, engagement, parts):
    reads, _, _ = parts
    fan, post_ids, answer = a_page(identity, posts, engagement)
    read = await reads.read(post_ids, int(fan.id))
    assert read == [Engagement(*(getattr(e, name) for name in Engagement._fields)) for e in answer]
    assert [(e.like_count, e.liked_by_me, e.repost_count, e.reposted_by_me) for e in read] == [
        (1, True, 0, False),
        (0, False, 1, True),
        (0, False, 0, False),
    ]
    # No viewer: counts alone.
    assert [e.like_count for e in await reads.read(post_ids, 0)] == [1, 0, 0]


async def test_what_the_hashes_cannot_vouch_for_is_left_to_engagement(identity, posts, engagement, parts, monkeypatch):
    reads, epoch, client = parts
    fan, post_ids, _ = a_page(identity, posts, engagement)
    viewer = int(fan.id)
    assert await reads.read(post_ids, viewer) is not None
    # A counter not loaded (expired, lost with Redis).
    await client.delete(counter_key(int(post_ids[2])))
    assert await reads.read(post_ids, viewer) is None
    page = post_ids[:2]
    assert await reads.read(page, viewer) is not None

    # A reader's hash not loaded; engagement, asked, loads it.
    await client.delete(marks_key(REPOSTED_TAG, viewer))
    assert await reads.read(page, viewer) is None
    assert await reads.read(page, 0) is not None
    engagement_answer(engagement, page, fan)
    assert await reads.read(page, viewer) is not None

    # A post below the floor of a reader's hash, whose entry it may have lost.
    await client.hset(marks_key(LIKED_TAG, viewer), FLOOR, int(post_ids[1]))
    await client.hdel(marks_key(LIKED_TAG, viewer), post_ids[0])
    assert await reads.read(page, viewer) is None
    assert await reads.read(post_ids[1:2], viewer) is not None

    # Hashes of another Redis epoch (a failover), or an epoch not known now.
    pinned(monkeypatch, epoch, b"0123456789abcdef")
    assert await reads.read(post_ids[1:2], viewer) is None
    pinned(monkeypatch, epoch, None)
    assert await reads.read(post_ids[1:2], viewer) is None


async def test_a_page_asks_engagement_only_for_what_redis_cannot_vouch_for(
    identity, posts, engagement, parts, monkeypatch
):
    mesh.set_identity("timeline")  # the kit's engagement client acts as one of its callers
    reads, _, client = parts
    fan, post_ids, _ = a_page(identity, posts, engagement)
    asked: list[list[str]] = []
    ask_engagement = engagement_overlay._ask_engagement

    async def recording(ids, viewer_id):
        asked.append(list(ids))
        return await ask_engagement(ids, viewer_id)

    monkeypatch.setattr(engagement_overlay, "_ask_engagement", recording)
    page = [posts_pb2.Post(id=p) for p in post_ids]
    await client.delete(marks_key(LIKED_TAG, int(fan.id)), marks_key(REPOSTED_TAG, int(fan.id)))
    assert await engagement_overlay.apply(page, int(fan.id), reads)
    assert asked == [post_ids]  # the fan's hashes not loaded: engagement asked, and it loads them

    again = [posts_pb2.Post(id=p) for p in post_ids]
    assert await engagement_overlay.apply(again, int(fan.id), reads)
    assert asked == [post_ids]  # warm: read from Redis alone
    assert [(p.like_count, p.liked_by_me, p.reposted_by_me) for p in again] == [
        (1, True, False),
        (0, False, True),
        (0, False, False),
    ]
    assert again == page
    await clients.close_all()


async def test_a_new_posts_counter_is_loaded_before_any_page_shows_it(identity, posts, engagement, parts):
    """Engagement loads a new post's counter from the posts topic: the first
    pages that show it (every follower's home) read it from Redis rather
    than each asking engagement."""
    reads, _, client = parts
    author = sign_up(identity)
    post_id = create(posts, author, "brand new").id
    deadline = time.monotonic() + 15
    while await client.hget(counter_key(int(post_id)), "ep") is None:
        assert time.monotonic() < deadline, "engagement never loaded the new post's counter"
        await asyncio.sleep(0.1)
    [read] = await reads.read([post_id], 0)
    assert (read.post_id, read.like_count, read.reply_count) == (post_id, 0, 0)
