"""reposted_by_me on plain data: the per-kind cache keys, the repost edge's
compare-and-set answers as the store reads them, the API message, and the
kit's overlay copying reposted_by_me into posts and their originals."""

from __future__ import annotations

import asyncio
from collections import namedtuple

from aviary.engagement.v1 import engagement_pb2
from aviary.posts.v1 import posts_pb2
from services.engagement import by_me
from services.engagement.servicer import _message
from services.engagement.store import USER_INDEXES, Counts, _edge_outcome
from services.kit import settings
from services.kit.peers import engagement_overlay


def test_each_kind_has_its_own_hash_and_its_own_cassandra_index():
    assert by_me.liked_key(42) == "eng:lk:{42}"  # unchanged: hashes already in Redis stay valid
    assert by_me.reposted_key(42) == "eng:rp:{42}"
    assert USER_INDEXES[by_me.LIKED.name] == "likes_by_user"
    assert USER_INDEXES[by_me.REPOSTED.name] == "reposts_by_user"


Applied = namedtuple("Applied", ["applied"])
Held = namedtuple("Held", ["applied", "repost_id"])
HeldRow = namedtuple("HeldRow", ["applied", "post_id", "user_id", "repost_id"])


def test_the_repost_edge_answers_which_repost_it_holds():
    assert _edge_outcome([Applied(True)], 7) == (True, 7)  # added: holds the new repost
    assert _edge_outcome([Applied(True)], None) == (True, None)  # removed: holds none
    assert _edge_outcome([HeldRow(False, 1, 2, 5)], 7) == (False, 5)  # an older repost holds it
    assert _edge_outcome([Held(False, 5)], None) == (False, 5)  # another repost (a quote was deleted)
    assert _edge_outcome([Applied(False)], None) == (False, None)  # no edge at all


def test_the_engagement_message_carries_reposted_by_me_apart_from_liked_by_me():
    message = _message(7, Counts(reposts=1), liked=False, reposted=True)
    assert message.reposted_by_me and not message.liked_by_me
    assert not _message(7, Counts(), liked=True).reposted_by_me


class _Batches:
    def __init__(self, reply: engagement_pb2.BatchGetEngagementResponse) -> None:
        self.reply = reply

    async def get(self, batch, timeout):
        return self.reply


def test_the_overlay_copies_reposted_by_me_into_posts_and_their_originals(monkeypatch):
    reply = engagement_pb2.BatchGetEngagementResponse(
        engagements=[
            engagement_pb2.PostEngagement(post_id="2"),
            engagement_pb2.PostEngagement(post_id="1", repost_count=1, reposted_by_me=True),
        ]
    )
    monkeypatch.setattr(engagement_overlay.engagement_stream, "batches", lambda: _Batches(reply))
    repost = posts_pb2.Post(id="2", repost_of_id="1", repost_of=posts_pb2.Post(id="1", text="orig"))

    assert asyncio.run(engagement_overlay.apply([repost], viewer_id=9))
    assert not repost.reposted_by_me
    assert repost.repost_of.reposted_by_me and repost.repost_of.repost_count == 1


def test_a_page_waits_for_its_counts_no_longer_than_the_overlay_deadline(monkeypatch):
    asked: list[float] = []

    class _Swamped:
        async def get(self, batch, timeout):
            asked.append(timeout)
            raise TimeoutError

    monkeypatch.setattr(engagement_overlay.engagement_stream, "batches", lambda: _Swamped())
    post = posts_pb2.Post(id="5", text="hello")

    assert not asyncio.run(engagement_overlay.apply([post], viewer_id=9))
    assert post.like_count == 0 and not post.liked_by_me  # served without counts
    knobs = settings.current()
    assert asked == [knobs.engagement_overlay_seconds] and knobs.engagement_overlay_seconds < knobs.rpc_timeout_seconds
